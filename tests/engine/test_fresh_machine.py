"""Issue 15: the seed's library snippet on a fresh machine. On the embedded SQLite default the
engine brings the schema up to date itself and says which files it created; on PostgreSQL a
missing or old schema is one clear line naming `cronicorn db upgrade`."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cronicorn.store.migrate import upgrade_database
from tests.e2e._processes import BIN, clean_env

SNIPPET = textwrap.dedent(
    """
    import asyncio
    from cronicorn import create_scheduling_engine

    async def main() -> None:
        engine = create_scheduling_engine({
            "ai_agent": {"model": "gpt-4o", "temperature": 0.2},
            "execution": {"max_concurrency": 5, "default_timeout_ms": 30_000},
            "metrics": {"enabled": True, "track_token_usage": True},
            "scheduler": {"max_batch_size": 20, "processing_interval_ms": 60_000},
        })
        try:
            result = await engine.process_cycle()
            print("processed", result.jobs_processed, result.errors)
        finally:
            await engine.stop()

    asyncio.run(main())
    """
)


def _run_snippet(cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return _run(cwd, [sys.executable, "-c", SNIPPET], **env)


def _run(cwd: Path, argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """`argv` in `cwd` with only `env` on top of a clean environment, its output captured."""
    return subprocess.run(
        argv,
        cwd=cwd,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_library_snippet_in_an_empty_directory_creates_and_migrates_sqlite(
    tmp_path: Path,
) -> None:
    result = _run_snippet(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "processed 0 []"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cronicorn.db", "secret.key"]
    # Where the files went is said, not silent.
    assert f"created the SQLite database {tmp_path / 'cronicorn.db'}" in result.stderr
    assert f"created the secret key file {tmp_path / 'secret.key'}" in result.stderr
    # A second run finds everything in place and says nothing about files.
    again = _run_snippet(tmp_path)
    assert again.returncode == 0, again.stderr
    assert "created" not in again.stderr


def test_cronicorn_engine_process_in_an_empty_directory(tmp_path: Path) -> None:
    result = _run(tmp_path, [str(BIN / "cronicorn-engine"), "process"])
    assert result.returncode == 0, result.stderr
    assert "No jobs due." in result.stdout
    assert (tmp_path / "cronicorn.db").exists()
    assert "created the SQLite database" in result.stderr


@pytest.mark.postgres
def test_postgres_without_schema_is_one_line_naming_db_upgrade(
    tmp_path: Path, empty_postgres_url: str
) -> None:
    env = {"CRONICORN_DATABASE_URL": empty_postgres_url}
    library = _run_snippet(tmp_path, **env)
    assert library.returncode == 1
    last = library.stderr.strip().splitlines()[-1]
    assert "SchemaNotReady" in last
    assert "has no schema" in last
    assert "run `cronicorn db upgrade` first" in last
    assert "UndefinedTable" not in library.stderr

    cli = _run(tmp_path, [str(BIN / "cronicorn-engine"), "process"], **env)
    assert cli.returncode == 2
    [line] = cli.stderr.strip().splitlines()
    assert line.startswith("error: database ")
    assert "run `cronicorn db upgrade` first" in line
    for dry in ((), ("--dry-run",)):
        prune = _run(tmp_path, [str(BIN / "cronicorn"), "db", "prune", *dry], **env)
        assert prune.returncode == 2, prune.stderr
        assert prune.stderr.strip().splitlines() == [line]

    upgrade_database(empty_postgres_url)  # what the message says to do
    library = _run_snippet(tmp_path, **env)
    assert library.returncode == 0, library.stderr
    assert library.stdout.strip() == "processed 0 []"
