"""The pure alert rules: what opens, stays open, resolves; what is worth queuing; messages."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from cronicorn.domain.alerts import (
    DEFAULT_RULE,
    AlertKind,
    AlertRule,
    IncidentView,
    RunFacts,
    evaluate,
    incident_message,
    job_link,
    recovery_message,
    rule_channels,
    run_facts,
    worth_queuing,
)
from cronicorn.domain.models import (
    ActionType,
    EndpointResult,
    EndpointStatus,
    Escalation,
    NextRun,
    RecommendedAction,
    RunCompletion,
    RunStatus,
    ScheduleSource,
    TokenUsage,
)

T = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
OK = RunFacts(RunStatus.COMPLETED, Escalation.NONE, 0, T)


def failed(n: int, escalation: Escalation = Escalation.CRITICAL) -> RunFacts:
    return RunFacts(RunStatus.FAILED, escalation, n, T, error="HTTP 500")


def test_failures_open_one_incident_at_the_threshold_then_keep_it() -> None:
    rule = AlertRule(failure_threshold=3)
    assert evaluate(failed(2), rule, set()).opened == ()
    assert evaluate(failed(3), rule, set()).opened == (AlertKind.FAILING,)
    again = evaluate(failed(4), rule, {AlertKind.FAILING})
    assert (again.opened, again.still_firing) == ((), (AlertKind.FAILING,))


def test_recovery_resolves_failing_and_critical_but_not_on_abort() -> None:
    open_kinds = {AlertKind.FAILING, AlertKind.CRITICAL}
    assert set(evaluate(OK, DEFAULT_RULE, open_kinds).resolved) == open_kinds
    aborted = replace(OK, status=RunStatus.ABORTED)
    assert evaluate(aborted, DEFAULT_RULE, open_kinds).resolved == ()
    degraded = replace(OK, escalation=Escalation.CRITICAL)  # completed but critical
    assert evaluate(degraded, DEFAULT_RULE, open_kinds).resolved == (AlertKind.FAILING,)


def test_rule_switches_decide_what_opens() -> None:
    facts = RunFacts(
        RunStatus.FAILED,
        Escalation.CRITICAL,
        5,
        T,
        notify=("look",),
        paused_by_ai=True,
        budget_exhausted=True,
    )
    everything = AlertRule(failure_threshold=1, on_critical=True)
    assert set(evaluate(facts, everything, set()).opened) == set(AlertKind)
    nothing = AlertRule(
        failure_threshold=None,
        on_critical=False,
        on_notify_user=False,
        on_ai_pause=False,
        on_budget=False,
    )
    assert evaluate(facts, nothing, set()).opened == ()
    # resolution does not depend on the rule
    assert evaluate(OK, nothing, {AlertKind.FAILING}).resolved == (AlertKind.FAILING,)


def test_budget_incident_stays_open_while_runs_are_budget_limited() -> None:
    limited = replace(OK, budget_exhausted=True)
    result = evaluate(limited, DEFAULT_RULE, {AlertKind.BUDGET_SPENT, AlertKind.AI_PAUSED})
    assert result.still_firing == (AlertKind.BUDGET_SPENT,)
    assert result.resolved == (AlertKind.AI_PAUSED,)


@pytest.mark.parametrize(
    ("facts", "alert_open", "queued"),
    [
        (OK, False, False),
        (replace(OK, escalation=Escalation.WARN), False, False),
        (OK, True, True),
        (replace(OK, status=RunStatus.ABORTED), True, False),
        (failed(1), False, True),
        (replace(OK, notify=("x",)), False, True),
        (replace(OK, budget_exhausted=True), False, True),
    ],
)
def test_worth_queuing(facts: RunFacts, alert_open: bool, queued: bool) -> None:
    assert worth_queuing(facts, alert_open) is queued


def test_run_facts_take_the_first_failed_endpoint_error_and_the_notify_details() -> None:
    completion = RunCompletion(
        status=RunStatus.FAILED,
        started_at=T,
        finished_at=T,
        plan=None,
        plan_source=None,
        results=(
            EndpointResult("a", EndpointStatus.SUCCESS, status_code=200),
            EndpointResult("b", EndpointStatus.FAILED, status_code=503, error="unavailable"),
        ),
        escalation=Escalation.WARN,
        next_run=NextRun(T, ScheduleSource.BACKOFF),
        schedule_reasoning="",
        schedule_confidence=None,
        recommended_actions=(RecommendedAction(ActionType.NOTIFY_USER, "call ops"),),
        usage=TokenUsage(),
        ai_calls=0,
        summary="",
        consecutive_failures=2,
    )
    facts = run_facts(completion)
    assert facts.error == "b: HTTP 503: unavailable"
    assert facts.notify == ("call ops",)
    assert RunFacts.from_json(facts.to_json()) == facts


def test_messages_say_what_since_when_last_error_and_link() -> None:
    incident = IncidentView(
        id="a1",
        kind=AlertKind.FAILING,
        job_id="j1",
        job_name="orders",
        since=T,
        occurrences=3,
        last_error="HTTP 500",
    )
    message = incident_message(incident, "https://cron.example/")
    assert message.text.splitlines() == [
        "Job 'orders' has failed 3 run(s) in a row.",
        "Since: 2030-01-01 12:00:00 UTC",
        "Last error: HTTP 500",
        "Job: https://cron.example/jobs/j1",
    ]
    assert message.payload["alert"]["status"] == "open"
    assert incident_message(incident, None).payload["url"] is None
    recovered = recovery_message(replace(incident, resolved_at=T), None)
    assert recovered.payload["event"] == "recovered"
    assert "recovered" in recovered.subject
    assert job_link(None, "j1") is None


def test_rule_channels() -> None:
    assert rule_channels(AlertRule(), ["a", "b"]) == ["a", "b"]
    assert rule_channels(AlertRule(channel_ids=("b", "zz")), ["a", "b"]) == ["b"]
