"""The clients import no server code: an engine or a CLI talking to a remote API must not
load FastAPI, SQLAlchemy, the API application or the store (issue 15)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SERVER_PACKAGES = ("fastapi", "starlette", "sqlalchemy", "cronicorn.api", "cronicorn.store")
"""Importing any module of these imports the package itself, so checking these names suffices."""

PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(sys.modules)))
"""


def loaded_by(module: str) -> list[str]:
    """Every module a fresh interpreter holds after importing `module`."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE, module], capture_output=True, text=True, check=True
    )
    names: list[str] = json.loads(out.stdout)
    return names


@pytest.mark.parametrize(
    "module",
    [
        "cronicorn.client",
        "cronicorn.client.api_backend",
        "cronicorn.client.user_api",
        "cronicorn.wire.scheduler",
    ],
)
def test_a_client_module_loads_no_server_code(module: str) -> None:
    loaded = loaded_by(module)
    assert module in loaded
    assert [name for name in SERVER_PACKAGES if name in loaded] == []


def test_the_clients_are_usable_from_the_package_root() -> None:
    """`from cronicorn.client import ApiSchedulerBackend` (docs/api.md) resolves lazily."""
    probe = (
        "import sys\n"
        "from cronicorn.client import ApiSchedulerBackend, UserApiClient\n"
        "assert ApiSchedulerBackend.__module__ == 'cronicorn.client.api_backend'\n"
        "assert UserApiClient.__module__ == 'cronicorn.client.user_api'\n"
        "assert 'sqlalchemy' not in sys.modules and 'fastapi' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", probe], check=True)
