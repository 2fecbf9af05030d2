"""Property-based run of the app's own OpenAPI schema (schemathesis) against a real server:
no 5xx, and every response matches its documented status, content type and schema.

Deterministic and bounded by default; `CRONICORN_FUZZ_EXAMPLES=500` runs a longer random search
and `CRONICORN_FUZZ_DATABASE_URL=postgresql://…` (an empty database) fuzzes on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis import checks

from cronicorn.api import create_app
from cronicorn.service.keys import Keys
from cronicorn.service.throttle import RateLimits
from cronicorn.store.db import create_engine, session_factory
from cronicorn.store.migrate import upgrade_database
from tests.api.conftest import ENDPOINT, JOB, settings_for

schema = schemathesis.openapi.from_dict(create_app(settings_for("sqlite:///unused.db")).openapi())
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]
_counter = itertools.count()


@dataclass
class Target:
    url: str
    headers: dict[str, str]
    ids: dict[str, str]
    session: requests.Session


async def _admin_key(url: str) -> str:
    db = create_engine(url)
    try:
        return (await Keys(session_factory(db)).create("fuzz", "admin")).key
    finally:
        await db.dispose()


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    url = os.environ.get("CRONICORN_FUZZ_DATABASE_URL") or (
        f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'fuzz.db'}"
    )
    upgrade_database(url)
    key = asyncio.run(_admin_key(url))
    config = uvicorn.Config(
        # no request budget: the fuzzer's hundreds of calls should reach the routes
        create_app(settings_for(url, max_claim_wait_ms=100, rate_limits=RateLimits(admin=0))),
        host="127.0.0.1",
        port=0,
        log_level="error",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:  # uvicorn exposes only a flag
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    headers = {"Authorization": f"Bearer {key}"}
    with requests.Session() as session:
        job = session.post(f"{base}/api/jobs", json=JOB, headers=headers).json()
        ep = session.post(f"{base}/api/jobs/{job['id']}/endpoints", json=ENDPOINT, headers=headers)
        ids = {"job_id": job["id"], "endpoint_id": ep.json()["id"]}
        yield Target(base, headers, ids, session)
    server.should_exit = True
    thread.join(10)


@schema.parametrize()
@settings(
    max_examples=int(os.environ.get("CRONICORN_FUZZ_EXAMPLES", "25")),
    deadline=None,
    derandomize="CRONICORN_FUZZ_EXAMPLES" not in os.environ,
    suppress_health_check=list(HealthCheck),
)
def test_api_matches_its_openapi_schema(case: schemathesis.Case[Any], target: Target) -> None:
    # Every other case targets existing objects, so the deeper code paths run too.
    if next(_counter) % 2 and case.path_parameters:
        for name, value in target.ids.items():
            if name in case.path_parameters:
                case.path_parameters[name] = value
    case.call_and_validate(
        base_url=target.url, session=target.session, headers=target.headers, checks=CHECKS
    )
