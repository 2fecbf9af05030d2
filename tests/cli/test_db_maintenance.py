"""`cronicorn db prune` and `cronicorn db backup` through the CLI on SQLite."""

from __future__ import annotations

import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from cronicorn.service import Services
from cronicorn.service.schemas import EndpointCreate, JobCreate
from cronicorn.settings import Settings
from cronicorn.store.db import create_engine, session_factory
from cronicorn.store.tables import Endpoint, Run, utcnow
from tests.cli.conftest import Invoke
from tests.fakes.rows import dump
from tests.store.test_retention import add_run

SECRET = "s3cret-Header-Value"
POSTGRES = os.environ.get("CRONICORN_TEST_POSTGRES_URL")  # read before `cli_env` clears it


async def _seed(url: str) -> tuple[str, str]:
    """A tenant, a job with an endpoint carrying a secret header, and 3 runs (2 old)."""
    engine = create_engine(url)
    try:
        services = Services.build(session_factory(engine), Settings.from_env().secret_box())
        created = await services.keys.create("acme", "user")
        principal = await services.keys.authenticate(created.key)
        assert principal is not None
        job = await services.jobs.create(
            principal, JobCreate(name="orders", definition="poll", interval_ms=60_000)
        )
        endpoint = await services.endpoints.create(
            principal,
            job.id,
            EndpointCreate(
                name="backlog", url="https://shop.example/backlog", headers={"X-Token": SECRET}
            ),
        )
        now = utcnow()
        for age in (90, 60, 1):
            await add_run(engine, job.id, now - timedelta(days=age))
        return job.id, endpoint.id
    finally:
        await engine.dispose()


async def test_prune_dry_run_changes_nothing_then_prune_removes_old_runs(
    invoke: Invoke, cli_env: str
) -> None:
    assert (await invoke("db", "upgrade")).exit_code == 0
    await _seed(cli_env)
    engine = create_engine(cli_env)
    try:
        before = await dump(engine)

        dry = await invoke("db", "prune", "--dry-run")
        assert dry.exit_code == 0, dry.output
        assert "would remove: 2 runs, 2 endpoint_results" in dry.output
        assert await dump(engine) == before

        done = await invoke("db", "prune")
        assert done.exit_code == 0, done.output
        assert "removed: 2 runs, 2 endpoint_results" in done.output
        async with engine.connect() as conn:
            assert await conn.scalar(sa.select(sa.func.count()).select_from(Run)) == 1
    finally:
        await engine.dispose()


async def test_backup_restores_with_secrets_still_decryptable(
    invoke: Invoke, cli_env: str, tmp_path: Path
) -> None:
    assert (await invoke("db", "upgrade")).exit_code == 0
    job_id, endpoint_id = await _seed(cli_env)
    copy = tmp_path / "backups" / "cronicorn-copy.db"

    result = await invoke("db", "backup", str(copy))

    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(os.stat(copy).st_mode) == 0o600
    again = await invoke("db", "backup", str(copy))
    assert again.exit_code == 2
    assert "exists" in again.output
    # Restore = use the copy as the database, with the same secret key.
    restored = create_engine(f"sqlite:///{copy}")
    try:
        box = Settings.from_env().secret_box()
        async with restored.connect() as conn:
            row = (await conn.execute(sa.select(Endpoint).where(Endpoint.id == endpoint_id))).one()
            runs = await conn.scalar(
                sa.select(sa.func.count()).select_from(Run).where(Run.job_id == job_id)
            )
        assert SECRET not in str(row.headers)
        assert box.decrypt_map(row.headers) == {"X-Token": SECRET}
        assert runs == 3
    finally:
        await restored.dispose()


async def test_backup_refuses_postgres_with_a_pointer_to_pg_dump(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CRONICORN_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/nope")
    result = await invoke("db", "backup", str(tmp_path / "x.dump"))
    assert result.exit_code == 2
    assert "pg_dump" in result.output


async def test_prune_says_so_when_another_process_is_pruning(
    invoke: Invoke, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cronicorn.store.retention import PRUNER_LOCK

    if POSTGRES is None:
        pytest.skip("CRONICORN_TEST_POSTGRES_URL not set: the pruning lock is PostgreSQL's")
    monkeypatch.setenv("CRONICORN_TEST_POSTGRES_URL", POSTGRES)
    postgres_url: str = request.getfixturevalue("empty_postgres_url")
    monkeypatch.setenv("CRONICORN_DATABASE_URL", postgres_url)
    assert (await invoke("db", "upgrade")).exit_code == 0
    engine = create_engine(postgres_url)
    try:
        async with engine.connect() as other:
            await other.scalar(sa.select(sa.func.pg_advisory_lock(PRUNER_LOCK)))
            busy = await invoke("db", "prune")
            assert busy.exit_code != 0
            assert "another process is pruning" in busy.output
            await other.scalar(sa.select(sa.func.pg_advisory_unlock(PRUNER_LOCK)))
        done = await invoke("db", "prune")
        assert done.exit_code == 0, done.output
        assert "removed: 0 runs" in done.output
    finally:
        await engine.dispose()
