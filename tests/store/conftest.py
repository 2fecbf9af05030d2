"""Store fixtures: an engine, a secret box and a repository on a fresh database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.store.db import create_engine
from cronicorn.store.scheduler_repo import SchedulerRepository
from cronicorn.store.secrets import SecretBox


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(SecretBox.generate_key())


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url)
    yield eng
    await eng.dispose()


@pytest.fixture
def repo(engine: AsyncEngine, box: SecretBox) -> SchedulerRepository:
    return SchedulerRepository(engine, box)
