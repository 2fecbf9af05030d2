"""Core domain types shared by every layer.

Pure data: no I/O, no asyncio, no SQL, no HTTP. Field names follow the REST contract
(SPEC §2) so adapters can map them one to one. Dataclasses rather than Pydantic models keep
the hot paths (executor, engine) cheap; the API and the AI adapter have their own Pydantic
schemas at their edges.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeAlias

JsonValue: TypeAlias = Any
"""Any JSON-serialisable value (dict, list, str, int, float, bool or None)."""

DEFAULT_MIN_INTERVAL_MS = 10_000
DEFAULT_MAX_INTERVAL_MS = 7 * 24 * 3600 * 1000
DEFAULT_INTERVAL_MS = 3600 * 1000
DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024
MAX_RESPONSE_BYTES_LIMIT = 50 * 1024 * 1024
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")


class JobStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    ARCHIVED = "archived"


class RunStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    ABORTED = "aborted"


class ExecutionStrategy(StrEnum):
    SEQUENTIAL = "sequential"
    PARALLEL = "parallel"
    MIXED = "mixed"


class EndpointStatus(StrEnum):
    SUCCESS = "success"
    FAILED = "failed"
    SKIPPED = "skipped"
    ABORTED = "aborted"


class ErrorCategory(StrEnum):
    HTTP_4XX = "http_4xx"
    HTTP_5XX = "http_5xx"
    TIMEOUT = "timeout"
    NETWORK = "network"
    CIRCUIT_OPEN = "circuit_open"
    SSRF_BLOCKED = "ssrf_blocked"
    ABORTED = "aborted"
    DEPENDENCY_FAILED = "dependency_failed"
    CRITICAL_FAILURE = "critical_failure"
    INVALID_REQUEST = "invalid_request"
    CONDITION_NOT_MET = "condition_not_met"


class PlanSource(StrEnum):
    AI = "ai"
    AI_REPAIRED = "ai_repaired"
    AI_REUSED = "ai_reused"
    """The last AI decision, reused without asking the model (`on_change` mode)."""
    RULES = "rules"


class ScheduleSource(StrEnum):
    HINT = "hint"
    """A user's live hint (`POST /api/jobs/{id}/hints`)."""
    AI = "ai"
    AI_REUSED = "ai_reused"
    AI_PRELIMINARY = "ai_preliminary"
    BASELINE_CRON = "baseline_cron"
    BASELINE_INTERVAL = "baseline_interval"
    BACKOFF = "backoff"
    DEFAULT = "default"
    CLAMPED_MIN = "clamped_min"
    CLAMPED_MAX = "clamped_max"
    PAUSED = "paused"


class CircuitState(StrEnum):
    """State of an endpoint's circuit breaker (executor), as events and metrics report it."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class AIMode(StrEnum):
    """When the model is asked: every run (both phases), or only when a trigger fires."""

    EVERY_RUN = "every_run"
    ON_CHANGE = "on_change"


class AITrigger(StrEnum):
    """Why a run asked the model (the run's `ai_trigger`; null when the decision was reused)."""

    EVERY_RUN = "every_run"
    NO_DECISION = "no_decision"
    EXPIRED = "expired"
    JOB_EDITED = "job_edited"
    NEW_MESSAGE = "new_message"
    REPLAN_REQUESTED = "replan_requested"
    RESPONSE_CHANGED = "response_changed"
    FAILURE_STREAK_STARTED = "failure_streak_started"
    FAILURE_STREAK_ENDED = "failure_streak_ended"


class Escalation(StrEnum):
    NONE = "none"
    WARN = "warn"
    CRITICAL = "critical"


class MessageRole(StrEnum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


class MessageSource(StrEnum):
    USER = "user"
    ENDPOINT_RESPONSE = "endpoint_response"
    SCHEDULER = "scheduler"
    ERROR_HANDLER = "error_handler"
    ENGINE = "engine"


class ErrorPhase(StrEnum):
    CLAIM = "claim"
    PLAN = "plan"
    EXECUTE = "execute"
    SCHEDULE = "schedule"
    PERSIST = "persist"


class Scope(StrEnum):
    USER = "user"
    ENGINE = "engine"
    ADMIN = "admin"


class ActionType(StrEnum):
    PAUSE_JOB = "pause_job"
    RETRY_FAILED_ENDPOINTS = "retry_failed_endpoints"
    MODIFY_FREQUENCY = "modify_frequency"
    NOTIFY_USER = "notify_user"
    ADJUST_TIMEOUT = "adjust_timeout"


class ActionPriority(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Token counts of one or more AI calls; `+` sums them."""

    input: int = 0
    output: int = 0
    reasoning: int = 0
    cached: int = 0

    @property
    def total(self) -> int:
        return self.input + self.output

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            self.input + other.input,
            self.output + other.output,
            self.reasoning + other.reasoning,
            self.cached + other.cached,
        )


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    """An endpoint as the planner and the executor see it, secrets decrypted.

    Secrets (`headers` values, `bearer_token`) must never reach a prompt or a log line.
    """

    id: str
    name: str
    url: str
    method: str = "GET"
    description: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    body: JsonValue = None
    request_schema: dict[str, Any] | None = None
    timeout_ms: int | None = None
    """None: the engine's `execution.default_timeout_ms` (CRONICORN_DEFAULT_TIMEOUT_MS)."""
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    fire_and_forget: bool = False
    bearer_token: str | None = None
    ai_view: JsonValue = None
    """JMESPath expressions (name → expression mapping, or a list) shown to the model."""
    condition: str | None = None
    """JMESPath over this run's earlier results: rules and reused plans call the endpoint
    only when it holds."""


@dataclass(frozen=True, slots=True)
class PlannedCall:
    """One endpoint call in a plan (AI phase 1 `endpoints_to_call[]`)."""

    endpoint_id: str
    parameters: Mapping[str, JsonValue] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    priority: int = 0
    depends_on: tuple[str, ...] = ()
    critical: bool = False
    condition: str | None = None
    """When set, the executor makes the call only if this JMESPath expression over the
    run's earlier results holds (otherwise the call is skipped: `condition_not_met`)."""


@dataclass(frozen=True, slots=True)
class Plan:
    """Which endpoints to call and how (AI phase 1 output, or the rules planner's)."""

    calls: tuple[PlannedCall, ...]
    strategy: ExecutionStrategy = ExecutionStrategy.SEQUENTIAL
    concurrency_limit: int | None = None
    preliminary_next_run_at: datetime | None = None
    reasoning: str = ""
    confidence: float = 1.0


@dataclass(slots=True)
class EndpointResult:
    """The outcome of one planned call. `response_body` is parsed JSON for JSON responses
    (scalars included), otherwise decoded text, capped."""

    endpoint_id: str
    status: EndpointStatus
    status_code: int | None = None
    attempts: int = 0
    started_at: datetime | None = None
    duration_ms: float = 0.0
    request_bytes: int = 0
    response_bytes: int = 0
    truncated: bool = False
    content_type: str | None = None
    response_body: JsonValue = None
    error: str | None = None
    error_category: ErrorCategory | None = None


@dataclass(frozen=True, slots=True)
class RecommendedAction:
    type: ActionType
    details: str = ""
    priority: ActionPriority = ActionPriority.MEDIUM


@dataclass(frozen=True, slots=True)
class ScheduleProposal:
    """AI phase 2 output: when to run next. `next_run_at` is UTC (None: no opinion)."""

    next_run_at: datetime | None
    reasoning: str = ""
    confidence: float = 0.0
    recommended_actions: tuple[RecommendedAction, ...] = ()
    valid_for_ms: int | None = None
    """How long the model says this decision holds (bounded by `ai_agent.decision_ttl_ms`)."""


@dataclass(frozen=True, slots=True)
class Hint:
    """A user's steer without the model: run every `interval_ms`, or once at `next_run_at`,
    until `expires_at` (the governor ignores an expired hint)."""

    expires_at: datetime
    interval_ms: int | None = None
    next_run_at: datetime | None = None
    reason: str = ""
    set_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class JobSnapshot:
    """The job fields that planning and scheduling need, as of the claim."""

    id: str
    tenant_id: str
    name: str
    definition: str
    status: JobStatus = JobStatus.ACTIVE
    cron: str | None = None
    timezone: str = "UTC"
    interval_ms: int | None = None
    min_interval_ms: int = DEFAULT_MIN_INTERVAL_MS
    max_interval_ms: int = DEFAULT_MAX_INTERVAL_MS
    next_run_at: datetime | None = None
    last_run_at: datetime | None = None
    consecutive_failures: int = 0
    paused_until: datetime | None = None
    default_headers: Mapping[str, str] = field(default_factory=dict)
    daily_token_budget: int | None = None
    tokens_used_today: int = 0
    signing_secret: str | None = None
    """The tenant's outbound signing secret (None: calls go out unsigned). A secret: never
    in a prompt, a log line or a stored body."""
    ai_mode: AIMode | None = None
    """None: the engine's `ai_agent.mode`."""
    replan_requested_at: datetime | None = None
    """Set by `run-now` with `replan`: a decision made before it is not reused."""
    hint: Hint | None = None
    """The user's hint, if one is stored (it may have expired: see `domain.governor`)."""
    tenant_cost_month_usd: float = 0.0
    """What the job's tenant spent on the model this calendar month (UTC), as of the claim."""
    tenant_monthly_budget_usd: float | None = None
    """The tenant's own monthly budget (None: the engine's `ai_agent.tenant_monthly_budget_usd`)."""


@dataclass(frozen=True, slots=True)
class Message:
    role: MessageRole
    content: str
    source: MessageSource
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PastResult:
    """A recent result of one endpoint, from earlier runs, for the AI's context."""

    endpoint_id: str
    status: EndpointStatus
    status_code: int | None
    started_at: datetime | None
    duration_ms: float
    response_excerpt: str | None
    error: str | None
    view: Mapping[str, JsonValue] | None = None
    """The endpoint's `ai_view` evaluated over this result's body."""


@dataclass(frozen=True, slots=True)
class ResponseSignature:
    """What an endpoint returned, reduced to what matters (see `domain.signature`)."""

    status_class: str
    ok: bool
    shape: tuple[str, ...] = ()
    numbers: Mapping[str, float] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    text_digest: str | None = None


@dataclass(frozen=True, slots=True)
class AIDecision:
    """The last decision the model made for a job, reused in `on_change` mode until a
    trigger fires (see `domain.ai_decision`)."""

    plan: Plan
    plan_source: PlanSource
    made_at: datetime
    valid_until: datetime
    fingerprint: str
    """`context_fingerprint` of the job and endpoints the decision was made for."""
    signatures: Mapping[str, ResponseSignature] = field(default_factory=dict)
    failing: bool = False
    """Whether the run it was made on failed (a streak starting or ending re-asks)."""
    interval_ms: int | None = None
    """The AI's cadence: its proposed next run minus the decision time."""
    reasoning: str = ""
    confidence: float | None = None
    pending_trigger: AITrigger | None = None
    """A change seen after execution: the next run re-plans, for this reason."""
    pending_detail: str | None = None
    reused_runs: int = 0
    last_reused_at: datetime | None = None
    replan_seen: datetime | None = None
    """The job's `replan_requested_at` when the decision was made (a newer one re-asks)."""
    message_seen: datetime | None = None
    """The newest user message the decision was made with (a newer one re-asks). Both are
    compared with values written by the API, never with the engine's clock."""


@dataclass(frozen=True, slots=True)
class JobContext:
    """Everything the planner needs about a job, loaded with the claim (one round trip)."""

    job: JobSnapshot
    endpoints: tuple[EndpointSpec, ...]
    messages: tuple[Message, ...] = ()
    recent_results: tuple[PastResult, ...] = ()
    ai_decision: AIDecision | None = None
    """The last AI decision (plan, cadence, the responses it was made on), if any."""


@dataclass(frozen=True, slots=True)
class AIAttempt:
    """One request of a phase: the raw reply and what was wrong with it (if anything)."""

    outcome: str
    """`success`, `invalid_output` (then `kind`), `timeout`, `rate_limited` or `error`."""
    raw_reply: str | None = None
    kind: str | None = None
    """refusal, truncated, schema_invalid or semantic_invalid for an unusable reply."""
    errors: tuple[str, ...] = ()
    usage: TokenUsage = TokenUsage()
    latency_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class AISession:
    """One model exchange (a phase: the request, its repairs and their replies), as stored
    for inspection (`GET /api/runs/{id}/ai`). Messages are the redacted prompt."""

    phase: str
    model: str
    started_at: datetime
    messages: tuple[Mapping[str, str], ...] = ()
    attempts: tuple[AIAttempt, ...] = ()
    decision: JsonValue = None
    """The parsed, validated decision (plan or schedule) in the AI's field names."""
    outcome: str = "success"
    """`success`, `repaired`, `salvaged`, `invalid_output`, `refusal`, `transport_error`."""
    failure: str | None = None
    usage: TokenUsage = TokenUsage()
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    trigger: AITrigger | None = None
    truncated: bool = False
    """Some text was cut to the size cap (`ai_agent.session_max_chars`)."""


@dataclass(frozen=True, slots=True)
class PlanDecision:
    """A planner's answer to phase 1, with its provenance and cost."""

    plan: Plan
    source: PlanSource
    usage: TokenUsage = TokenUsage()
    ai_calls: int = 0
    repaired: bool = False
    fallback_reason: str | None = None
    sessions: tuple[AISession, ...] = ()
    """The model exchanges behind this decision (none without a model)."""


@dataclass(frozen=True, slots=True)
class ScheduleDecision:
    """A planner's answer to phase 2. `proposal` None means "use the baseline policy"."""

    proposal: ScheduleProposal | None
    source: PlanSource
    usage: TokenUsage = TokenUsage()
    ai_calls: int = 0
    repaired: bool = False
    fallback_reason: str | None = None
    sessions: tuple[AISession, ...] = ()


@dataclass(frozen=True, slots=True)
class Lease:
    """Proof of a claim. Every write for the job carries the fencing token."""

    job_id: str
    run_id: str
    worker_id: str
    token: int
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    lease: Lease
    context: JobContext
    due_at: datetime


@dataclass(frozen=True, slots=True)
class NextRun:
    """The governor's decision: when, and which rule chose it."""

    at: datetime
    source: ScheduleSource
    proposed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class JobErrorRecord:
    phase: ErrorPhase
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class RunCompletion:
    """Everything a finished run writes, in one transaction that also releases the lease."""

    status: RunStatus
    started_at: datetime
    finished_at: datetime
    plan: Plan | None
    plan_source: PlanSource | None
    results: tuple[EndpointResult, ...]
    escalation: Escalation
    next_run: NextRun
    schedule_reasoning: str
    schedule_confidence: float | None
    recommended_actions: tuple[RecommendedAction, ...]
    usage: TokenUsage
    ai_calls: int
    summary: str
    errors: tuple[JobErrorRecord, ...] = ()
    error: str | None = None
    pause: bool = False
    consecutive_failures: int = 0
    budget_exhausted: bool = False
    """The AI was skipped because the job's daily token budget is spent (alerts)."""
    ai_trigger: AITrigger | None = None
    """Why the model was asked in this run; None when the decision was reused or no model
    was involved."""
    ai_decision: AIDecision | None = None
    """The job's last AI decision after this run (stored on the job)."""
    cost_usd: float = 0.0
    """What the run's model calls cost (`domain.pricing`)."""
    ai_sessions: tuple[AISession, ...] = ()
    """The run's model exchanges (only runs that called the model carry any)."""


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """What a worker reports about itself with every heartbeat (engine → backend → the
    `workers` table, and over the wire as is). None: not reported, the stored value stays."""

    host: str | None = None
    pid: int | None = None
    started_at: datetime | None = None
    last_cycle_at: datetime | None = None
    running_jobs: int = 0
    stopped: bool = False
    stats: Mapping[str, Any] = field(default_factory=dict)
