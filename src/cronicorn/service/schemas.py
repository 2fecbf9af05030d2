"""Input and output shapes of the user resources (SPEC §2), shared by the API and the CLI.

Inputs forbid unknown fields and are strict on types; outputs never carry secret values
(header names map to "***"). PATCH models leave unset fields out of `model_fields_set`;
an explicit `null` is only accepted where the field is nullable.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationInfo, field_validator

from cronicorn.domain.models import (
    DEFAULT_MAX_INTERVAL_MS,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_MIN_INTERVAL_MS,
    MAX_RESPONSE_BYTES_LIMIT,
)
from cronicorn.service.ai_schemas import HintOut, JobCost
from cronicorn.service.validation import (
    AiView,
    Condition,
    Cron,
    Definition,
    Headers,
    IntervalMs,
    JsonBody,
    JsonSchema,
    Name,
    Secret,
    Text,
    TimeoutMs,
    TimeZone,
    Url,
    UtcDatetime,
)

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
ResponseBytes = Annotated[int, Strict(), Field(ge=1, le=MAX_RESPONSE_BYTES_LIMIT)]
TokenBudget = Annotated[int, Strict(), Field(ge=0, le=10**12)]
Description = Annotated[Text, Field(max_length=4000)]
StrictBool = Annotated[bool, Strict()]
RetentionDays = Annotated[
    int, Strict(), Field(ge=0, le=36_500, description="Days of run history kept; 0 keeps all.")
]
RunsKept = Annotated[
    int, Strict(), Field(ge=0, le=10**9, description="Newest runs kept per job; 0 keeps all.")
]
AiMode = Literal["every_run", "on_change"]
AI_MODE_DOC = (
    "When the model is asked: `every_run` (both AI phases each run) or `on_change` (only when "
    "a trigger fires; otherwise the last AI decision is reused). Null: the engine's "
    "`ai_agent.mode` (default `on_change`)."
)
AI_VIEW_DOC = (
    "JMESPath expressions over the endpoint's JSON response whose results the model sees "
    "beside the compacted body, as a name → expression mapping (e.g. "
    '`{"pending": "length(orders[?state==\'pending\'])"}`) or a list of expressions '
    "(each named by itself). At most 20."
)
CONDITION_DOC = (
    "JMESPath over the results of endpoints called earlier in the run, by endpoint name "
    "(each `{status, status_code, ok, body, error}`), e.g. `backlog.body.backlog > `20``. "
    "Rules plans and reused AI plans call the endpoint only when it holds (else it is "
    "skipped: `condition_not_met`); the model is shown it."
)


class InputModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _reject_null(value: Any, info: ValidationInfo) -> Any:
    if value is None:
        raise ValueError(f"{info.field_name} may not be null")
    return value


# --------------------------------------------------------------------------- jobs


class JobCreate(InputModel):
    name: Name
    definition: Definition
    status: Literal["active", "paused"] = "active"
    cron: Cron | None = None
    timezone: TimeZone = "UTC"
    interval_ms: IntervalMs | None = None
    min_interval_ms: IntervalMs = DEFAULT_MIN_INTERVAL_MS
    max_interval_ms: IntervalMs = DEFAULT_MAX_INTERVAL_MS
    next_run_at: UtcDatetime | None = None
    paused_until: UtcDatetime | None = None
    default_headers: Headers = Field(default_factory=dict)
    daily_token_budget: TokenBudget | None = None
    run_retention_days: RetentionDays | None = None
    max_runs_per_job: RunsKept | None = None
    ai_mode: AiMode | None = Field(None, description=AI_MODE_DOC)

    @field_validator("interval_ms")
    @classmethod
    def _one_baseline(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and info.data.get("cron") is not None:
            raise ValueError("give at most one of cron and interval_ms")
        return value

    @field_validator("max_interval_ms")
    @classmethod
    def _min_le_max(cls, value: int, info: ValidationInfo) -> int:
        low = info.data.get("min_interval_ms")
        if low is not None and value < low:
            raise ValueError(f"max_interval_ms ({value}) must be >= min_interval_ms ({low})")
        return value


class JobUpdate(InputModel):
    """PATCH: only the given fields change. Header values "***" keep the stored value."""

    name: Name | None = None
    definition: Definition | None = None
    cron: Cron | None = None
    timezone: TimeZone | None = None
    interval_ms: IntervalMs | None = None
    min_interval_ms: IntervalMs | None = None
    max_interval_ms: IntervalMs | None = None
    next_run_at: UtcDatetime | None = None
    paused_until: UtcDatetime | None = None
    default_headers: Headers | None = None
    daily_token_budget: TokenBudget | None = None
    run_retention_days: RetentionDays | None = None
    max_runs_per_job: RunsKept | None = None
    ai_mode: AiMode | None = Field(None, description=AI_MODE_DOC)

    _not_null = field_validator(
        "name",
        "definition",
        "timezone",
        "min_interval_ms",
        "max_interval_ms",
        "default_headers",
        mode="before",
    )(_reject_null)


SOURCE_DOC = (
    "Which rule chose the time: paused, hint, ai, ai_reused, ai_preliminary, baseline_cron, "
    "baseline_interval, backoff, default, clamped_min or clamped_max (docs/scheduling.md)."
)


class LastSchedule(BaseModel):
    next_run_at: datetime | None = None
    source: str | None = Field(None, description=SOURCE_DOC)
    reasoning: str | None = None
    confidence: float | None = None


class JobOut(BaseModel):
    id: str
    tenant_id: str
    name: str
    definition: str
    status: Literal["active", "paused", "archived"]
    cron: str | None
    timezone: str
    interval_ms: int | None
    min_interval_ms: int
    max_interval_ms: int
    next_run_at: datetime | None
    last_run_at: datetime | None
    consecutive_failures: int
    paused_until: datetime | None
    locked: bool
    lease_expires_at: datetime | None
    input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cached_input_tokens: int
    total_tokens: int
    last_schedule: LastSchedule | None
    default_headers: dict[str, str] = Field(description='Header names; values are "***".')
    daily_token_budget: int | None
    ai_mode: AiMode | None = Field(None, description=AI_MODE_DOC)
    run_retention_days: int | None = Field(description="None: the server's retention policy.")
    max_runs_per_job: int | None = Field(description="None: the server's retention policy.")
    hint: HintOut | None = Field(
        None, description="The user's live hint (null when none is set or it expired)."
    )
    cost: JobCost = Field(
        default_factory=lambda: JobCost(today_usd=0.0, month_usd=0.0, total_usd=0.0),
        description="What the job's model calls cost, in US dollars.",
    )
    created_at: datetime
    updated_at: datetime


class RunNow(InputModel):
    """Optional body of `POST /api/jobs/{id}/run-now`."""

    replan: StrictBool = Field(
        False,
        description="Ask the model afresh in this run (`ai_trigger` `replan_requested`) "
        "instead of reusing the last AI decision.",
    )


# ---------------------------------------------------------------------- endpoints


class EndpointCreate(InputModel):
    name: Name
    description: Description = ""
    url: Url
    method: Method = "GET"
    headers: Headers = Field(default_factory=dict)
    body: JsonBody = None
    request_schema: JsonSchema | None = None
    timeout_ms: TimeoutMs | None = Field(
        None,
        description="Per-call timeout; null or omitted: the engine's default "
        "(execution.default_timeout_ms / CRONICORN_DEFAULT_TIMEOUT_MS, 30000 unless set).",
    )
    max_response_bytes: ResponseBytes = DEFAULT_MAX_RESPONSE_BYTES
    fire_and_forget: StrictBool = False
    bearer_token: Secret | None = None
    ai_view: AiView | None = Field(None, description=AI_VIEW_DOC)
    condition: Condition | None = Field(None, description=CONDITION_DOC)


class EndpointUpdate(InputModel):
    """PATCH: only the given fields change. Secrets given as "***" keep the stored value."""

    name: Name | None = None
    description: Description | None = None
    url: Url | None = None
    method: Method | None = None
    headers: Headers | None = None
    body: JsonBody = None
    request_schema: JsonSchema | None = None
    timeout_ms: TimeoutMs | None = None
    max_response_bytes: ResponseBytes | None = None
    fire_and_forget: StrictBool | None = None
    bearer_token: Secret | None = None
    ai_view: AiView | None = Field(None, description=AI_VIEW_DOC)
    condition: Condition | None = Field(None, description=CONDITION_DOC)

    _not_null = field_validator(
        "name",
        "description",
        "url",
        "method",
        "headers",
        "max_response_bytes",
        "fire_and_forget",
        mode="before",
    )(_reject_null)


class EndpointOut(BaseModel):
    id: str
    job_id: str
    name: str
    description: str
    url: str
    method: str
    headers: dict[str, str] = Field(description='Header names; values are "***".')
    body: Any = None
    request_schema: dict[str, Any] | None
    timeout_ms: int | None = Field(description="null: the engine's default timeout.")
    max_response_bytes: int
    fire_and_forget: bool
    bearer_token: Literal["***"] | None = Field(description='"***" when set, else null.')
    ai_view: dict[str, str] | list[str] | None = Field(None, description=AI_VIEW_DOC)
    condition: str | None = Field(None, description=CONDITION_DOC)
    created_at: datetime
    updated_at: datetime


# ------------------------------------------------------------------ history


class MessageCreate(InputModel):
    content: Annotated[Text, Field(min_length=1, max_length=20_000)]
    role: Literal["user", "system"] = "user"


class MessageOut(BaseModel):
    id: str
    job_id: str
    role: Literal["system", "user", "assistant"]
    content: str
    source: Literal["user", "endpoint_response", "scheduler", "error_handler", "engine"]
    created_at: datetime


class RunSchedule(BaseModel):
    proposed_next_run_at: datetime | None = None
    next_run_at: datetime | None = None
    source: str | None = Field(None, description=SOURCE_DOC)
    reasoning: str | None = None
    confidence: float | None = None
    recommended_actions: list[dict[str, Any]] = Field(default_factory=list)


class RunTokens(BaseModel):
    input: int
    output: int
    reasoning: int
    cached: int


class EndpointResultOut(BaseModel):
    endpoint_id: str
    status: str
    status_code: int | None
    attempts: int
    started_at: datetime | None
    duration_ms: float
    request_bytes: int
    response_bytes: int
    truncated: bool
    content_type: str | None
    response_body: Any = None
    error: str | None
    error_category: str | None


class RunOut(BaseModel):
    id: str
    job_id: str
    worker_id: str
    status: Literal["running", "completed", "failed", "aborted"]
    started_at: datetime
    finished_at: datetime | None
    duration_ms: float | None
    plan: dict[str, Any] | None
    plan_source: str | None
    strategy: str | None
    success_count: int
    failure_count: int
    skipped_count: int
    aborted_count: int
    escalation_level: str
    schedule: RunSchedule | None
    tokens: RunTokens
    ai_calls: int
    ai_trigger: str | None = Field(
        None,
        description="Why the model was asked in this run: every_run, no_decision, expired, "
        "job_edited, new_message, replan_requested, response_changed, "
        "failure_streak_started or failure_streak_ended; null when the last AI decision was "
        "reused (or no model is configured).",
    )
    cost_usd: float = Field(0.0, description="What the run's model calls cost, in US dollars.")
    error: str | None


class RunDetail(RunOut):
    results: list[EndpointResultOut]


class JobErrorOut(BaseModel):
    id: str
    job_id: str
    run_id: str | None
    phase: str
    code: str
    message: str
    created_at: datetime


# ---------------------------------------------------------------------- keys


class KeyCreate(InputModel):
    tenant: Name
    scope: Literal["user", "engine", "admin"] = "user"


class KeyOut(BaseModel):
    id: str
    tenant_id: str
    tenant: str
    scope: str
    prefix: str = Field(description="The key's first characters, to recognise it.")
    created_at: datetime
    revoked_at: datetime | None


class KeyCreated(KeyOut):
    key: str = Field(description="The API key. Shown once; only its hash is stored.")


# --------------------------------------------------------------------------- signing


class SigningKeyOut(BaseModel):
    """The tenant's outbound signing key. Every endpoint call carries
    `X-Cronicorn-Timestamp` and `X-Cronicorn-Signature: sha256=<hex>` (HMAC-SHA256 with this
    secret over `"{timestamp}.{body}"`)."""

    key_id: str = Field(description="Changes on every rotation.")
    status: Literal["active", "revoked"] = Field(
        description="`revoked`: calls go out unsigned until a new key is created."
    )
    created_at: datetime
    revoked_at: datetime | None = None
    secret: str | None = Field(
        default=None,
        description="The secret, shown once: in the response that creates or rotates the "
        "key, or in the first GET of a key created automatically. Null otherwise.",
    )
