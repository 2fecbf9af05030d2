from __future__ import annotations

import sqlalchemy as sa

from cronicorn.store.db import create_engine


async def test_schema_has_every_table(database_url: str) -> None:
    engine = create_engine(database_url)
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
    await engine.dispose()
    assert {
        "tenants",
        "api_keys",
        "jobs",
        "endpoints",
        "messages",
        "runs",
        "endpoint_results",
        "job_errors",
        "workers",
    } <= set(names)
