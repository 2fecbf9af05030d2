"""Schema migrations from Python: used by `cronicorn db upgrade`, `cronicorn serve`, the engine
(`prepare_schema`: the library, `cronicorn run`, `cronicorn-engine`) and `/ready`.

The Alembic scripts ship inside the package (`cronicorn/store/migrations`), so this works
from an installed wheel without an alembic.ini. `upgrade_database` is synchronous (Alembic
runs its own event loop); from async code use `upgrade_database_async`.

Checking is cheap, migrating is not: `schema_is_current` is one `SELECT version_num FROM
alembic_version` compared with the packaged head revision (read from the migration files'
`revision`/`down_revision` lines, no Alembic import), so `cronicorn serve` on a current
schema starts serving at once (an API restart is an outage for the workers). Alembic itself
is imported only when something has to be migrated, stamped or diffed.
"""

from __future__ import annotations

import ast
import asyncio
import functools
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cronicorn.errors import ConfigError
from cronicorn.store.db import create_engine, normalize_database_url

if TYPE_CHECKING:
    from alembic.config import Config

SCRIPT_LOCATION = "cronicorn.store:migrations"
VERSIONS_DIR = Path(__file__).parent / "migrations" / "versions"
_READ_VERSION = sa.text("SELECT version_num FROM alembic_version")
logger = logging.getLogger("cronicorn.store.migrate")


class SchemaNotReady(ConfigError):
    """The PostgreSQL schema is missing or not at this version's revision."""


@functools.cache
def packaged_heads() -> frozenset[str]:
    """The head revision(s) of the packaged migrations, from each file's `revision` and
    `down_revision` assignments (a test checks this equals Alembic's own answer)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in VERSIONS_DIR.glob("*.py"):
        values = _assignments(path, ("revision", "down_revision"))
        if isinstance(values.get("revision"), str):
            revisions.add(values["revision"])
        down = values.get("down_revision")
        if isinstance(down, str):
            parents.add(down)
        elif isinstance(down, tuple | list):
            parents.update(d for d in down if isinstance(d, str))
    return frozenset(revisions - parents)


def _assignments(path: Path, names: tuple[str, ...]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in names:
            try:
                found[target.id] = ast.literal_eval(value)
            except ValueError:
                continue
    return found


async def current_revisions(conn: AsyncConnection) -> set[str]:
    """The revisions recorded in `alembic_version` (empty: none, or no such table). Use a
    connection of its own: on PostgreSQL a missing table aborts the transaction."""
    try:
        rows = await conn.execute(_READ_VERSION)
    except sa.exc.DBAPIError:
        return set()
    return {row[0] for row in rows}


async def schema_is_current(database: str | AsyncEngine) -> bool:
    """One query: is the database at the packaged head revision?"""
    engine = create_engine(database) if isinstance(database, str) else database
    try:
        async with engine.connect() as conn:
            current = await current_revisions(conn)
    finally:
        if isinstance(database, str):
            await engine.dispose()
    return current == set(packaged_heads())


def ensure_database_current(url: str) -> bool:
    """`cronicorn serve`: migrate only when the schema is not current (one query when it
    is). Returns True when migrations ran. Synchronous, like `upgrade_database`."""
    if _has_database(url) and asyncio.run(schema_is_current(url)):
        return False
    upgrade_database(url)
    return True


def _has_database(url: str) -> bool:
    """False for a SQLite file that does not exist yet (checking would create it)."""
    parsed = make_url(normalize_database_url(url))
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return True
    return Path(parsed.database).expanduser().exists()


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at the packaged scripts and (optionally) a database."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    if url is not None:
        cfg.attributes["database_url"] = url
    return cfg


def head_revisions() -> set[str]:
    """Alembic's answer (imports every migration script); see `packaged_heads`."""
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for other databases and in-memory SQLite)."""
    parsed = make_url(normalize_database_url(url))
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return Path(parsed.database).expanduser().resolve()
    return None


def _ensure_sqlite_dir(url: str) -> None:
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def upgrade_database(url: str, revision: str = "head") -> None:
    """Migrate the database at `url` to `revision` (creating a SQLite file and its
    directory if needed). Synchronous; do not call from a running event loop."""
    from alembic import command

    _ensure_sqlite_dir(url)
    command.upgrade(alembic_config(url), revision)


async def upgrade_database_async(url: str, revision: str = "head") -> None:
    """`upgrade_database` for async callers (runs Alembic in a worker thread)."""
    await asyncio.to_thread(upgrade_database, url, revision)


async def prepare_schema(url: str) -> None:
    """Make sure the schema fits this version before an engine uses the database.

    Embedded SQLite (the default): migrate to head, creating the file if needed (and say
    where). PostgreSQL is shared by every process, so it is never migrated implicitly: a
    missing or older schema raises `SchemaNotReady`, one line naming `cronicorn db upgrade`."""
    if make_url(normalize_database_url(url)).get_backend_name() == "sqlite":
        path = sqlite_path(url)
        # New: no file yet, or an empty one (made private before its first use).
        created = path is not None and (not path.exists() or path.stat().st_size == 0)
        if not created and await schema_is_current(url):
            return
        await upgrade_database_async(url)
        if created:
            logger.warning(
                "created the SQLite database %s (set CRONICORN_DATABASE_URL to keep it elsewhere)",
                path,
            )
        return
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            current = await current_revisions(conn)
    finally:
        await engine.dispose()
    heads = set(packaged_heads())
    if current == heads:
        return
    name = make_url(normalize_database_url(url)).database
    found = f"is at revision {', '.join(sorted(current))}" if current else "has no schema"
    raise SchemaNotReady(
        f"database {name!r} {found}, this version needs {', '.join(sorted(heads))}: "
        "run `cronicorn db upgrade` first"
    )


def stamp_database(url: str, revision: str = "head") -> None:
    """Record `revision` without running migrations (for a schema made by
    `Base.metadata.create_all`, as the test fixtures do). Synchronous, like upgrade."""
    from alembic import command

    command.stamp(alembic_config(url), revision)


async def check_migrations_current(database: str | AsyncEngine) -> bool:
    """True when the database is at the head revision (used by `/ready`)."""
    return await schema_is_current(database)


def _diff(conn: Connection) -> list[Any]:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from cronicorn.store.tables import Base

    ctx = MigrationContext.configure(
        conn, opts={"compare_type": True, "render_as_batch": conn.dialect.name == "sqlite"}
    )
    return list(compare_metadata(ctx, Base.metadata))


async def schema_drift(database: str | AsyncEngine) -> list[Any]:
    """Differences between the live schema and `tables.py` (empty list: no drift)."""
    engine = create_engine(database) if isinstance(database, str) else database
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_diff)
    finally:
        if isinstance(database, str):
            await engine.dispose()
