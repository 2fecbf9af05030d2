"""End to end with a real engine, the real API app and a real webhook receiver: failing runs
raise one alert per incident, recovery sends one message, and a receiver that is down gets
retries while runs go on undelayed."""

from __future__ import annotations

import sqlalchemy as sa

from cronicorn.store.tables import AlertDelivery, AlertEvent, Job
from tests.alerting.conftest import JOB, Receiver, Stack, eventually, make_stack, serve_receiver


async def _job(stack: Stack, receiver: Receiver, **rule: object) -> str:
    await stack.ok(
        "POST",
        "/api/alerts/channels",
        json={"name": "ops", "kind": "webhook", "url": receiver.url("/hook")},
    )
    job = await stack.ok("POST", "/api/jobs", json=JOB)
    await stack.ok(
        "POST",
        f"/api/jobs/{job['id']}/endpoints",
        json={"name": "target", "url": receiver.url("/target")},
    )
    if rule:
        await stack.ok("PUT", f"/api/jobs/{job['id']}/alert-rule", json=rule)
    return str(job["id"])


async def _runs_and_dispatch(stack: Stack, job_id: str, times: int) -> None:
    for _ in range(times):
        await stack.run_job(job_id)
        await stack.dispatcher.run_once()


async def test_three_failures_raise_one_alert_and_recovery_sends_one_message(
    stack: Stack, receiver: Receiver
) -> None:
    job_id = await _job(stack, receiver)  # built-in rule: 3 consecutive failures

    await _runs_and_dispatch(stack, job_id, 2)
    assert receiver.at("/hook") == []  # below the threshold
    await _runs_and_dispatch(stack, job_id, 1)
    [opened] = receiver.at("/hook")
    await _runs_and_dispatch(stack, job_id, 2)
    assert len(receiver.at("/hook")) == 1  # still failing: the same incident, nobody re-told

    body = opened.json()
    assert body["event"] == "opened"
    assert body["alert"]["kind"] == "failing"
    assert body["alert"]["job_id"] == job_id
    assert body["url"] == f"https://cron.example/jobs/{job_id}"
    assert "failed 3 run(s) in a row" in body["text"]
    assert "HTTP 500" in body["text"]  # the last error
    [alert] = await stack.ok("GET", "/api/alerts", params={"job_id": job_id})
    assert alert["status"] == "open"
    assert alert["occurrences"] == 5
    runs = await stack.ok("GET", f"/api/jobs/{job_id}/runs", params={"limit": 10})
    first_run_started = min(r["started_at"] for r in runs)
    assert alert["since"] == first_run_started  # since the first failure of the streak

    receiver.target_status = 200
    await _runs_and_dispatch(stack, job_id, 2)
    hooks = receiver.at("/hook")
    assert len(hooks) == 2  # exactly one recovery message, none for the second good run
    recovered = hooks[1].json()
    assert recovered["event"] == "recovered"
    assert recovered["alert"]["id"] == alert["id"]
    assert "recovered" in recovered["text"]
    resolved = await stack.ok("GET", f"/api/alerts/{alert['id']}")
    assert resolved["status"] == "resolved"
    log = await stack.ok("GET", f"/api/alerts/{alert['id']}/deliveries")
    assert [(d["event"], d["status"], d["attempts"]) for d in log] == [
        ("opened", "delivered", 1),
        ("recovered", "delivered", 1),
    ]
    path = f"/api/alerts/{alert['id']}/deliveries"  # paged in creation order with `after`
    first = await stack.ok("GET", path, params={"limit": 1})
    rest = await stack.ok("GET", path, params={"limit": 1, "after": first[0]["id"]})
    assert [d["id"] for d in first + rest] == [d["id"] for d in log]
    assert await stack.ok("GET", path, params={"after": log[-1]["id"]}) == []
    unknown = await stack.call("GET", path, params={"after": alert["id"]})
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["query", "after"]

    receiver.target_status = 500
    await _runs_and_dispatch(stack, job_id, 3)
    assert len(receiver.at("/hook")) == 3  # a new streak is a new incident
    alerts = await stack.ok("GET", "/api/alerts", params={"job_id": job_id})
    assert [a["status"] for a in alerts] == ["open", "resolved"]


async def test_threshold_one_still_alerts_once_per_incident(
    stack: Stack, receiver: Receiver
) -> None:
    job_id = await _job(stack, receiver, failure_threshold=1, on_recovery=False)
    await _runs_and_dispatch(stack, job_id, 3)
    assert len(receiver.at("/hook")) == 1
    receiver.target_status = 200
    await _runs_and_dispatch(stack, job_id, 1)
    assert len(receiver.at("/hook")) == 1  # on_recovery off: the incident closes silently
    [alert] = await stack.ok("GET", "/api/alerts", params={"job_id": job_id})
    assert alert["status"] == "resolved"


async def test_healthy_runs_queue_nothing(stack: Stack, receiver: Receiver) -> None:
    """The hot path: a run with no alert condition and no open incident adds no row."""
    receiver.target_status = 200
    job_id = await _job(stack, receiver)
    for _ in range(3):
        await stack.run_job(job_id)
    async with stack.app.state.db.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(AlertEvent)) == 0
    receiver.target_status = 500
    await stack.run_job(job_id)
    async with stack.app.state.db.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(AlertEvent)) == 1


async def test_receiver_down_gets_retries_and_runs_are_not_delayed(database_url: str) -> None:
    down = Receiver()
    async with serve_receiver(down) as receiver:
        port = int(receiver.base_url.rsplit(":", 1)[1])
    # The receiver is stopped: its port now refuses connections. The job's endpoint lives
    # on a second server so runs themselves still reach something.
    async with (
        serve_receiver(Receiver()) as target,
        make_stack(database_url, dispatch=True) as stack,
    ):
        await stack.ok(
            "POST",
            "/api/alerts/channels",
            json={"name": "down", "kind": "webhook", "url": f"http://127.0.0.1:{port}/hook"},
        )
        job = await stack.ok("POST", "/api/jobs", json=JOB)
        job_id = job["id"]
        await stack.ok(
            "POST",
            f"/api/jobs/{job_id}/endpoints",
            json={"name": "target", "url": target.url("/target")},
        )
        await stack.ok("PUT", f"/api/jobs/{job_id}/alert-rule", json={"failure_threshold": 1})
        await stack.run_job(job_id)

        runs = await stack.ok("GET", f"/api/jobs/{job_id}/runs")
        assert runs[0]["status"] == "failed"  # the run completed …
        job_now = await stack.ok("GET", f"/api/jobs/{job_id}")
        assert job_now["next_run_at"] > runs[0]["finished_at"]  # … and its next run is set
        assert job_now["locked"] is False

        async def attempts() -> int:
            async with stack.app.state.db.connect() as conn:
                return int(await conn.scalar(sa.select(sa.func.max(AlertDelivery.attempts))) or 0)

        await eventually(lambda: attempts(), timeout_s=10)
        await eventually(lambda: _at_least(attempts, 2), timeout_s=10)
        [alert] = await stack.ok("GET", "/api/alerts", params={"job_id": job_id})
        [delivery] = await stack.ok("GET", f"/api/alerts/{alert['id']}/deliveries")
        assert delivery["status"] in ("pending", "failed")
        assert delivery["last_error"].startswith(f"127.0.0.1:{port}:")

        # The receiver comes back on the same port: a retry gets through.
        async with serve_receiver(down, port=port):
            await eventually(lambda: len(down.at("/hook")) == 1, timeout_s=10)
            await eventually(lambda: _delivered(stack, alert["id"]), timeout_s=10)
        async with stack.app.state.db.connect() as conn:
            row = (await conn.execute(sa.select(Job.next_run_at).where(Job.id == job_id))).one()
        assert row.next_run_at is not None


async def _at_least(fn: object, n: int) -> bool:
    value = await fn()  # type: ignore[operator]
    return bool(value >= n)


async def _delivered(stack: Stack, alert_id: str) -> bool:
    [delivery] = await stack.ok("GET", f"/api/alerts/{alert_id}/deliveries")
    return bool(delivery["status"] == "delivered" and delivery["attempts"] >= 2)


async def test_channel_rate_limit_defers_instead_of_dropping(
    stack: Stack, receiver: Receiver
) -> None:
    await stack.ok(
        "POST",
        "/api/alerts/channels",
        json={
            "name": "ops",
            "kind": "webhook",
            "url": receiver.url("/hook"),
            "rate_limit_per_minute": 1,
        },
    )
    await stack.ok("PUT", "/api/alerts/rules/default", json={"failure_threshold": 1})
    job_ids = []
    for name in ("a", "b"):
        job = await stack.ok("POST", "/api/jobs", json={**JOB, "name": name})
        await stack.ok(
            "POST",
            f"/api/jobs/{job['id']}/endpoints",
            json={"name": "target", "url": receiver.url("/target")},
        )
        job_ids.append(job["id"])
    await stack.ok("POST", f"/api/jobs/{job_ids[0]}/run-now")
    await stack.ok("POST", f"/api/jobs/{job_ids[1]}/run-now")
    assert (await stack.engine.process_cycle()).jobs_processed == 2
    await stack.dispatcher.run_once()

    assert len(receiver.at("/hook")) == 1
    logs = []
    for alert in await stack.ok("GET", "/api/alerts"):
        [delivery] = await stack.ok("GET", f"/api/alerts/{alert['id']}/deliveries")
        logs.append(delivery)
    waiting = [d for d in logs if d["status"] == "pending"]
    assert len(waiting) == 1
    assert waiting[0]["attempts"] == 0
    assert waiting[0]["last_error"] == "waiting: channel rate limit (1 per minute)"
    delivered = next(d for d in logs if d["status"] == "delivered")
    assert waiting[0]["next_attempt_at"] >= delivered["delivered_at"]
