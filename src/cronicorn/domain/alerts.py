"""Alerts, decided without I/O: which runs raise or resolve an incident, and what it says.

A finished run is reduced to `RunFacts` (the store does this on the completion's hot path, and
queues the facts only when `worth_queuing` says so). The alert dispatcher later evaluates them
against the job's `AlertRule` and the job's open incidents: `evaluate` says which kinds open,
which are still firing (the open incident is bumped, nobody is told again) and which resolve.
One open incident per job and kind, until it resolves: a job failing three times raises one
alert, not three. Resolving a `failing` or `critical` incident sends one recovery message.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from cronicorn.domain.models import (
    ActionType,
    EndpointStatus,
    Escalation,
    RunCompletion,
    RunStatus,
)

__all__ = [
    "DEFAULT_RULE",
    "RECOVERABLE",
    "AlertKind",
    "AlertMessage",
    "AlertRule",
    "ChannelKind",
    "DeliveryEvent",
    "Evaluation",
    "IncidentView",
    "RunFacts",
    "evaluate",
    "incident_message",
    "job_link",
    "recovery_message",
    "rule_channels",
    "run_facts",
    "test_message",
    "worth_queuing",
]

MAX_ERROR_CHARS = 1_000
MAX_DETAILS_CHARS = 2_000


class AlertKind(StrEnum):
    FAILING = "failing"
    """`failure_threshold` consecutive failed runs."""
    CRITICAL = "critical"
    """A run escalated to `critical` (failure ratio ≥ `critical_failure_ratio`)."""
    NOTIFY_USER = "notify_user"
    """The AI recommended `notify_user` (its details are in the message)."""
    AI_PAUSED = "ai_paused"
    """The AI paused the job (`pause_job` with enough confidence)."""
    BUDGET_SPENT = "budget_spent"
    """A budget is spent: today the job's daily AI token budget. Tenant and job budgets of
    other kinds raise the same kind once they exist."""


RECOVERABLE = frozenset({AlertKind.FAILING, AlertKind.CRITICAL})
"""Kinds whose resolution sends a recovery message; the others close silently."""


class ChannelKind(StrEnum):
    WEBHOOK = "webhook"
    SLACK = "slack"
    EMAIL = "email"


class DeliveryEvent(StrEnum):
    OPENED = "opened"
    RECOVERED = "recovered"
    TEST = "test"


@dataclass(frozen=True, slots=True)
class RunFacts:
    """What alerting needs to know about one finished run."""

    status: RunStatus
    escalation: Escalation
    consecutive_failures: int
    finished_at: datetime
    error: str | None = None
    notify: tuple[str, ...] = ()
    paused_by_ai: bool = False
    budget_exhausted: bool = False

    @property
    def raises(self) -> bool:
        """Whether any rule could fire on this run."""
        return (
            self.status is RunStatus.FAILED
            or self.escalation is Escalation.CRITICAL
            or bool(self.notify)
            or self.paused_by_ai
            or self.budget_exhausted
        )

    @property
    def healthy(self) -> bool:
        """Completed, and not escalated to critical: the run a recovery waits for."""
        return self.status is RunStatus.COMPLETED and self.escalation is not Escalation.CRITICAL

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "escalation": self.escalation.value,
            "consecutive_failures": self.consecutive_failures,
            "finished_at": self.finished_at.isoformat(),
            "error": self.error,
            "notify": list(self.notify),
            "paused_by_ai": self.paused_by_ai,
            "budget_exhausted": self.budget_exhausted,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunFacts:
        return cls(
            status=RunStatus(data["status"]),
            escalation=Escalation(data["escalation"]),
            consecutive_failures=int(data["consecutive_failures"]),
            finished_at=datetime.fromisoformat(data["finished_at"]),
            error=data.get("error"),
            notify=tuple(data.get("notify") or ()),
            paused_by_ai=bool(data.get("paused_by_ai")),
            budget_exhausted=bool(data.get("budget_exhausted")),
        )


def _clip(text: str | None, limit: int) -> str | None:
    if text is None:
        return None
    return text if len(text) <= limit else text[: limit - 1] + "…"


def run_facts(completion: RunCompletion) -> RunFacts:
    """The facts of a completion: its error, else the first failed endpoint's error."""
    error = completion.error
    if error is None:
        for result in completion.results:
            if result.status is EndpointStatus.FAILED and result.error:
                code = f"HTTP {result.status_code}: " if result.status_code else ""
                error = f"{result.endpoint_id}: {code}{result.error}"
                break
    notify = tuple(
        _clip(a.details, MAX_DETAILS_CHARS) or ""
        for a in completion.recommended_actions
        if a.type is ActionType.NOTIFY_USER
    )
    return RunFacts(
        status=completion.status,
        escalation=completion.escalation,
        consecutive_failures=completion.consecutive_failures,
        finished_at=completion.finished_at,
        error=_clip(error, MAX_ERROR_CHARS),
        notify=notify,
        paused_by_ai=completion.pause,
        budget_exhausted=completion.budget_exhausted,
    )


def worth_queuing(facts: RunFacts, alert_open: bool) -> bool:
    """The hot-path test: queue the facts only when a rule could fire, or when the job has
    an open incident (or queued facts) that this run might resolve."""
    return facts.raises or (alert_open and facts.status is not RunStatus.ABORTED)


@dataclass(frozen=True, slots=True)
class AlertRule:
    """When to alert for a job, and on which channels (`None`: every enabled channel of the
    tenant). A job's own rule replaces the tenant default entirely."""

    failure_threshold: int | None = 3
    on_critical: bool = False
    on_recovery: bool = True
    on_notify_user: bool = True
    on_ai_pause: bool = True
    on_budget: bool = True
    channel_ids: tuple[str, ...] | None = None


DEFAULT_RULE = AlertRule()
"""The built-in rule when neither the job nor its tenant has one."""


@dataclass(frozen=True, slots=True)
class Evaluation:
    opened: tuple[AlertKind, ...] = ()
    still_firing: tuple[AlertKind, ...] = ()
    resolved: tuple[AlertKind, ...] = ()


def _firing(facts: RunFacts, rule: AlertRule) -> list[AlertKind]:
    kinds: list[AlertKind] = []
    threshold = rule.failure_threshold
    if (
        threshold is not None
        and facts.status is RunStatus.FAILED
        and facts.consecutive_failures >= threshold
    ):
        kinds.append(AlertKind.FAILING)
    if rule.on_critical and facts.escalation is Escalation.CRITICAL:
        kinds.append(AlertKind.CRITICAL)
    if rule.on_notify_user and facts.notify:
        kinds.append(AlertKind.NOTIFY_USER)
    if rule.on_ai_pause and facts.paused_by_ai:
        kinds.append(AlertKind.AI_PAUSED)
    if rule.on_budget and facts.budget_exhausted:
        kinds.append(AlertKind.BUDGET_SPENT)
    return kinds


def _clears(kind: AlertKind, facts: RunFacts) -> bool:
    if facts.status is RunStatus.ABORTED:
        return False
    if kind is AlertKind.FAILING:
        return facts.status is RunStatus.COMPLETED
    if kind is AlertKind.BUDGET_SPENT:
        return not facts.budget_exhausted
    if kind is AlertKind.NOTIFY_USER:
        return facts.healthy and not facts.notify
    return facts.healthy


def evaluate(facts: RunFacts, rule: AlertRule, open_kinds: Collection[AlertKind]) -> Evaluation:
    """Which incidents this run opens, keeps firing and resolves (deduplicated per kind).

    Resolution does not depend on the rule (an incident opened under an older rule still
    closes); opening does."""
    firing = _firing(facts, rule)
    return Evaluation(
        opened=tuple(k for k in firing if k not in open_kinds),
        still_firing=tuple(k for k in firing if k in open_kinds),
        resolved=tuple(
            k for k in AlertKind if k in open_kinds and k not in firing and _clears(k, facts)
        ),
    )


# -- messages ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IncidentView:
    """An incident as a message describes it."""

    id: str
    kind: AlertKind
    job_id: str
    job_name: str
    since: datetime
    occurrences: int
    last_error: str | None = None
    details: str | None = None
    resolved_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AlertMessage:
    """One message, rendered for every channel kind: `subject` (email), `text` (Slack,
    email body, webhook `text`) and `payload` (the generic webhook's JSON body)."""

    subject: str
    text: str
    payload: dict[str, Any]


_WHAT = {
    AlertKind.FAILING: "has failed {n} run(s) in a row",
    AlertKind.CRITICAL: "escalated to critical (most endpoint calls failed)",
    AlertKind.NOTIFY_USER: "the AI asks you to take a look",
    AlertKind.AI_PAUSED: "was paused by the AI",
    AlertKind.BUDGET_SPENT: "has spent its budget; the rules planner runs it until it resets",
}


def job_link(public_url: str | None, job_id: str) -> str | None:
    """`{public_url}/jobs/{id}` (the job's dashboard page) when a public URL is configured."""
    if not public_url:
        return None
    return f"{public_url.rstrip('/')}/jobs/{job_id}"


def _stamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _payload(
    event: DeliveryEvent, incident: IncidentView, text: str, link: str | None
) -> dict[str, Any]:
    return {
        "event": event.value,
        "text": text,
        "url": link,
        "alert": {
            "id": incident.id,
            "kind": incident.kind.value,
            "status": "resolved" if incident.resolved_at else "open",
            "job_id": incident.job_id,
            "job_name": incident.job_name,
            "since": incident.since.isoformat(),
            "occurrences": incident.occurrences,
            "last_error": incident.last_error,
            "details": incident.details,
            "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None,
        },
    }


def incident_message(incident: IncidentView, public_url: str | None) -> AlertMessage:
    """What happened, since when, the last error, the AI's details, and the job's link."""
    what = _WHAT[incident.kind].format(n=incident.occurrences)
    lines = [f"Job '{incident.job_name}' {what}.", f"Since: {_stamp(incident.since)}"]
    if incident.last_error:
        lines.append(f"Last error: {incident.last_error}")
    if incident.details:
        lines.append(f"Details: {incident.details}")
    link = job_link(public_url, incident.job_id)
    if link:
        lines.append(f"Job: {link}")
    subject = f"[Cronicorn] {incident.job_name}: {incident.kind.value.replace('_', ' ')}"
    text = "\n".join(lines)
    return AlertMessage(subject, text, _payload(DeliveryEvent.OPENED, incident, text, link))


def recovery_message(incident: IncidentView, public_url: str | None) -> AlertMessage:
    resolved = incident.resolved_at or incident.since
    lines = [
        f"Job '{incident.job_name}' recovered: the run of {_stamp(resolved)} succeeded.",
        f"It was {incident.kind.value.replace('_', ' ')} since {_stamp(incident.since)} "
        f"({incident.occurrences} run(s)).",
    ]
    link = job_link(public_url, incident.job_id)
    if link:
        lines.append(f"Job: {link}")
    subject = f"[Cronicorn] {incident.job_name}: recovered"
    text = "\n".join(lines)
    return AlertMessage(subject, text, _payload(DeliveryEvent.RECOVERED, incident, text, link))


def test_message(channel_name: str, now: datetime) -> AlertMessage:
    text = f"Test message from Cronicorn for channel '{channel_name}' ({_stamp(now)})."
    return AlertMessage(
        "[Cronicorn] test message",
        text,
        {"event": DeliveryEvent.TEST.value, "text": text, "url": None, "alert": None},
    )


def rule_channels(rule: AlertRule, enabled: Sequence[str]) -> list[str]:
    """The channel ids a rule sends to, among the tenant's enabled channels (in order)."""
    if rule.channel_ids is None:
        return list(enabled)
    wanted = set(rule.channel_ids)
    return [c for c in enabled if c in wanted]
