"""SQLAlchemy tables: one schema for SQLite and PostgreSQL.

Timestamps are timezone-aware UTC in Python on both databases (see `UTCDateTime`). Secret
values (endpoint `headers` values, `bearer_token`, job `default_headers` values) are stored
encrypted (see `cronicorn.store.secrets`); the columns here hold ciphertext only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out.

    SQLite has no time zones: values are stored as naive UTC so that string comparison
    orders them correctly. PostgreSQL uses `timestamptz`.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONType, Any: JSONType}


def _money() -> Mapped[float]:
    return mapped_column(sa.Float, default=0.0, server_default="0")


class Tenant(Base):
    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Model spend (docs/ai.md, cost): this calendar month (UTC, `cost_month` YYYY-MM) and
    # in total, and the tenant's own monthly budget (null: the engine's default).
    monthly_budget_usd: Mapped[float | None] = mapped_column(sa.Float, default=None)
    cost_usd_month: Mapped[float] = _money()
    cost_month: Mapped[str | None] = mapped_column(sa.String(7), default=None)
    cost_usd_total: Mapped[float] = _money()


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(sa.String(16))
    key_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    prefix: Mapped[str] = mapped_column(sa.String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(200))
    definition: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(16), default="active")
    cron: Mapped[str | None] = mapped_column(sa.String(200), default=None)
    timezone: Mapped[str] = mapped_column(sa.String(64), default="UTC")
    interval_ms: Mapped[int | None] = mapped_column(sa.BigInteger, default=None)
    min_interval_ms: Mapped[int] = mapped_column(sa.BigInteger, default=10_000)
    max_interval_ms: Mapped[int] = mapped_column(sa.BigInteger, default=7 * 24 * 3600 * 1000)
    next_run_at: Mapped[datetime | None] = mapped_column(default=None)
    last_run_at: Mapped[datetime | None] = mapped_column(default=None)
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    paused_until: Mapped[datetime | None] = mapped_column(default=None)
    # Lease: owner, fencing token (incremented on every claim), expiry.
    lease_owner: Mapped[str | None] = mapped_column(sa.String(200), default=None)
    lease_token: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    input_tokens: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    reasoning_tokens: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    cached_input_tokens: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    daily_token_budget: Mapped[int | None] = mapped_column(sa.BigInteger, default=None)
    # Retention overrides (None: the global policy; see store/retention.py).
    run_retention_days: Mapped[int | None] = mapped_column(default=None)
    max_runs_per_job: Mapped[int | None] = mapped_column(default=None)
    tokens_today: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    tokens_day: Mapped[str | None] = mapped_column(sa.String(10), default=None)
    last_schedule: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    default_headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # AI on change (docs/ai.md): per-job mode (null: the engine's), the last AI decision
    # (written by `complete`), and the time of the last `run-now` with `replan`.
    ai_mode: Mapped[str | None] = mapped_column(sa.String(16), default=None)
    ai_decision: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    replan_requested_at: Mapped[datetime | None] = mapped_column(default=None)
    # A user's hint (POST /api/jobs/{id}/hints): interval or one-shot time, until expiry.
    hint_interval_ms: Mapped[int | None] = mapped_column(sa.BigInteger, default=None)
    hint_next_run_at: Mapped[datetime | None] = mapped_column(default=None)
    hint_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    hint_reason: Mapped[str | None] = mapped_column(sa.Text, default=None)
    hint_set_at: Mapped[datetime | None] = mapped_column(default=None)
    # Model spend in US dollars; kept here so it survives run retention.
    cost_usd_total: Mapped[float] = _money()
    cost_usd_today: Mapped[float] = _money()
    cost_day: Mapped[str | None] = mapped_column(sa.String(10), default=None)
    cost_usd_month: Mapped[float] = _money()
    cost_month: Mapped[str | None] = mapped_column(sa.String(7), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (
        # "Find due jobs": status = 'active' AND next_run_at <= now ORDER BY next_run_at.
        sa.Index("ix_jobs_due", "status", "next_run_at", "id"),
        sa.Index("ix_jobs_tenant_created", "tenant_id", "created_at"),
        sa.Index("ix_jobs_lease_expires", "lease_expires_at"),
        # `next_due_at`: the earliest future pause end (see store/lease_admin.py).
        sa.Index("ix_jobs_paused_until", "paused_until"),
    )


class Endpoint(Base):
    __tablename__ = "endpoints"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    job_id: Mapped[str] = mapped_column(sa.ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    url: Mapped[str] = mapped_column(sa.String(2048))
    method: Mapped[str] = mapped_column(sa.String(8), default="GET")
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    body: Mapped[Any | None] = mapped_column(default=None)
    request_schema: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    timeout_ms: Mapped[int | None] = mapped_column(default=None)  # null: engine default
    max_response_bytes: Mapped[int] = mapped_column(sa.BigInteger, default=1024 * 1024)
    fire_and_forget: Mapped[bool] = mapped_column(default=False)
    bearer_token: Mapped[str | None] = mapped_column(sa.Text, default=None)
    url_secret: Mapped[str | None] = mapped_column(sa.Text, default=None)
    """Encrypted JSON of the URL's secrets (userinfo password, secret-named query values);
    `url` holds `***` in their place (see `observability.redaction.split_url_secrets`)."""
    ai_view: Mapped[Any | None] = mapped_column(default=None)
    condition: Mapped[str | None] = mapped_column(sa.Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Message(Base):
    __tablename__ = "messages"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    job_id: Mapped[str] = mapped_column(sa.ForeignKey("jobs.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(sa.String(16))
    content: Mapped[str] = mapped_column(sa.Text)
    source: Mapped[str] = mapped_column(sa.String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        sa.Index("ix_messages_job_created", "job_id", "created_at"),
        # Retention finds old messages across all jobs by age.
        sa.Index("ix_messages_created", "created_at"),
    )


class Run(Base):
    __tablename__ = "runs"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    job_id: Mapped[str] = mapped_column(sa.ForeignKey("jobs.id", ondelete="CASCADE"))
    worker_id: Mapped[str] = mapped_column(sa.String(200))
    lease_token: Mapped[int] = mapped_column(sa.BigInteger)
    status: Mapped[str] = mapped_column(sa.String(16), default="running")
    due_at: Mapped[datetime | None] = mapped_column(default=None)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    duration_ms: Mapped[float | None] = mapped_column(sa.Float, default=None)
    plan: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    plan_source: Mapped[str | None] = mapped_column(sa.String(16), default=None)
    strategy: Mapped[str | None] = mapped_column(sa.String(16), default=None)
    success_count: Mapped[int] = mapped_column(default=0)
    failure_count: Mapped[int] = mapped_column(default=0)
    skipped_count: Mapped[int] = mapped_column(default=0)
    aborted_count: Mapped[int] = mapped_column(default=0)
    escalation_level: Mapped[str] = mapped_column(sa.String(16), default="none")
    schedule: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    input_tokens: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    reasoning_tokens: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    cached_input_tokens: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    ai_calls: Mapped[int] = mapped_column(default=0)
    ai_trigger: Mapped[str | None] = mapped_column(sa.String(32), default=None)
    cost_usd: Mapped[float] = _money()
    error: Mapped[str | None] = mapped_column(sa.Text, default=None)

    __table_args__ = (
        sa.Index("ix_runs_job_started", "job_id", "started_at"),
        # Retention finds old runs across all jobs by age.
        sa.Index("ix_runs_started", "started_at"),
        # The dashboard's 24 h success rate counts runs by status from the index alone.
        sa.Index("ix_runs_job_started_status", "job_id", "started_at", "status"),
        # A claim aborts the previous holder's still-running run of each claimed job: this
        # small partial index finds it without reading the job's whole history.
        sa.Index(
            "ix_runs_running_job",
            "job_id",
            postgresql_where=sa.text("status = 'running'"),
            sqlite_where=sa.text("status = 'running'"),
        ),
    )


class EndpointResult(Base):
    __tablename__ = "endpoint_results"
    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    run_id: Mapped[str] = mapped_column(sa.ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[str] = mapped_column(sa.String(36))
    endpoint_id: Mapped[str] = mapped_column(sa.String(36))
    position: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(sa.String(16))
    status_code: Mapped[int | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    duration_ms: Mapped[float] = mapped_column(sa.Float, default=0.0)
    request_bytes: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    response_bytes: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    truncated: Mapped[bool] = mapped_column(default=False)
    content_type: Mapped[str | None] = mapped_column(sa.String(200), default=None)
    response_body: Mapped[Any | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(sa.Text, default=None)
    error_category: Mapped[str | None] = mapped_column(sa.String(32), default=None)

    __table_args__ = (sa.Index("ix_results_endpoint_started", "endpoint_id", "started_at"),)


class AISessionRow(Base):
    """One model exchange of a run (docs/ai.md, AI sessions); deleted with its run."""

    __tablename__ = "ai_sessions"
    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    run_id: Mapped[str] = mapped_column(sa.ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[str] = mapped_column(sa.String(36))
    position: Mapped[int] = mapped_column(default=0)
    phase: Mapped[str] = mapped_column(sa.String(16))
    trigger: Mapped[str | None] = mapped_column(sa.String(32), default=None)
    model: Mapped[str] = mapped_column(sa.String(200))
    started_at: Mapped[datetime] = mapped_column()
    latency_ms: Mapped[float] = mapped_column(sa.Float, default=0.0)
    outcome: Mapped[str] = mapped_column(sa.String(32))
    failure: Mapped[str | None] = mapped_column(sa.Text, default=None)
    input_tokens: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    reasoning_tokens: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    cached_input_tokens: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    cost_usd: Mapped[float] = mapped_column(sa.Float, default=0.0)
    repair_attempts: Mapped[int] = mapped_column(default=0)
    messages: Mapped[Any] = mapped_column()
    attempts: Mapped[Any] = mapped_column()
    decision: Mapped[Any | None] = mapped_column(default=None)
    truncated: Mapped[bool] = mapped_column(default=False)


class JobError(Base):
    __tablename__ = "job_errors"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    job_id: Mapped[str] = mapped_column(sa.ForeignKey("jobs.id", ondelete="CASCADE"))
    run_id: Mapped[str | None] = mapped_column(sa.String(36), default=None)
    phase: Mapped[str] = mapped_column(sa.String(16))
    code: Mapped[str] = mapped_column(sa.String(64))
    message: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        sa.Index("ix_job_errors_job_created", "job_id", "created_at"),
        # Retention finds old errors across all jobs by age.
        sa.Index("ix_job_errors_created", "created_at"),
    )


class Worker(Base):
    """Engine worker heartbeats, so `status` can show live workers from any machine."""

    __tablename__ = "workers"
    id: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    host: Mapped[str] = mapped_column(sa.String(255), default="")
    pid: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_cycle_at: Mapped[datetime | None] = mapped_column(default=None)
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict)
    stopped_at: Mapped[datetime | None] = mapped_column(default=None)


# -- alerts (see cronicorn.domain.alerts and docs/alerts.md) -------------------------------


class AlertChannel(Base):
    """Where a tenant's alerts go. `url` and `signing_secret` hold ciphertext."""

    __tablename__ = "alert_channels"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(200))
    kind: Mapped[str] = mapped_column(sa.String(16))
    url: Mapped[str | None] = mapped_column(sa.Text, default=None)
    url_display: Mapped[str | None] = mapped_column(sa.String(300), default=None)
    email_to: Mapped[list[str] | None] = mapped_column(JSONType, default=None)
    signing_secret: Mapped[str | None] = mapped_column(sa.Text, default=None)
    enabled: Mapped[bool] = mapped_column(default=True)
    rate_limit_per_minute: Mapped[int] = mapped_column(default=10)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (sa.Index("ix_alert_channels_tenant_created", "tenant_id", "created_at"),)


class AlertRule(Base):
    """A job's alert rule, or (job_id NULL) its tenant's default."""

    __tablename__ = "alert_rules"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"))
    job_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("jobs.id", ondelete="CASCADE"), default=None
    )
    failure_threshold: Mapped[int | None] = mapped_column(default=None)
    on_critical: Mapped[bool] = mapped_column(default=False)
    on_recovery: Mapped[bool] = mapped_column(default=True)
    on_notify_user: Mapped[bool] = mapped_column(default=True)
    on_ai_pause: Mapped[bool] = mapped_column(default=True)
    on_budget: Mapped[bool] = mapped_column(default=True)
    channel_ids: Mapped[list[str] | None] = mapped_column(JSONType, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (
        sa.Index("uq_alert_rules_job", "job_id", unique=True),
        sa.Index(
            "uq_alert_rules_tenant_default",
            "tenant_id",
            unique=True,
            sqlite_where=sa.text("job_id IS NULL"),
            postgresql_where=sa.text("job_id IS NULL"),
        ),
    )


class AlertEvent(Base):
    """Facts of a finished run queued for the alert dispatcher (written by the completion's
    own transaction, only when a rule could fire; deleted once processed)."""

    __tablename__ = "alert_events"
    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    job_id: Mapped[str] = mapped_column(sa.ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    run_id: Mapped[str | None] = mapped_column(sa.String(36), default=None)
    facts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Alert(Base):
    """An incident: one open row per job and kind until it resolves."""

    __tablename__ = "alerts"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"))
    job_id: Mapped[str] = mapped_column(sa.ForeignKey("jobs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(sa.String(32))
    status: Mapped[str] = mapped_column(sa.String(16), default="open")
    since: Mapped[datetime] = mapped_column(default=utcnow)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)
    occurrences: Mapped[int] = mapped_column(default=1)
    last_error: Mapped[str | None] = mapped_column(sa.Text, default=None)
    details: Mapped[str | None] = mapped_column(sa.Text, default=None)
    last_run_id: Mapped[str | None] = mapped_column(sa.String(36), default=None)

    __table_args__ = (
        sa.Index("ix_alerts_job_status", "job_id", "status"),
        sa.Index("ix_alerts_tenant_opened", "tenant_id", "opened_at"),
        sa.Index(
            "uq_alerts_open_job_kind",
            "job_id",
            "kind",
            unique=True,
            sqlite_where=sa.text("status = 'open'"),
            postgresql_where=sa.text("status = 'open'"),
        ),
    )


class AlertDelivery(Base):
    """One message to one channel, with its attempts: the delivery log."""

    __tablename__ = "alert_deliveries"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"))
    alert_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("alerts.id", ondelete="CASCADE"), default=None, index=True
    )
    channel_id: Mapped[str] = mapped_column(sa.ForeignKey("alert_channels.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(sa.String(16))
    status: Mapped[str] = mapped_column(sa.String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(sa.Text, default=None)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(default=None)
    subject: Mapped[str] = mapped_column(sa.Text, default="")
    text: Mapped[str] = mapped_column(sa.Text, default="")
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (
        sa.Index("ix_alert_deliveries_due", "status", "next_attempt_at"),
        sa.Index("ix_alert_deliveries_channel_delivered", "channel_id", "delivered_at"),
    )


class RateLimit(Base):
    """Fixed-window request counters shared by every API replica (see store/rate_limits.py).

    `bucket` names what is counted (`key:<key id>`, `auth:<client address>`); one row per
    bucket and window, pruned once the window has passed."""

    __tablename__ = "rate_limits"
    bucket: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(default=0)

    __table_args__ = (sa.Index("ix_rate_limits_window_start", "window_start"),)


class SigningKey(Base):
    """A tenant's outbound signing secret (encrypted), see service/signing.py.

    `secret` is NULL once revoked; `revealed_at` records that the secret was shown (it is
    shown once)."""

    __tablename__ = "signing_keys"
    tenant_id: Mapped[str] = mapped_column(
        sa.ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    key_id: Mapped[str] = mapped_column(sa.String(36))
    secret: Mapped[str | None] = mapped_column(sa.Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revealed_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class WebSession(Base):
    """A dashboard sign-in: the cookie holds a random token, only its hash is stored. Tied
    to the key it was opened with (revoking the key ends it) and to that key's tenant and
    scope; `csrf_token` is the synchronizer token every state-changing form must carry."""

    __tablename__ = "web_sessions"
    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(
        sa.ForeignKey("api_keys.id", ondelete="CASCADE"), index=True
    )
    tenant_id: Mapped[str] = mapped_column(sa.String(36))
    scope: Mapped[str] = mapped_column(sa.String(16))
    csrf_token: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)


# Core tables for the SQL built once at import (claiming, fencing, run writes, …): defined
# here once so every module names them the same way.
jobs_t = cast(sa.Table, Job.__table__)
runs_t = cast(sa.Table, Run.__table__)
endpoints_t = cast(sa.Table, Endpoint.__table__)
results_t = cast(sa.Table, EndpointResult.__table__)
messages_t = cast(sa.Table, Message.__table__)
errors_t = cast(sa.Table, JobError.__table__)
workers_t = cast(sa.Table, Worker.__table__)
alerts_t = cast(sa.Table, Alert.__table__)
alert_events_t = cast(sa.Table, AlertEvent.__table__)
alert_deliveries_t = cast(sa.Table, AlertDelivery.__table__)
alert_channels_t = cast(sa.Table, AlertChannel.__table__)
alert_rules_t = cast(sa.Table, AlertRule.__table__)
rate_limits_t = cast(sa.Table, RateLimit.__table__)
signing_keys_t = cast(sa.Table, SigningKey.__table__)
tenants_t = cast(sa.Table, Tenant.__table__)
ai_sessions_t = cast(sa.Table, AISessionRow.__table__)
