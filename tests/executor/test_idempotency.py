"""`Idempotency-Key` on every endpoint call: the same across retries and re-runs of one due
time of one endpoint, different for the next due time and for other endpoints."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from cronicorn.domain.idempotency import IDEMPOTENCY_HEADER, NAMESPACE, DueRun, idempotency_key
from cronicorn.domain.models import EndpointStatus
from cronicorn.executor import HttpExecutor

from .conftest import Serve, by_id, call, endpoint, local_config, plan

DUE = datetime(2030, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)


class KeyRecorder:
    """/k/{name}: answers 503 for the first `failures` calls, then 200; records keys."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.keys: list[tuple[str, str | None]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/k/{name}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.keys.append((name, request.headers.get(IDEMPOTENCY_HEADER)))
        status = 503 if len(self.keys) <= self.failures else 200
        return web.json_response({"n": len(self.keys)}, status=status)


async def test_retries_carry_the_same_key(serve: Serve, executors: list[HttpExecutor]) -> None:
    recorder = KeyRecorder(failures=2)
    base = await serve(recorder.app())
    ex = HttpExecutor(local_config(max_endpoint_retries=3))
    executors.append(ex)

    [result] = await ex.execute(
        plan(call("e")), by_id(endpoint("e", f"{base}/k/e")), due_run=DueRun("job-1", DUE)
    )

    assert result.status == EndpointStatus.SUCCESS
    assert result.attempts == 3
    keys = {key for _, key in recorder.keys}
    assert keys == {idempotency_key("job-1", DUE, "e")}


async def test_reruns_of_a_due_time_repeat_the_key_the_next_due_time_does_not(
    serve: Serve, executors: list[HttpExecutor]
) -> None:
    recorder = KeyRecorder()
    base = await serve(recorder.app())
    eps = by_id(endpoint("a", f"{base}/k/a"), endpoint("b", f"{base}/k/b"))
    ex = HttpExecutor(local_config())
    executors.append(ex)
    both = plan(call("a"), call("b"))

    await ex.execute(both, eps, due_run=DueRun("job-1", DUE))
    await ex.execute(both, eps, due_run=DueRun("job-1", DUE))  # a re-run (worker crash)
    await ex.execute(both, eps, due_run=DueRun("job-1", DUE + timedelta(minutes=1)))

    first, rerun, nxt = recorder.keys[0:2], recorder.keys[2:4], recorder.keys[4:6]
    assert first == rerun
    assert {k for _, k in first}.isdisjoint({k for _, k in nxt})
    assert len({k for _, k in first}) == 2  # per endpoint
    assert all(k is not None for _, k in recorder.keys)


async def test_a_call_without_a_due_run_still_carries_a_key(
    serve: Serve, executors: list[HttpExecutor]
) -> None:
    recorder = KeyRecorder()
    base = await serve(recorder.app())
    ex = HttpExecutor(local_config())
    executors.append(ex)
    ep = endpoint("e", f"{base}/k/e", headers={"Idempotency-Key": "user-set"})

    await ex.execute(plan(call("e")), by_id(ep))
    await ex.execute(plan(call("e")), by_id(ep))

    [(_, one), (_, two)] = recorder.keys
    assert one is not None
    assert two is not None
    assert one != two
    assert uuid.UUID(one).version == 4


@given(
    job=st.text(min_size=1, max_size=40),
    endpoint_id=st.text(min_size=1, max_size=40),
    offset_us=st.integers(min_value=1, max_value=10**12),
)
def test_key_is_stable_and_changes_with_every_part(
    job: str, endpoint_id: str, offset_us: int
) -> None:
    key = idempotency_key(job, DUE, endpoint_id)
    due = DUE.isoformat(timespec="microseconds")
    assert key == str(uuid.uuid5(NAMESPACE, f"{job}|{due}|{endpoint_id}"))  # the documented key
    assert key == idempotency_key(job, DUE.astimezone(UTC), endpoint_id)
    assert uuid.UUID(key).version == 5
    assert key != idempotency_key(job, DUE + timedelta(microseconds=offset_us), endpoint_id)
    assert key != idempotency_key(job + "x", DUE, endpoint_id)
    assert key != idempotency_key(job, DUE, endpoint_id + "x")


def test_key_ignores_the_timezone_a_due_time_is_written_in() -> None:
    from zoneinfo import ZoneInfo

    local = DUE.astimezone(ZoneInfo("Europe/Berlin"))
    assert idempotency_key("j", local, "e") == idempotency_key("j", DUE, "e")
    with pytest.raises(ValueError, match="timezone"):
        idempotency_key("j", DUE.replace(tzinfo=None), "e")
