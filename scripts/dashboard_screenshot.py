"""Write docs/img/job-page.png: the job page of a job with a few hours of adaptive history.

Seeds a throw-away SQLite database (runs with a realistic mix of schedule sources and
outcomes), serves the app on 127.0.0.1 and photographs the page with headless chromium.

    .venv/bin/python scripts/dashboard_screenshot.py [OUT.png]
"""

from __future__ import annotations

import asyncio
import math
import sys
import tempfile
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
import uvicorn

from cronicorn.api import create_app
from cronicorn.service import Services
from cronicorn.service.schemas import EndpointCreate, JobCreate, MessageCreate
from cronicorn.settings import Settings
from cronicorn.store.migrate import upgrade_database
from cronicorn.store.secrets import SecretBox
from cronicorn.store.tables import EndpointResult, Job, Run

OUT = Path(__file__).resolve().parent.parent / "docs" / "img" / "job-page.png"
RUNS = 160


def _history(job_id: str, now: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A backlog that swells and drains: the AI tightens and relaxes the interval, an outage
    backs off, a clamp and some reused decisions show up."""
    runs, results = [], []
    at = now
    for i in range(RUNS):
        wave = (1 + math.sin(i / 14)) / 2
        failed = 96 <= i < 101
        if i < 6:
            source, interval = "baseline_interval", 300.0
        elif failed:
            source, interval = "backoff", 60.0 * 2 ** (i - 96)
        elif i % 23 == 0:
            source, interval = "clamped_min", 30.0
        elif i % 4 == 1:
            source, interval = "ai_reused", 60 + 540 * wave
        else:
            source, interval = "ai", 60 + 540 * wave
        run_id = str(uuid.uuid4())
        finished = at + timedelta(milliseconds=180 + 40 * (i % 5))
        runs.append(
            {
                "id": run_id, "job_id": job_id, "worker_id": "worker-1", "lease_token": i + 1,
                "status": "failed" if failed else "completed", "started_at": at,
                "finished_at": finished, "duration_ms": 180.0 + 40 * (i % 5),
                "plan": {"endpoints_to_call": [{"endpoint_id": "backlog"}]},
                "plan_source": "ai" if source.startswith("ai") else "rules",
                "strategy": "sequential", "success_count": 0 if failed else 2,
                "failure_count": 1 if failed else 0,
                "schedule": {
                    "next_run_at": (finished + timedelta(seconds=interval)).isoformat(),
                    "source": source,
                    "reasoning": (
                        "Backlog is growing fast (182 orders, +40/min): check again soon."
                        if wave > 0.6 else "Backlog steady and low: relax the interval."
                    ),
                    "confidence": 0.86,
                },
                "input_tokens": 1400 if source == "ai" else 0,
                "output_tokens": 160 if source == "ai" else 0,
                "ai_calls": 2 if source == "ai" else 0,
            }
        )  # fmt: skip
        results.append(
            {
                "run_id": run_id, "job_id": job_id, "endpoint_id": "backlog", "position": 0,
                "status": "failure" if failed else "success",
                "status_code": 503 if failed else 200, "attempts": 3 if failed else 1,
                "started_at": at, "duration_ms": 95.0, "response_body": {"backlog": 40},
            }
        )  # fmt: skip
        at = finished + timedelta(seconds=interval)
    shift = now - timedelta(seconds=20) - runs[-1]["finished_at"]  # the last run just ended
    for row in (*runs, *results):
        for name in ("started_at", "finished_at"):
            if name in row:
                row[name] += shift
    for run in runs:
        planned = datetime.fromisoformat(run["schedule"]["next_run_at"]) + shift
        run["schedule"]["next_run_at"] = planned.isoformat()
    return runs, results


async def _seed(services: Services, db: Any) -> tuple[str, str]:
    key = (await services.keys.create("acme", "user")).key
    principal = await services.keys.authenticate(key)
    assert principal is not None
    job = await services.jobs.create(
        principal,
        JobCreate(
            name="orders-backlog",
            definition=(
                "Watch the order backlog. Poll faster while it grows, relax when it drains; "
                "call scale-up when it passes 150 orders."
            ),
            interval_ms=300_000,
            min_interval_ms=30_000,
            max_interval_ms=900_000,
        ),
    )
    await services.endpoints.create(
        principal,
        job.id,
        EndpointCreate(
            name="backlog",
            url="https://shop.example.com/orders/backlog",
            headers={"X-Api-Key": "not-shown"},
        ),
    )
    await services.endpoints.create(
        principal,
        job.id,
        EndpointCreate(
            name="scale-up",
            url="https://shop.example.com/scale-up",
            method="POST",
            bearer_token="not-shown",
            description="Only when the backlog is high.",
        ),
    )
    await services.history.post_message(
        principal, job.id, MessageCreate(content="Black Friday this week: expect spikes.")
    )
    now = datetime.now(UTC)
    runs, results = _history(job.id, now)
    last = runs[-1]
    async with db.begin() as conn:
        await conn.execute(sa.insert(cast(sa.Table, Run.__table__)), runs)
        await conn.execute(sa.insert(cast(sa.Table, EndpointResult.__table__)), results)
        await conn.execute(
            sa.update(cast(sa.Table, Job.__table__))
            .where(Job.id == job.id)
            .values(
                last_run_at=last["finished_at"],
                next_run_at=datetime.fromisoformat(last["schedule"]["next_run_at"]),
                last_schedule=last["schedule"],
                input_tokens=sum(r["input_tokens"] for r in runs),
                output_tokens=sum(r["output_tokens"] for r in runs),
            )
        )
    return key, job.id


def main() -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    out = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    tmp = Path(tempfile.mkdtemp())
    url = f"sqlite:///{tmp / 'shot.db'}"
    upgrade_database(url)
    app = create_app(Settings(database_url=url, secret_key=SecretBox.generate_key()))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    serving = asyncio.run_coroutine_threadsafe(server.serve(), loop)
    while not server.started:
        threading.Event().wait(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    seeding = asyncio.run_coroutine_threadsafe(_seed(app.state.services, app.state.db), loop)
    key, job_id = seeding.result(60)
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(base + "/")
        driver.find_element(By.ID, "signin-key").send_keys(key)
        driver.find_element(By.CSS_SELECTOR, "form[action='/signin'] button").click()
        WebDriverWait(driver, 10).until(lambda d: d.current_url.endswith("/jobs"))
        driver.get(f"{base}/jobs/{job_id}")
        driver.set_window_size(1280, 1500)  # the top of the page: status, timeline, runs
        out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out))
        print(f"wrote {out}")
    finally:
        driver.quit()
        server.should_exit = True
        serving.result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


if __name__ == "__main__":
    main()
