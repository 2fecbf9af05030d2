"""`python -m cronicorn.store.migrations_check`: fail (exit 1) if the migrations do not
reproduce `tables.py` exactly, checked on a throwaway SQLite database. Run by `.ci/run`;
the test suite does the same on PostgreSQL."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from cronicorn.store.migrate import schema_drift, upgrade_database


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'check.db'}"
        upgrade_database(url)
        drift = asyncio.run(schema_drift(url))
    if drift:
        print("migrations drift from cronicorn/store/tables.py:", *drift, sep="\n  ")
        return 1
    print("migrations match tables.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
