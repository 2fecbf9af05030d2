"""The `SchedulerBackend` contract: the same behaviour from the in-process backend and from
the API client, on SQLite and on PostgreSQL (see `conftest.subject`).

Claims lease due jobs only, oldest first, with a fencing token that every claim bumps; a
leased job is not claimed again until its lease expires; writes under a lease that was
taken over or given up are refused (`LeaseLostError`, HTTP 409) and change nothing; a
completion sent twice is written once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from cronicorn.domain.models import (
    ClaimedJob,
    EndpointResult,
    EndpointStatus,
    ErrorPhase,
    Escalation,
    ExecutionStrategy,
    Heartbeat,
    JobErrorRecord,
    Lease,
    NextRun,
    Plan,
    PlanDecision,
    PlannedCall,
    PlanSource,
    RunCompletion,
    RunStatus,
    ScheduleSource,
    TokenUsage,
)
from cronicorn.errors import LeaseLostError
from cronicorn.store.tables import jobs_t, runs_t
from tests.contract.conftest import Subject
from tests.fakes import rows, seed
from tests.fakes.clock import until_past

LEASE_MS = 60_000
SHORT_LEASE_MS = 1_000  # the API's shortest lease
SECRET_HEADER = "hdr-s3cret"
SECRET_TOKEN = "tok-s3cret"


def now() -> datetime:
    return datetime.now(UTC)


def ago(seconds: float) -> datetime:
    return now() - timedelta(seconds=seconds)


async def add_job(s: Subject, **fields: Any) -> str:
    """A job (due a minute ago unless `next_run_at` is given) with one endpoint whose
    secrets are stored encrypted."""
    tenant = await seed.add_tenant(s.db)
    job_id = await seed.add_job(s.db, tenant, **{"next_run_at": ago(60), **fields})
    await seed.add_endpoint(
        s.db, s.box, job_id, headers={"X-Key": SECRET_HEADER}, bearer_token=SECRET_TOKEN
    )
    return job_id


async def claim_one(s: Subject, worker: str = "w1", lease_ms: int = LEASE_MS) -> ClaimedJob:
    [claimed] = await s.backend.claim(worker, 10, lease_ms)
    return claimed


def completion(claimed: ClaimedJob, next_run_at: datetime, **changes: Any) -> RunCompletion:
    """A successful run of the claimed job's endpoint, scheduled for `next_run_at`."""
    [spec] = claimed.context.endpoints
    started = now()
    fields: dict[str, Any] = {
        "status": RunStatus.COMPLETED,
        "started_at": started,
        "finished_at": started + timedelta(milliseconds=120),
        "plan": Plan(calls=(PlannedCall(spec.id),), strategy=ExecutionStrategy.SEQUENTIAL),
        "plan_source": PlanSource.RULES,
        "results": (
            EndpointResult(
                spec.id,
                EndpointStatus.SUCCESS,
                status_code=200,
                attempts=1,
                started_at=started,
                duration_ms=12.5,
                response_body={"backlog": 3},
                content_type="application/json",
            ),
        ),
        "escalation": Escalation.NONE,
        "next_run": NextRun(next_run_at, ScheduleSource.BASELINE_INTERVAL),
        "schedule_reasoning": "steady",
        "schedule_confidence": 0.9,
        "recommended_actions": (),
        "usage": TokenUsage(input=100, output=20),
        "ai_calls": 1,
        "summary": "1/1 endpoints succeeded",
        **changes,
    }
    return RunCompletion(**fields)


async def fenced_rows(s: Subject) -> list[tuple[Any, ...]]:
    """The jobs and runs rows, for "a refused write changed nothing"."""
    async with s.db.connect() as conn:
        jobs = (await conn.execute(sa.select(jobs_t).order_by(jobs_t.c.id))).all()
        runs = (await conn.execute(sa.select(runs_t).order_by(runs_t.c.id))).all()
    return [tuple(r) for r in [*jobs, *runs]]


# -- claim ------------------------------------------------------------------------------------


async def test_claim_leases_due_jobs_only_oldest_first(subject: Subject) -> None:
    s = subject
    later = await add_job(s, next_run_at=ago(60))
    oldest = await add_job(s, next_run_at=ago(120))
    crashed = await add_job(
        s, next_run_at=ago(90), lease_owner="crashed", lease_expires_at=ago(1), lease_token=4
    )
    in_an_hour = now() + timedelta(hours=1)
    await add_job(s, next_run_at=in_an_hour)  # not due yet
    await add_job(s, status="paused", next_run_at=ago(300))
    await add_job(s, next_run_at=ago(300), paused_until=in_an_hour)
    await add_job(s, next_run_at=ago(300), lease_owner="busy", lease_expires_at=in_an_hour)
    await add_job(s, next_run_at=None)  # never scheduled
    before = now()

    claimed = await s.backend.claim("w1", 10, LEASE_MS)

    assert [c.lease.job_id for c in claimed] == [oldest, crashed, later]
    assert [c.lease.token for c in claimed] == [1, 5, 1]  # every claim bumps the token
    for c in claimed:
        assert c.lease.worker_id == "w1"
        assert before + timedelta(milliseconds=LEASE_MS) <= c.lease.expires_at
        assert c.lease.expires_at <= now() + timedelta(milliseconds=LEASE_MS)
        [run] = await rows.runs(s.db, c.lease.job_id)
        assert (run["id"], run["status"], run["worker_id"]) == (c.lease.run_id, "running", "w1")
        assert run["lease_token"] == c.lease.token
        j = await rows.job(s.db, c.lease.job_id)
        assert (j["lease_owner"], j["lease_token"]) == ("w1", c.lease.token)
    [spec] = claimed[0].context.endpoints
    assert (spec.headers["X-Key"], spec.bearer_token) == (SECRET_HEADER, SECRET_TOKEN)
    assert claimed[0].context.job.id == oldest
    assert await s.backend.claim("w2", 10, LEASE_MS) == []


async def test_claim_takes_at_most_limit_jobs(subject: Subject) -> None:
    s = subject
    ids = [await add_job(s, next_run_at=ago(100 - i)) for i in range(3)]

    first = await s.backend.claim("w1", 2, LEASE_MS)
    second = await s.backend.claim("w2", 2, LEASE_MS)

    assert [c.lease.job_id for c in first] == ids[:2]
    assert [c.lease.job_id for c in second] == ids[2:]


async def test_a_leased_job_is_claimable_again_only_once_its_lease_expires(
    subject: Subject,
) -> None:
    """One job on a long lease, two on the API's shortest, one of which is extended. When
    the short leases run out, the other worker gets the expired one (with a new token and
    run) and neither of the jobs whose leases still hold; the first holder's writes under
    the lost lease are refused. (No assertion needs a 1 s lease to be still running, so a
    slow machine cannot fail it.)"""
    s = subject
    held_id = await add_job(s, next_run_at=ago(180))
    kept_id = await add_job(s, next_run_at=ago(120))
    lapsed_id = await add_job(s, next_run_at=ago(60))
    [held] = await s.backend.claim("w1", 1, LEASE_MS)
    kept, lapsed = await s.backend.claim("w1", 10, SHORT_LEASE_MS)
    assert (held.lease.job_id, kept.lease.job_id, lapsed.lease.job_id) == (
        held_id,
        kept_id,
        lapsed_id,
    )
    extended = await s.backend.extend(kept.lease, LEASE_MS)

    await until_past(lapsed.lease.expires_at)  # the stores' clock is the real one
    [taken] = await s.backend.claim("w2", 10, LEASE_MS)

    assert taken.lease.job_id == lapsed_id
    assert taken.lease.token == lapsed.lease.token + 1
    assert taken.lease.run_id != lapsed.lease.run_id
    assert (await rows.run_of(s.db, lapsed.lease.run_id))["status"] == "aborted"
    with pytest.raises(LeaseLostError):
        await s.backend.extend(lapsed.lease, LEASE_MS)
    await s.backend.complete(extended, completion(kept, now() + timedelta(minutes=5)))


async def test_a_long_poll_claim_returns_the_job_that_becomes_due_while_it_waits(
    subject: Subject,
) -> None:
    s = subject
    due_at = now() + timedelta(milliseconds=300)
    job_id = await add_job(s, next_run_at=due_at)

    claimed = await asyncio.wait_for(s.backend.claim("w1", 10, LEASE_MS, wait_ms=20_000), 10)

    assert [c.lease.job_id for c in claimed] == [job_id]
    assert now() >= due_at


async def test_a_claim_ahead_leases_jobs_due_within_its_window_only(subject: Subject) -> None:
    """`ahead_ms` moves only the due-time bound: a job due inside the window is leased
    (with its due time, for the engine to start it then), one due beyond it is not, and
    a pause or another worker's lease is still judged now."""
    s = subject
    soon = now() + timedelta(seconds=5)
    due_soon = await add_job(s, next_run_at=soon)
    await add_job(s, next_run_at=now() + timedelta(seconds=30))  # beyond the window
    await add_job(s, next_run_at=soon, paused_until=now() + timedelta(seconds=3))
    await add_job(s, next_run_at=soon, lease_owner="busy", lease_expires_at=soon)
    overdue = await add_job(s, next_run_at=ago(5))

    assert [c.lease.job_id for c in await s.backend.claim("w1", 10, LEASE_MS)] == [overdue]
    claimed = await s.backend.claim("w1", 10, LEASE_MS, ahead_ms=10_000)

    assert [c.lease.job_id for c in claimed] == [due_soon]
    assert abs((claimed[0].due_at - soon).total_seconds()) < 0.001
    [run] = await rows.runs(s.db, due_soon)
    assert (run["id"], run["status"]) == (claimed[0].lease.run_id, "running")
    assert await s.backend.claim("w2", 10, LEASE_MS, ahead_ms=10_000) == []


async def test_a_claim_without_history_leaves_out_past_messages_and_results(
    subject: Subject,
) -> None:
    s = subject
    job_id = await add_job(s)
    first = await claim_one(s)
    await s.backend.complete(first.lease, completion(first, ago(1)))  # due again at once

    [bare] = await s.backend.claim("w1", 10, LEASE_MS, history=False)
    assert bare.lease.job_id == job_id
    assert (bare.context.messages, bare.context.recent_results) == ((), ())
    assert [e.id for e in bare.context.endpoints] == [e.id for e in first.context.endpoints]
    await s.backend.release(bare.lease)

    full = await claim_one(s)
    assert [m.content for m in full.context.messages] == ["1/1 endpoints succeeded"]
    assert [r.response_excerpt for r in full.context.recent_results] == ['{"backlog":3}']


async def test_a_long_poll_claim_ahead_returns_the_job_before_it_is_due(
    subject: Subject,
) -> None:
    s = subject
    due_at = now() + timedelta(milliseconds=3_000)
    job_id = await add_job(s, next_run_at=due_at)

    claimed = await asyncio.wait_for(
        s.backend.claim("w1", 10, LEASE_MS, wait_ms=20_000, ahead_ms=2_500), 10
    )

    assert [c.lease.job_id for c in claimed] == [job_id]
    assert now() < due_at


# -- writes under a lease -------------------------------------------------------------------


async def test_extend_renews_the_lease_with_the_same_token(subject: Subject) -> None:
    s = subject
    await add_job(s)
    claimed = await claim_one(s, lease_ms=SHORT_LEASE_MS)
    before = now()

    extended = await s.backend.extend(claimed.lease, 120_000)

    assert before + timedelta(seconds=120) <= extended.expires_at
    assert extended.expires_at <= now() + timedelta(seconds=120)
    assert extended.expires_at > claimed.lease.expires_at
    assert (extended.job_id, extended.run_id) == (claimed.lease.job_id, claimed.lease.run_id)
    assert (extended.token, extended.worker_id) == (claimed.lease.token, "w1")
    j = await rows.job(s.db, claimed.lease.job_id)
    assert (j["lease_expires_at"], j["lease_token"]) == (extended.expires_at, extended.token)


async def test_record_plan_stores_the_plan_and_its_tokens(subject: Subject) -> None:
    s = subject
    await add_job(s)
    claimed = await claim_one(s)
    [spec] = claimed.context.endpoints
    plan = Plan(calls=(PlannedCall(spec.id, {"limit": 5}),), strategy=ExecutionStrategy.PARALLEL)

    await s.backend.record_plan(claimed.lease, PlanDecision(plan, PlanSource.AI, TokenUsage(40, 5)))

    run = await rows.run_of(s.db, claimed.lease.run_id)
    assert (run["status"], run["plan_source"], run["strategy"]) == ("running", "ai", "parallel")
    assert run["plan"]["endpoints_to_call"][0]["parameters"] == {"limit": 5}
    j = await rows.job(s.db, claimed.lease.job_id)
    assert (j["input_tokens"], j["output_tokens"]) == (40, 5)
    # The completion carries the run's total: the plan's tokens are not counted twice.
    await s.backend.complete(claimed.lease, completion(claimed, now() + timedelta(minutes=5)))
    j = await rows.job(s.db, claimed.lease.job_id)
    assert (j["input_tokens"], j["output_tokens"]) == (100, 20)


async def test_complete_writes_the_run_and_the_next_run_and_releases(subject: Subject) -> None:
    s = subject
    job_id = await add_job(s, consecutive_failures=2, input_tokens=1_000)
    claimed = await claim_one(s)
    next_run_at = now() + timedelta(minutes=5)
    done = completion(claimed, next_run_at)

    await s.backend.complete(claimed.lease, done)

    j = await rows.job(s.db, job_id)
    assert (j["lease_owner"], j["lease_expires_at"]) == (None, None)
    assert (j["next_run_at"], j["consecutive_failures"]) == (next_run_at, 0)
    assert j["last_schedule"]["source"] == "baseline_interval"
    assert (j["input_tokens"], j["output_tokens"]) == (1_100, 20)
    [run] = await rows.runs(s.db, job_id)
    assert (run["id"], run["status"]) == (claimed.lease.run_id, "completed")
    assert (run["finished_at"], run["success_count"]) == (done.finished_at, 1)
    assert (run["input_tokens"], run["output_tokens"], run["ai_calls"]) == (100, 20, 1)
    [result] = await rows.results(s.db, run["id"])
    assert (result["status_code"], result["response_body"]) == (200, {"backlog": 3})
    assert [m["content"] for m in await rows.messages(s.db, job_id)] == [done.summary]
    assert await s.backend.claim("w2", 10, LEASE_MS) == []  # next run is in five minutes
    assert await s.backend.next_due_at() == next_run_at


async def test_a_completion_sent_twice_is_written_once(subject: Subject) -> None:
    """A retried completion (its response was lost) is answered as written; a different
    completion under the same, finished lease is refused."""
    s = subject
    job_id = await add_job(s)
    claimed = await claim_one(s)
    done = completion(claimed, now() + timedelta(minutes=5))
    await s.backend.complete(claimed.lease, done)
    before = await fenced_rows(s)

    await s.backend.complete(claimed.lease, done)

    assert await fenced_rows(s) == before
    assert [r["status"] for r in await rows.runs(s.db, job_id)] == ["completed"]
    assert (await rows.job(s.db, job_id))["input_tokens"] == 100
    assert len(await rows.messages(s.db, job_id)) == 1
    other = completion(claimed, now() + timedelta(minutes=9), status=RunStatus.FAILED)
    with pytest.raises(LeaseLostError):
        await s.backend.complete(claimed.lease, other)
    assert await fenced_rows(s) == before


async def test_fail_records_the_error_once_and_sets_the_fallback_run(subject: Subject) -> None:
    s = subject
    job_id = await add_job(s)
    claimed = await claim_one(s)
    fallback = now() + timedelta(minutes=2)
    error = JobErrorRecord(ErrorPhase.SCHEDULE, "store_failed", "completion could not be stored")

    await s.backend.fail(
        claimed.lease,
        error,
        NextRun(fallback, ScheduleSource.BACKOFF),
        3,
        usage=TokenUsage(7, 2),
        ai_calls=1,
    )

    j = await rows.job(s.db, job_id)
    assert (j["lease_owner"], j["next_run_at"], j["consecutive_failures"]) == (None, fallback, 3)
    assert (j["input_tokens"], j["output_tokens"]) == (7, 2)
    run = await rows.run_of(s.db, claimed.lease.run_id)
    assert (run["status"], run["error"]) == ("failed", error.message)
    assert (run["input_tokens"], run["ai_calls"]) == (7, 1)
    [stored] = await rows.errors(s.db, job_id)
    assert (stored["phase"], stored["code"], stored["message"]) == (
        "schedule",
        "store_failed",
        error.message,
    )
    with pytest.raises(LeaseLostError):  # the lease is given up: a second fail is refused
        await s.backend.fail(claimed.lease, error, NextRun(fallback, ScheduleSource.BACKOFF), 4)
    assert len(await rows.errors(s.db, job_id)) == 1


async def test_release_gives_the_job_back_as_it_was(subject: Subject) -> None:
    s = subject
    due = ago(60)
    job_id = await add_job(s, next_run_at=due)
    claimed = await claim_one(s)

    await s.backend.release(claimed.lease)

    assert (await rows.run_of(s.db, claimed.lease.run_id))["status"] == "aborted"
    j = await rows.job(s.db, job_id)
    assert (j["lease_owner"], j["next_run_at"]) == (None, due)
    again = await claim_one(s, "w2")
    assert (again.lease.job_id, again.lease.token) == (job_id, claimed.lease.token + 1)
    with pytest.raises(LeaseLostError):
        await s.backend.complete(claimed.lease, completion(claimed, now()))


@pytest.mark.parametrize("reclaimer", ["w2", "w1"])
async def test_writes_under_a_stale_token_are_refused_and_change_nothing(
    subject: Subject, reclaimer: str
) -> None:
    """The lease was taken from w1 (force-unlocked) and the job claimed again — by another
    worker, or by w1 itself, where only the token tells the leases apart: every write under
    the old lease is a `LeaseLostError` (409 over the API); the new lease is untouched."""
    s = subject
    job_id = await add_job(s)
    stale = await claim_one(s, "w1")
    assert await s.admin.force_unlock([job_id], stale_only=False) == [job_id]
    current = await claim_one(s, reclaimer)
    assert current.lease.token == stale.lease.token + 2  # force-unlock and claim both bump it
    before = await fenced_rows(s)
    lease = stale.lease
    soon = NextRun(now() + timedelta(minutes=1), ScheduleSource.BACKOFF)
    writes: dict[str, Callable[[], Awaitable[object]]] = {
        "extend": lambda: s.backend.extend(lease, LEASE_MS),
        "record_plan": lambda: s.backend.record_plan(
            lease, PlanDecision(Plan(calls=()), PlanSource.RULES, TokenUsage(9, 9))
        ),
        "complete": lambda: s.backend.complete(lease, completion(stale, soon.at)),
        "fail": lambda: s.backend.fail(
            lease, JobErrorRecord(ErrorPhase.EXECUTE, "x", "y"), soon, 1
        ),
        "release": lambda: s.backend.release(lease),
    }

    for name, write in writes.items():
        with pytest.raises(LeaseLostError):
            await write()
        assert await fenced_rows(s) == before, name

    j = await rows.job(s.db, job_id)
    assert (j["lease_owner"], j["lease_token"]) == (reclaimer, current.lease.token)
    await s.backend.complete(current.lease, completion(current, now() + timedelta(minutes=5)))


def _forged(lease: Lease, **changes: Any) -> Lease:
    fields = {
        "job_id": lease.job_id,
        "run_id": lease.run_id,
        "worker_id": lease.worker_id,
        "token": lease.token,
        "expires_at": lease.expires_at,
        **changes,
    }
    return Lease(**fields)


async def test_a_lease_of_another_worker_or_token_cannot_write(subject: Subject) -> None:
    s = subject
    await add_job(s)
    claimed = await claim_one(s)
    before = await fenced_rows(s)

    for forged in (
        _forged(claimed.lease, worker_id="w2"),
        _forged(claimed.lease, token=claimed.lease.token + 1),
    ):
        with pytest.raises(LeaseLostError):
            await s.backend.extend(forged, LEASE_MS)
        with pytest.raises(LeaseLostError):
            await s.backend.release(forged)
    assert await fenced_rows(s) == before


# -- idle loop, workers, admin ----------------------------------------------------------------


async def test_next_due_at_is_when_the_earliest_job_becomes_claimable(subject: Subject) -> None:
    s = subject
    assert await s.backend.next_due_at() is None
    in_an_hour = now() + timedelta(hours=1)
    await add_job(s, next_run_at=in_an_hour)
    await add_job(s, status="paused", next_run_at=ago(600))
    assert await s.backend.next_due_at() == in_an_hour

    lease_ends = now() + timedelta(minutes=30)
    await add_job(s, next_run_at=ago(60), lease_owner="busy", lease_expires_at=lease_ends)
    assert await s.backend.next_due_at() == lease_ends

    pause_ends = now() + timedelta(minutes=20)
    await add_job(s, next_run_at=ago(60), paused_until=pause_ends)
    assert await s.backend.next_due_at() == pause_ends

    due = ago(5)
    await add_job(s, next_run_at=due)
    assert await s.backend.next_due_at() == due  # in the past: due now


async def test_heartbeats_list_workers_and_a_stopped_worker(subject: Subject) -> None:
    s = subject
    await s.backend.heartbeat("w1", Heartbeat(host="h1", pid=42, stats={"total_cycles": 3}))
    await s.backend.heartbeat("w1", Heartbeat(running_jobs=2, stats={"total_cycles": 4}))
    await s.backend.heartbeat("w2", Heartbeat(host="h2", pid=7))

    listed = await s.backend.list_workers()

    assert [w.id for w in listed] == ["w2", "w1"]  # most recent heartbeat first
    w1 = listed[1]
    assert (w1.host, w1.pid, w1.stopped_at) == ("h1", 42, None)  # not reported: kept
    assert (w1.stats["total_cycles"], w1.stats["running_jobs"]) == (4, 2)
    assert w1.last_heartbeat_at <= listed[0].last_heartbeat_at
    assert (await s.stats())["workers_live"] == 2

    await s.backend.mark_worker_stopped("w1")

    stopped = {w.id: w.stopped_at for w in await s.backend.list_workers()}
    assert stopped["w1"] is not None
    assert stopped["w2"] is None
    assert (await s.stats())["workers_live"] == 1
    await s.backend.heartbeat("w1", Heartbeat())  # alive again
    assert (await s.stats())["workers_live"] == 2
    assert {w.id: w.stopped_at for w in await s.backend.list_workers()}["w1"] is None


async def test_stats_count_jobs_runs_and_workers(subject: Subject) -> None:
    s = subject
    locked = await add_job(s, next_run_at=ago(120))
    due = ago(60)
    await add_job(s, next_run_at=due)
    await add_job(s, next_run_at=now() + timedelta(hours=1), consecutive_failures=2)
    await add_job(s, status="paused", next_run_at=ago(600), consecutive_failures=1)
    claimed = await s.backend.claim("w1", 1, LEASE_MS)
    assert [c.lease.job_id for c in claimed] == [locked]
    await s.backend.heartbeat("w1", Heartbeat(host="h", pid=1))

    assert await s.stats() == {
        "jobs_active": 3,
        "jobs_paused": 1,
        "jobs_due": 1,
        "jobs_locked": 1,
        "jobs_failing": 1,  # active jobs only
        "runs_running": 1,
        "workers_live": 1,
        "next_due_at": due,
    }


async def test_force_unlock_releases_stale_or_named_leases_and_fences_the_holder(
    subject: Subject,
) -> None:
    s = subject
    live_id = await add_job(s, next_run_at=ago(60))
    live = await claim_one(s, "w1")
    stale_id = await add_job(  # a crashed worker's lease, ten seconds past its expiry
        s, next_run_at=ago(120), lease_owner="crashed", lease_expires_at=ago(10), lease_token=3
    )

    assert await s.admin.force_unlock(None, stale_only=True) == [stale_id]
    j = await rows.job(s.db, stale_id)
    assert (j["lease_owner"], j["lease_expires_at"], j["lease_token"]) == (None, None, 4)
    assert await s.admin.force_unlock(None, stale_only=True) == []
    assert await s.admin.force_unlock([live_id], stale_only=True) == []  # not expired

    assert await s.admin.force_unlock([live_id], stale_only=False) == [live_id]

    assert (await rows.run_of(s.db, live.lease.run_id))["status"] == "aborted"
    with pytest.raises(LeaseLostError):
        await s.backend.complete(live.lease, completion(live, now()))
    claimed = await s.backend.claim("w2", 10, LEASE_MS)
    assert [(c.lease.job_id, c.lease.token) for c in claimed] == [
        (stale_id, 5),
        (live_id, live.lease.token + 2),
    ]
    assert await s.admin.force_unlock([], stale_only=False) == []
