"""The chaos run (bench/chaos.py), short: the API and two workers on PostgreSQL, a worker
`kill -9`ed twice and the API once while jobs run every 5 s (lease 5 s). Nothing may be
lost, stuck or completed twice; no duplicate may come from the API restart; every
duplicate from a worker kill carries the repeated Idempotency-Key; a killed worker's jobs
run again within lease + 5 s (plus the API's downtime when it was down meanwhile: nobody
can claim then)."""

from __future__ import annotations

import pytest
from bench.chaos import ChaosParams, run_chaos

from tests.conftest import postgres_admin_url

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(300)]

LEASE_MS = 5_000


async def test_short_chaos_run_keeps_every_guarantee() -> None:
    postgres_admin_url()  # skips without PostgreSQL (fails under CI)
    params = ChaosParams(
        jobs=40,
        interval_s=5,
        workers=2,
        duration_s=24,
        worker_kills=2,
        api_kills=1,
        lease_ms=LEASE_MS,
        call_ms=300,
        settle_s=12,
        job_concurrency=20,
        quiet=True,
    )

    report = await run_chaos(params)

    summary = "\n" + report.table() + f"\nlogs: {report.log_dir}"
    assert report.calls > params.jobs, summary
    assert report.runs_done > params.jobs, summary
    assert len(report.worker_kills) == 2, summary
    assert len(report.api_kills) == 1, summary
    assert report.lost == 0, summary
    assert report.stuck == 0, summary
    assert report.completed_twice == 0, summary
    assert report.left_running == 0, summary
    assert report.key_mismatches == 0, summary
    assert report.duplicates["api_restart"] == 0, summary
    assert report.duplicates["other"] == 0, summary
    worker_dups = report.duplicates["worker_kill"]
    assert report.duplicates_with_repeated_key["worker_kill"] == worker_dups, summary
    assert worker_dups <= report.runs_in_flight_at_kills, summary
    for kill in report.worker_kills:  # lease + 5 s, plus any API outage meanwhile
        if kill.recovery_s is None:
            continue
        outages = sum(
            api.restarted_in_s or 0
            for api in report.api_kills
            if api.at <= kill.at + LEASE_MS / 1000 + 5
            and kill.at <= api.at + (api.restarted_in_s or 0)
        )
        assert kill.recovery_s <= LEASE_MS / 1000 + 5 + outages, summary
