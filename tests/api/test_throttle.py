"""Throttling (issue 10): failed authentication per client address and a request budget per
key, both 429 with `Retry-After`, shared by every API process on one database."""

from __future__ import annotations

import math
from contextlib import AsyncExitStack

import httpx2 as httpx
import pytest
import sqlalchemy as sa

from cronicorn.domain.models import Scope
from cronicorn.errors import ConfigError
from cronicorn.service.keys import Principal
from cronicorn.service.throttle import RateLimits, Throttle, Throttled
from cronicorn.settings import Settings
from cronicorn.store.db import create_engine
from cronicorn.store.rate_limits import RateLimitStore
from cronicorn.store.tables import RateLimit
from tests.api.conftest import JOB, live_server, make_api

# An hour-long window: a test never straddles two windows in practice.
WINDOW_S = 3600
BAD = {"Authorization": "Bearer ck_not-a-real-key"}


def assert_throttled(r: httpx.Response) -> None:
    assert r.status_code == 429, r.text
    retry_after = int(r.headers["Retry-After"])
    assert 1 <= retry_after <= WINDOW_S


async def test_failed_authentication_is_throttled_per_address(database_url: str) -> None:
    limits = RateLimits(window_s=WINDOW_S, auth_failures=3)
    async with make_api(database_url, rate_limits=limits) as api:
        for _ in range(3):
            assert (await api.call("GET", "/api/jobs", who=None, headers=BAD)).status_code == 401
        assert_throttled(await api.call("GET", "/api/jobs", who=None, headers=BAD))
        # while blocked, a key this process has not seen recently is not even looked up
        assert_throttled(await api.call("GET", "/api/jobs", who="alice2"))
        # a missing key is not a guess and is not counted
        assert (await api.call("GET", "/api/jobs", who=None)).status_code == 401


async def test_failed_authentication_throttling_can_be_switched_off(sqlite_url: str) -> None:
    async with make_api(sqlite_url, rate_limits=RateLimits(auth_failures=0)) as api:
        for _ in range(30):
            assert (await api.call("GET", "/api/jobs", who=None, headers=BAD)).status_code == 401


async def test_each_key_has_a_request_budget_per_scope(database_url: str) -> None:
    limits = RateLimits(window_s=WINDOW_S, user=5, admin=3, engine=0)
    async with make_api(database_url, rate_limits=limits) as api:
        for _ in range(5):
            assert (await api.call("GET", "/api/jobs")).status_code == 200
        assert_throttled(await api.call("GET", "/api/jobs"))
        r = await api.call("POST", "/api/jobs", json=JOB)
        assert_throttled(r)
        # another key of the same tenant has its own budget
        assert (await api.call("GET", "/api/jobs", who="alice2")).status_code == 200
        for _ in range(3):
            assert (await api.call("GET", "/api/jobs", who="admin")).status_code == 200
        assert_throttled(await api.call("GET", "/api/jobs", who="admin"))
        for _ in range(20):  # engine keys are unlimited by default
            r = await api.call("GET", "/api/scheduler/next-due", who="engine")
            assert r.status_code == 200


@pytest.mark.postgres
async def test_two_api_processes_share_the_limits(postgres_url: str) -> None:
    """Two API servers (real uvicorn, two ports) on one PostgreSQL database: the budget and
    the failed-authentication limit are shared, not granted once per replica."""
    limits = RateLimits(window_s=WINDOW_S, auth_failures=4, user=6)
    async with AsyncExitStack() as stack:
        one = await stack.enter_async_context(live_server(postgres_url, rate_limits=limits))
        two = await stack.enter_async_context(live_server(postgres_url, rate_limits=limits))
        client = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
        auth = {"Authorization": f"Bearer {one.keys['alice']}"}
        codes = []
        for i in range(10):
            server = (one, two)[i % 2]
            codes.append((await client.get(f"{server.url}/api/jobs", headers=auth)).status_code)
        assert codes == [200] * 6 + [429] * 4, codes

        for server in (one, two, one, two):
            assert (await client.get(f"{server.url}/api/jobs", headers=BAD)).status_code == 401
        for server in (one, two):
            r = await client.get(f"{server.url}/api/jobs", headers=BAD)
            assert_throttled(r)


def test_limits_and_quotas_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "CRONICORN_RATE_LIMIT_USER": "100",
            "CRONICORN_RATE_LIMIT_ENGINE": "5000",
            "CRONICORN_AUTH_FAILURE_LIMIT": "0",
            "CRONICORN_QUOTA_JOBS_PER_TENANT": "7",
            "CRONICORN_QUOTA_MESSAGE_BYTES": "2048",
        }
    )
    assert settings.rate_limits.user == 100
    assert settings.rate_limits.engine == 5000
    assert settings.rate_limits.auth_failures == 0
    assert settings.rate_limits.admin == RateLimits().admin
    assert settings.quotas.jobs_per_tenant == 7
    assert settings.quotas.message_bytes == 2048
    defaults = Settings.from_env({})
    assert defaults.rate_limits.engine == 0  # unlimited
    assert defaults.rate_limits.auth_failures > 0  # on by default


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CRONICORN_RATE_LIMIT_USER", "lots"),
        ("CRONICORN_RATE_LIMIT_WINDOW_S", "0"),
        ("CRONICORN_QUOTA_ENDPOINTS_PER_JOB", "-1"),
    ],
)
def test_bad_limit_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({name: value})
    assert name in str(info.value)
    assert "\n" not in str(info.value)


async def test_windows_reset_and_finished_ones_are_pruned(database_url: str) -> None:
    """The limiter on its own (as the dashboard's sign-in uses it), with a settable clock."""
    now = [1_000_000.0]
    db = create_engine(database_url)
    try:
        throttle = Throttle(
            RateLimitStore(db), RateLimits(window_s=60, auth_failures=2, user=1), lambda: now[0]
        )
        alice = Principal(tenant_id="t", scope=Scope.USER, key_id="k1")
        await throttle.spend(alice)
        now[0] += 15
        with pytest.raises(Throttled) as info:
            await throttle.spend(alice)
        window_end = (1_000_000 // 60 + 1) * 60
        assert info.value.retry_after_s == math.ceil(window_end - now[0])
        for _ in range(2):
            await throttle.check_failed_auth("10.0.0.9")
            await throttle.record_failed_auth("10.0.0.9")
        with pytest.raises(Throttled):
            await throttle.check_failed_auth("10.0.0.9")
        await throttle.check_failed_auth("10.0.0.10")  # another address is not affected

        now[0] = window_end + 1.0  # the next window: everything is allowed again
        await throttle.check_failed_auth("10.0.0.9")
        await throttle.spend(alice)
        async with db.connect() as conn:
            starts = (await conn.execute(sa.select(RateLimit.window_start))).scalars().all()
        assert {s.timestamp() for s in starts} == {window_end}
    finally:
        await db.dispose()
