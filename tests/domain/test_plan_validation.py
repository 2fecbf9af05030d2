"""Semantic validation of plans and schedules: exact errors, and property tests that every
dependency cycle is found and that salvage always produces a valid plan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from cronicorn.domain.models import EndpointSpec, Plan, PlannedCall, ScheduleProposal
from cronicorn.domain.plan_validation import (
    MAX_CONCURRENCY_LIMIT,
    find_cycles,
    salvage_plan,
    salvage_schedule,
    validate_plan,
    validate_schedule,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SCHEMA = {
    "type": "object",
    "properties": {"limit": {"type": "integer", "minimum": 1}},
    "required": ["limit"],
    "additionalProperties": False,
}
ENDPOINTS = [EndpointSpec(id=f"e{i}", name=f"E{i}", url=f"https://x.example/{i}") for i in range(6)]
ENDPOINTS.append(
    EndpointSpec(id="typed", name="T", url="https://x.example/t", request_schema=SCHEMA)
)


def test_valid_plan_has_no_errors() -> None:
    plan = Plan(
        calls=(
            PlannedCall("e0"),
            PlannedCall("typed", parameters={"limit": 5}, depends_on=("e0",)),
        ),
        concurrency_limit=3,
        preliminary_next_run_at=NOW + timedelta(minutes=1),
        confidence=0.5,
    )
    assert validate_plan(plan, ENDPOINTS, NOW) == []


def test_each_problem_is_named_exactly() -> None:
    plan = Plan(
        calls=(
            PlannedCall("ghost"),
            PlannedCall("e1", depends_on=("e1", "nope", "e2", "e2")),
            PlannedCall("e1"),
            PlannedCall("typed", parameters={"limit": "x"}),
            PlannedCall("e2", headers={"Bad Name": "v", "Host": "h", "X-Ok": "a\r\nb"}),
        ),
        concurrency_limit=0,
        preliminary_next_run_at=NOW - timedelta(seconds=1),
        confidence=1.5,
    )
    assert validate_plan(plan, ENDPOINTS, NOW) == [
        "endpoints_to_call[0].endpoint_id: 'ghost' is not an endpoint of this job "
        "(allowed: e0, e1, e2, e3, e4, e5, typed)",
        "endpoints_to_call[2].endpoint_id: 'e1' is listed more than once",
        "endpoints_to_call[3] (typed).parameters: 'x' is not of type 'integer' (at /limit)",
        "endpoints_to_call[4].headers: 'Bad Name' is not a valid header name",
        "endpoints_to_call[4].headers: 'Host' may not be set by a plan",
        "endpoints_to_call[4].headers: value of 'X-Ok' contains a line break",
        "endpoints_to_call[1] (e1).depends_on: 'e1' depends on itself",
        "endpoints_to_call[1] (e1).depends_on: 'nope' is not in endpoints_to_call",
        "endpoints_to_call[1] (e1).depends_on: 'e2' is listed more than once",
        f"concurrency_limit: 0 is outside [1, {MAX_CONCURRENCY_LIMIT}] (or use null)",
        "preliminary_next_run_at: 2024-05-01T11:59:59Z is not after the current time "
        "2024-05-01T12:00:00Z",
        "confidence: 1.5 is outside [0, 1]",
    ]


def test_missing_required_parameter_and_naive_time() -> None:
    plan = Plan(calls=(PlannedCall("typed"),), preliminary_next_run_at=datetime(2030, 1, 1, 0, 0))
    assert validate_plan(plan, ENDPOINTS, NOW) == [
        "endpoints_to_call[0] (typed).parameters: 'limit' is a required property (at /)",
        "preliminary_next_run_at: 2030-01-01T00:00:00 has no timezone offset (use UTC, e.g. ...Z)",
    ]


def test_long_cycle_is_reported_with_its_path() -> None:
    calls = (
        PlannedCall("e0", depends_on=("e1",)),
        PlannedCall("e1", depends_on=("e2",)),
        PlannedCall("e2", depends_on=("e3",)),
        PlannedCall("e3", depends_on=("e0",)),
    )
    errors = validate_plan(Plan(calls=calls), ENDPOINTS, NOW)
    assert errors == ["dependency cycle: e0 -> e1 -> e2 -> e3 -> e0"]


def test_salvage_drops_and_clamps_with_notes() -> None:
    plan = Plan(
        calls=(
            PlannedCall("ghost"),
            PlannedCall("e0", depends_on=("e1",)),
            PlannedCall("e1", depends_on=("e0", "e0")),
            PlannedCall("e0"),
            PlannedCall("typed", parameters={"limit": 0}),
        ),
        concurrency_limit=1000,
        confidence=float("nan"),
    )
    salvaged, notes = salvage_plan(plan, ENDPOINTS, NOW)
    assert validate_plan(salvaged, ENDPOINTS, NOW) == []
    assert [c.endpoint_id for c in salvaged.calls] == ["e0", "e1"]
    assert salvaged.calls[1].depends_on == ()
    assert (salvaged.concurrency_limit, salvaged.confidence) == (MAX_CONCURRENCY_LIMIT, 0.0)
    assert notes == [
        "dropped call to unknown endpoint 'ghost'",
        "dropped duplicate call to 'e0'",
        "dropped call to 'typed': parameters invalid",
        "removed unknown, self or repeated dependencies of 'e1'",
        "removed dependency e1 -> e0 to break a cycle",
        f"concurrency_limit 1000 clamped to {MAX_CONCURRENCY_LIMIT}",
        "confidence nan clamped to 0.0",
    ]


def test_schedule_validation_and_salvage() -> None:
    past = ScheduleProposal(next_run_at=NOW, confidence=-0.1)
    assert validate_schedule(past, NOW) == [
        "next_run_at: 2024-05-01T12:00:00Z is not after the current time 2024-05-01T12:00:00Z",
        "confidence: -0.1 is outside [0, 1]",
    ]
    fixed, notes = salvage_schedule(past, NOW)
    assert (fixed.next_run_at, fixed.confidence) == (None, 0.0)
    assert validate_schedule(fixed, NOW) == []
    assert len(notes) == 2
    future = ScheduleProposal(next_run_at=NOW + timedelta(seconds=1), confidence=1.0)
    assert validate_schedule(future, NOW) == []


IDS = [e.id for e in ENDPOINTS]


@st.composite
def cyclic_plans(draw: st.DrawFn) -> tuple[Plan, list[str]]:
    """A random DAG plus one planted cycle of random length (2..n)."""
    ids = draw(st.permutations(IDS[:6]))
    n = draw(st.integers(2, len(ids)))
    cycle = list(ids[:n])
    deps: dict[str, set[str]] = {i: set() for i in ids}
    for a in range(len(ids)):
        for b in range(a + 1, len(ids)):
            if draw(st.booleans()):
                deps[ids[b]].add(ids[a])  # edges only "backwards": acyclic on their own
    for src, dst in zip(cycle, [*cycle[1:], cycle[0]], strict=True):
        deps[src].add(dst)
    calls = tuple(PlannedCall(i, depends_on=tuple(sorted(deps[i]))) for i in ids)
    return Plan(calls=calls), cycle


@settings(max_examples=300, deadline=None)
@given(cyclic_plans())
def test_every_planted_cycle_of_any_length_is_detected(case: tuple[Plan, list[str]]) -> None:
    plan, _ = case
    assert find_cycles(plan.calls)
    assert any(e.startswith("dependency cycle: ") for e in validate_plan(plan, ENDPOINTS, NOW))


@settings(max_examples=200, deadline=None)
@given(st.permutations(IDS[:6]), st.data())
def test_acyclic_plans_report_no_cycle(ids: list[str], data: st.DataObject) -> None:
    calls = tuple(
        PlannedCall(i, depends_on=tuple(data.draw(st.sets(st.sampled_from(ids[:k])))) if k else ())
        for k, i in enumerate(ids)
    )
    assert find_cycles(calls) == []


calls_strategy = st.builds(
    PlannedCall,
    endpoint_id=st.sampled_from([*IDS, "ghost", "other"]),
    parameters=st.one_of(
        st.just({}), st.fixed_dictionaries({"limit": st.one_of(st.integers(-2, 3), st.text())})
    ),
    headers=st.dictionaries(
        st.sampled_from(["X-A", "Host", "bad name"]), st.sampled_from(["v", "a\nb"])
    ),
    priority=st.integers(-5, 5),
    depends_on=st.lists(st.sampled_from([*IDS, "ghost"]), max_size=5).map(tuple),
    critical=st.booleans(),
)
plans_strategy = st.builds(
    Plan,
    calls=st.lists(calls_strategy, max_size=12).map(tuple),
    concurrency_limit=st.one_of(st.none(), st.integers(-5, 500)),
    preliminary_next_run_at=st.one_of(
        st.none(),
        st.integers(-3600, 3600).map(lambda s: NOW + timedelta(seconds=s)),
        st.just(datetime(2030, 1, 1)),
    ),
    confidence=st.one_of(st.floats(allow_nan=True), st.floats(0, 1)),
)


@settings(max_examples=400, deadline=None)
@given(plans_strategy)
def test_salvage_output_is_always_valid(plan: Plan) -> None:
    salvaged, notes = salvage_plan(plan, ENDPOINTS, NOW)
    assert validate_plan(salvaged, ENDPOINTS, NOW) == []
    if validate_plan(plan, ENDPOINTS, NOW) == []:
        assert (salvaged, notes) == (plan, [])
    else:
        assert notes


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(st.none(), st.integers(-100, 100).map(lambda s: NOW + timedelta(seconds=s))),
    st.floats(allow_nan=True),
)
def test_schedule_salvage_is_always_valid(at: datetime | None, confidence: float) -> None:
    fixed, _ = salvage_schedule(ScheduleProposal(next_run_at=at, confidence=confidence), NOW)
    assert validate_schedule(fixed, NOW) == []
