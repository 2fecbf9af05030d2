"""Retention on SQLite and PostgreSQL: what goes, what stays, and dry runs change nothing."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.errors import ConfigError
from cronicorn.settings import Settings
from cronicorn.store import retention
from cronicorn.store.retention import RetentionPolicy, prune
from cronicorn.store.tables import (
    AISessionRow,
    Alert,
    AlertChannel,
    AlertDelivery,
    EndpointResult,
    JobError,
    Message,
    Run,
)
from tests.fakes.clock import T0
from tests.fakes.rows import dump, job
from tests.fakes.seed import add_job, add_message, add_tenant

NOW = T0 + timedelta(days=100)


async def add_run(
    engine: AsyncEngine, job_id: str, started_at: datetime, status: str = "success"
) -> str:
    """A run with one endpoint result, in one transaction (a pruner may be running)."""
    run_id = str(uuid.uuid4())
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(Run).values(
                id=run_id,
                job_id=job_id,
                worker_id="w",
                lease_token=1,
                status=status,
                started_at=started_at,
                input_tokens=10,
            )
        )
        await conn.execute(
            sa.insert(EndpointResult).values(
                run_id=run_id,
                job_id=job_id,
                endpoint_id="ep",
                status="success",
                status_code=200,
                started_at=started_at,
                response_body={"ok": True},
            )
        )
    return run_id


async def add_error(engine: AsyncEngine, job_id: str, created_at: datetime) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(JobError).values(
                id=str(uuid.uuid4()),
                job_id=job_id,
                phase="execution",
                code="x",
                message="boom",
                created_at=created_at,
            )
        )


async def ids(engine: AsyncEngine, column: sa.orm.InstrumentedAttribute[str]) -> set[str]:
    async with engine.connect() as conn:
        return set((await conn.execute(sa.select(column))).scalars())


async def result_run_ids(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set((await conn.execute(sa.select(EndpointResult.run_id))).scalars())


def days_ago(n: float) -> datetime:
    return NOW - timedelta(days=n)


async def test_age_removes_old_finished_runs_with_their_results_and_keeps_running_ones(
    engine: AsyncEngine,
) -> None:
    tenant = await add_tenant(engine)
    job_id = await add_job(engine, tenant, input_tokens=1234, output_tokens=56)
    old = await add_run(engine, job_id, days_ago(40))
    old_failed = await add_run(engine, job_id, days_ago(31), status="failed")
    old_running = await add_run(engine, job_id, days_ago(45), status="running")
    recent = await add_run(engine, job_id, days_ago(5))

    report = await prune(engine, RetentionPolicy(run_retention_days=30, batch_size=1), now=NOW)

    assert await ids(engine, Run.id) == {old_running, recent}
    assert await result_run_ids(engine) == {old_running, recent}
    assert (report.runs, report.endpoint_results) == (2, 2)
    assert old not in await ids(engine, Run.id)
    assert old_failed not in await ids(engine, Run.id)
    # Totals are on the job row, not sums over runs: pruning leaves them alone.
    row = await job(engine, job_id)
    assert (row["input_tokens"], row["output_tokens"]) == (1234, 56)


async def test_max_runs_per_job_keeps_the_newest(engine: AsyncEngine) -> None:
    tenant = await add_tenant(engine)
    busy = await add_job(engine, tenant)
    quiet = await add_job(engine, tenant)
    busy_runs = [await add_run(engine, busy, days_ago(10 - i)) for i in range(6)]
    quiet_runs = [await add_run(engine, quiet, days_ago(10 - i)) for i in range(3)]

    report = await prune(engine, RetentionPolicy(run_retention_days=0, max_runs_per_job=3), now=NOW)

    assert await ids(engine, Run.id) == set(busy_runs[3:]) | set(quiet_runs)
    assert report.runs == 3


async def test_per_job_overrides_beat_the_global_policy(engine: AsyncEngine) -> None:
    tenant = await add_tenant(engine)
    keep_all = await add_job(engine, tenant, run_retention_days=0)
    short = await add_job(engine, tenant, run_retention_days=2)
    capped = await add_job(engine, tenant, max_runs_per_job=1)
    default = await add_job(engine, tenant)
    kept_old = await add_run(engine, keep_all, days_ago(90))
    short_old = await add_run(engine, short, days_ago(3))
    short_new = await add_run(engine, short, days_ago(1))
    capped_old = await add_run(engine, capped, days_ago(2))
    capped_new = await add_run(engine, capped, days_ago(1))
    default_old = await add_run(engine, default, days_ago(40))
    default_new = await add_run(engine, default, days_ago(3))

    await prune(engine, RetentionPolicy(run_retention_days=30), now=NOW)

    remaining = await ids(engine, Run.id)
    assert remaining == {kept_old, short_new, capped_new, default_new}
    assert not remaining & {short_old, capped_old, default_old}


async def test_messages_follow_run_retention_and_errors_their_own(engine: AsyncEngine) -> None:
    tenant = await add_tenant(engine)
    job_id = await add_job(engine, tenant)
    await add_message(engine, job_id, "old note", days_ago(40))
    await add_message(engine, job_id, "new note", days_ago(1))
    await add_error(engine, job_id, days_ago(20))
    await add_error(engine, job_id, days_ago(2))

    report = await prune(
        engine, RetentionPolicy(run_retention_days=30, error_retention_days=7), now=NOW
    )

    async with engine.connect() as conn:
        notes = set((await conn.execute(sa.select(Message.content))).scalars())
        errors = list((await conn.execute(sa.select(JobError.created_at))).scalars())
    assert notes == {"new note"}
    assert errors == [days_ago(2)]
    assert (report.messages, report.job_errors) == (1, 1)


async def test_dry_run_counts_exactly_and_changes_nothing(engine: AsyncEngine) -> None:
    tenant = await add_tenant(engine)
    job_id = await add_job(engine, tenant)
    for age in (50, 45, 40, 2, 1):
        await add_run(engine, job_id, days_ago(age))
    await add_message(engine, job_id, "old", days_ago(60))
    await add_error(engine, job_id, days_ago(60))
    policy = RetentionPolicy(run_retention_days=30, max_runs_per_job=3)
    before = await dump(engine)

    planned = await prune(engine, policy, now=NOW, dry_run=True)

    assert await dump(engine) == before
    # Runs matched by both the age and the cap rule are counted once.
    assert planned.as_dict() == {
        "runs": 3,
        "endpoint_results": 3,
        "ai_sessions": 0,
        "messages": 1,
        "job_errors": 1,
        "alerts": 0,
        "alert_deliveries": 0,
    }
    done = await prune(engine, policy, now=NOW)
    assert done.as_dict() == planned.as_dict()
    assert await prune(engine, policy, now=NOW, dry_run=True) == type(planned)(dry_run=True)


async def test_zero_limits_keep_everything(engine: AsyncEngine) -> None:
    tenant = await add_tenant(engine)
    job_id = await add_job(engine, tenant)
    await add_run(engine, job_id, days_ago(400))
    before = await dump(engine)

    report = await prune(
        engine,
        RetentionPolicy(run_retention_days=0, max_runs_per_job=0, error_retention_days=0),
        now=NOW,
    )

    assert await dump(engine) == before
    assert not any(report.as_dict().values())


async def test_resolved_incidents_go_with_their_delivery_log_open_ones_stay(
    engine: AsyncEngine,
) -> None:
    tenant = await add_tenant(engine)
    job_id = await add_job(engine, tenant)
    channel = str(uuid.uuid4())

    async def incident(status: str, resolved_days_ago: float | None) -> tuple[str, str]:
        alert_id, delivery_id = str(uuid.uuid4()), str(uuid.uuid4())
        resolved = days_ago(resolved_days_ago) if resolved_days_ago is not None else None
        async with engine.begin() as conn:
            await conn.execute(
                sa.insert(Alert).values(
                    id=alert_id,
                    tenant_id=tenant,
                    job_id=job_id,
                    kind=f"k-{alert_id[:8]}",
                    status=status,
                    resolved_at=resolved,
                )
            )
            await conn.execute(
                sa.insert(AlertDelivery).values(
                    id=delivery_id,
                    tenant_id=tenant,
                    alert_id=alert_id,
                    channel_id=channel,
                    event="opened",
                    status="delivered",
                    created_at=days_ago(60),
                )
            )
        return alert_id, delivery_id

    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(AlertChannel).values(id=channel, tenant_id=tenant, name="c", kind="webhook")
        )
    old_resolved = await incident("resolved", 40)
    recent_resolved = await incident("resolved", 1)
    still_open = await incident("open", None)

    report = await prune(engine, RetentionPolicy(error_retention_days=30), now=NOW)

    assert await ids(engine, Alert.id) == {recent_resolved[0], still_open[0]}
    assert await ids(engine, AlertDelivery.id) == {recent_resolved[1], still_open[1]}
    assert (report.alerts, report.alert_deliveries) == (1, 1)
    assert old_resolved[0] not in await ids(engine, Alert.id)


async def add_session(engine: AsyncEngine, run_id: str, job_id: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(AISessionRow).values(
                run_id=run_id,
                job_id=job_id,
                phase="plan",
                model="gpt-4o",
                started_at=T0,
                outcome="success",
                messages=[{"role": "user", "content": "hi"}],
                attempts=[],
            )
        )


async def test_ai_sessions_go_with_their_runs_and_the_cost_stays_on_the_job(
    engine: AsyncEngine,
) -> None:
    tenant = await add_tenant(engine)
    job_id = await add_job(engine, tenant, cost_usd_total=1.25)
    old = await add_run(engine, job_id, days_ago(40))
    recent = await add_run(engine, job_id, days_ago(1))
    for run_id in (old, old, recent):
        await add_session(engine, run_id, job_id)
    policy = RetentionPolicy(run_retention_days=30)

    planned = await prune(engine, policy, now=NOW, dry_run=True)
    report = await prune(engine, policy, now=NOW)

    assert planned.ai_sessions == report.ai_sessions == 2
    async with engine.connect() as conn:
        left = list((await conn.execute(sa.select(AISessionRow.run_id))).scalars())
    assert left == [recent]
    assert (await job(engine, job_id))["cost_usd_total"] == 1.25


async def test_deleting_a_run_cascades_to_its_ai_sessions(engine: AsyncEngine) -> None:
    tenant = await add_tenant(engine)
    job_id = await add_job(engine, tenant)
    run_id = await add_run(engine, job_id, days_ago(1))
    await add_session(engine, run_id, job_id)
    async with engine.begin() as conn:
        await conn.execute(sa.delete(EndpointResult).where(EndpointResult.run_id == run_id))
        await conn.execute(sa.delete(Run).where(Run.id == run_id))
    async with engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(AISessionRow)) == 0


async def test_batches_resume_past_equal_start_times_and_skip_running_runs(
    engine: AsyncEngine,
) -> None:
    """Batches walk the age index from where the last one ended (>= its last key): runs that
    share a start time with the end of a batch are not skipped, and a running run among
    them is kept without stopping the walk."""
    tenant = await add_tenant(engine)
    job_id = await add_job(engine, tenant)
    same = days_ago(40)
    tied = [await add_run(engine, job_id, same) for _ in range(3)]
    running = await add_run(engine, job_id, same, status="running")
    later = [await add_run(engine, job_id, days_ago(35 - i)) for i in range(3)]
    recent = await add_run(engine, job_id, days_ago(1))

    report = await prune(engine, RetentionPolicy(run_retention_days=30, batch_size=2), now=NOW)

    assert await ids(engine, Run.id) == {running, recent}
    assert report.runs == len(tied) + len(later) == 6
    assert report.batches == 3


async def test_the_cap_is_checked_job_by_job_across_chunks(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "CAP_CHUNK_JOBS", 2)
    tenant = await add_tenant(engine)
    jobs = [await add_job(engine, tenant) for _ in range(5)]
    own_cap = await add_job(engine, tenant, max_runs_per_job=1)
    kept: set[str] = set()
    for job_id in [*jobs, own_cap]:
        runs = [await add_run(engine, job_id, days_ago(10 - i)) for i in range(3)]
        kept |= set(runs[1:] if job_id != own_cap else runs[2:])

    planned = await prune(
        engine, RetentionPolicy(run_retention_days=0, max_runs_per_job=2), now=NOW, dry_run=True
    )
    report = await prune(engine, RetentionPolicy(run_retention_days=0, max_runs_per_job=2), now=NOW)

    assert await ids(engine, Run.id) == kept
    assert planned.runs == report.runs == 5 + 2


async def test_batch_size_and_duty_cycle_come_from_the_environment(engine: AsyncEngine) -> None:
    tenant = await add_tenant(engine)
    job_id = await add_job(engine, tenant)
    for age in range(31, 36):
        await add_run(engine, job_id, days_ago(age))
    settings = Settings.from_env(
        {
            "CRONICORN_RUN_RETENTION_DAYS": "30",
            "CRONICORN_PRUNE_BATCH_SIZE": "2",
            "CRONICORN_PRUNE_DUTY_PERCENT": "10",
        }
    )
    assert (settings.retention.batch_size, settings.prune_duty_percent) == (2, 10)
    defaults = Settings.from_env({})
    assert (defaults.retention.batch_size, defaults.prune_duty_percent) == (500, 25)

    started = time.monotonic()
    report = await prune(
        engine, settings.retention, now=NOW, duty_percent=settings.prune_duty_percent
    )
    wall = time.monotonic() - started

    assert (report.runs, report.batches) == (5, 3)
    # At 10 % the pass sleeps 9x the time its statements took (after each of them).
    assert report.busy_s > 0
    assert wall >= 9 * report.busy_s * 0.95
    unpaced = await prune(engine, settings.retention, now=NOW)
    assert unpaced.runs == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CRONICORN_PRUNE_DUTY_PERCENT", "0"),
        ("CRONICORN_PRUNE_DUTY_PERCENT", "101"),
        ("CRONICORN_PRUNE_BATCH_SIZE", "0"),
        ("CRONICORN_PRUNE_BATCH_SIZE", "many"),
    ],
)
def test_bad_pruner_settings_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({name: value})
    assert name in str(info.value)


async def test_a_pass_skips_while_another_process_prunes(engine: AsyncEngine) -> None:
    """PostgreSQL: several API processes each run a pruner; one pass at a time does work."""
    if engine.dialect.name != "postgresql":
        pytest.skip("the pruning lock is a PostgreSQL advisory lock")
    tenant = await add_tenant(engine)
    job_id = await add_job(engine, tenant)
    old = await add_run(engine, job_id, days_ago(40))
    policy = RetentionPolicy(run_retention_days=30)
    async with engine.connect() as other:
        await other.scalar(sa.select(sa.func.pg_advisory_lock(retention.PRUNER_LOCK)))
        skipped = await prune(engine, policy, now=NOW)
        assert skipped.skipped
        assert not any(skipped.as_dict().values())
        assert old in await ids(engine, Run.id)
        await other.scalar(sa.select(sa.func.pg_advisory_unlock(retention.PRUNER_LOCK)))
    done = await prune(engine, policy, now=NOW)
    assert (done.skipped, done.runs) == (False, 1)


async def test_the_background_pruner_has_its_own_postgres_connection(engine: AsyncEngine) -> None:
    own = retention.pruner_engine(engine)
    try:
        if engine.dialect.name != "postgresql":
            assert own is engine  # SQLite: one writer anyway, and maybe an in-memory database
            return
        assert own is not engine
        async with own.connect() as conn:
            assert await conn.scalar(sa.text("SHOW synchronous_commit")) == "off"
            assert await conn.scalar(sa.text("SHOW application_name")) == "cronicorn-pruner"
            assert await conn.scalar(sa.text("SHOW jit")) == "off"
            assert await conn.scalar(sa.text("SHOW plan_cache_mode")) == "auto"
    finally:
        if own is not engine:
            await own.dispose()
