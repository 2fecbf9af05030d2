"""`cronicorn serve` freezes its start-up heap once started (`cronicorn.runtime.heap`): the
garbage collector's full passes over it stalled every claim and completion the API served.
An app embedded in another process (a library caller's, these tests') leaves the heap alone."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from fastapi import FastAPI

from cronicorn.api import create_app
from cronicorn.api.app import create_server_app
from tests.api.conftest import SECRET_KEY, settings_for


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    """The test process's heap is thawed after each test (a frozen object is never
    collected as part of a cycle)."""
    gc.unfreeze()
    yield
    gc.unfreeze()


async def _frozen_while_serving(app: FastAPI) -> int:
    async with app.router.lifespan_context(app):
        return gc.get_freeze_count()


async def test_a_serving_app_freezes_its_startup_heap(sqlite_url: str) -> None:
    frozen = await _frozen_while_serving(create_app(settings_for(sqlite_url), freeze_heap=True))
    assert frozen > 10_000  # modules, routes, schemas: the bulk of the process


async def test_an_embedded_app_leaves_the_heap_alone(sqlite_url: str) -> None:
    assert await _frozen_while_serving(create_app(settings_for(sqlite_url))) == 0


async def test_serve_with_workers_uses_the_freezing_factory(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRONICORN_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("CRONICORN_SECRET_KEY", SECRET_KEY)
    assert await _frozen_while_serving(create_server_app()) > 10_000
