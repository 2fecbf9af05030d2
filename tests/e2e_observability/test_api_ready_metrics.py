"""The API's `/ready` (database reachable and schema at the latest migration) and its
`/metrics` (requests counted by route template)."""

from __future__ import annotations

from pathlib import Path

import httpx2 as httpx
from prometheus_client.parser import text_string_to_metric_families

from cronicorn.api import create_app
from cronicorn.settings import Settings
from cronicorn.store.migrate import upgrade_database_async
from cronicorn.store.secrets import SecretBox


def requests_counted(text: str, route: str, status: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if (
                s.name == "cronicorn_http_requests_total"
                and s.labels.get("route") == route
                and s.labels.get("status") == status
            ):
                return s.value
    return 0.0


async def test_ready_is_503_until_the_database_is_migrated(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    app = create_app(Settings(database_url=url, secret_key=SecretBox.generate_key()))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            before = await client.get("/ready")
            assert before.status_code == 503
            assert before.json()["status"] == "unavailable"
            assert "migration" in before.json()["detail"]
            assert (await client.get("/health")).status_code == 200  # alive all the same

            await upgrade_database_async(url)
            after = await client.get("/ready")
            assert after.status_code == 200
            assert after.json()["status"] == "ready"

            scrape = await client.get("/metrics")
            assert scrape.status_code == 200
            assert requests_counted(scrape.text, "/ready", "503") == 1
            assert requests_counted(scrape.text, "/ready", "200") == 1
            await client.get("/api/jobs/3f2a-not-a-real-id")  # unauthenticated: 401
            scrape = await client.get("/metrics")
            assert requests_counted(scrape.text, "/api/jobs/{job_id}", "401") == 1
