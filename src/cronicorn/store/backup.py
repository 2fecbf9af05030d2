"""Online backups of the embedded SQLite database (PostgreSQL: pg_dump, see docs/operations.md)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from sqlalchemy.engine import make_url

from cronicorn.errors import ConfigError
from cronicorn.store.db import is_sqlite, normalize_database_url

__all__ = ["backup_sqlite"]


def backup_sqlite(url: str, target: Path) -> int:
    """Copy the SQLite database at `url` to `target` with SQLite's online backup API (a
    consistent snapshot while engines keep writing); the copy is created mode 0600.
    Returns the number of pages copied."""
    if not is_sqlite(url):
        raise ConfigError(
            "cronicorn db backup copies SQLite databases; on PostgreSQL use pg_dump "
            "(see docs/operations.md)"
        )
    source_path = make_url(normalize_database_url(url)).database
    if source_path in (None, "", ":memory:") or not Path(source_path).exists():
        raise ConfigError(f"no SQLite database at {source_path!r}")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    source = sqlite3.connect(source_path)
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)
        return int(copy.execute("PRAGMA page_count").fetchone()[0])
    finally:
        copy.close()
        source.close()
