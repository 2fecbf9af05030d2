"""Process settings read from the environment (the API server and the CLI).

Engine tuning lives in `cronicorn.engine.config.EngineConfig`; this module only holds what a
process needs to reach its database and its secrets. A bad value raises `ConfigError` with a
one-line message naming the variable, so the CLI can print it and exit.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url

from cronicorn.alerting.config import AlertSettings, alert_settings_from_env
from cronicorn.errors import ConfigError
from cronicorn.service.quotas import Quotas
from cronicorn.service.throttle import RateLimits
from cronicorn.store.db import DEFAULT_DATABASE_URL, normalize_database_url
from cronicorn.store.retention import (
    DEFAULT_ERROR_RETENTION_DAYS,
    DEFAULT_MAX_RUNS_PER_JOB,
    DEFAULT_PRUNE_BATCH_SIZE,
    DEFAULT_PRUNE_DUTY_PERCENT,
    DEFAULT_PRUNE_INTERVAL_MS,
    DEFAULT_RUN_RETENTION_DAYS,
    RetentionPolicy,
)
from cronicorn.store.secrets import SecretBox, load_secret_box

DATABASE_URL_ENV = "CRONICORN_DATABASE_URL"
SECRET_KEY_ENV = "CRONICORN_SECRET_KEY"
MAX_BODY_BYTES_ENV = "CRONICORN_MAX_BODY_BYTES"
CLAIM_WAIT_ENV = "CRONICORN_MAX_CLAIM_WAIT_MS"
RUN_RETENTION_ENV = "CRONICORN_RUN_RETENTION_DAYS"
MAX_RUNS_ENV = "CRONICORN_MAX_RUNS_PER_JOB"
ERROR_RETENTION_ENV = "CRONICORN_ERROR_RETENTION_DAYS"
PRUNE_INTERVAL_ENV = "CRONICORN_PRUNE_INTERVAL_MS"
PRUNE_DUTY_ENV = "CRONICORN_PRUNE_DUTY_PERCENT"
PRUNE_BATCH_ENV = "CRONICORN_PRUNE_BATCH_SIZE"
TENANT_BUDGET_ENV = "CRONICORN_TENANT_MONTHLY_BUDGET_USD"

RATE_WINDOW_ENV = "CRONICORN_RATE_LIMIT_WINDOW_S"
AUTH_FAILURES_ENV = "CRONICORN_AUTH_FAILURE_LIMIT"
RATE_USER_ENV = "CRONICORN_RATE_LIMIT_USER"
RATE_ADMIN_ENV = "CRONICORN_RATE_LIMIT_ADMIN"
RATE_ENGINE_ENV = "CRONICORN_RATE_LIMIT_ENGINE"
QUOTA_JOBS_ENV = "CRONICORN_QUOTA_JOBS_PER_TENANT"
QUOTA_ENDPOINTS_ENV = "CRONICORN_QUOTA_ENDPOINTS_PER_JOB"
QUOTA_MESSAGES_ENV = "CRONICORN_QUOTA_MESSAGES_PER_JOB"
QUOTA_MESSAGE_BYTES_ENV = "CRONICORN_QUOTA_MESSAGE_BYTES"

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_MAX_CLAIM_WAIT_MS = 30_000


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the API process needs; build with `Settings.from_env()` or directly."""

    database_url: str = DEFAULT_DATABASE_URL
    secret_key: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    """Request bodies larger than this are refused with 413."""
    max_claim_wait_ms: int = DEFAULT_MAX_CLAIM_WAIT_MS
    """Upper bound on a scheduler claim's long-poll, whatever the engine asks for."""
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    """What the pruner removes (jobs may override the run limits)."""
    prune_interval_ms: int = DEFAULT_PRUNE_INTERVAL_MS
    """How often the API process prunes history; 0 turns the background pruner off."""
    prune_duty_percent: int = DEFAULT_PRUNE_DUTY_PERCENT
    """Share of its wall time the background pruner spends in statements (1..100): after
    each batch it sleeps in proportion to the batch's duration."""
    alerts: AlertSettings = field(default_factory=AlertSettings)
    """Alert delivery: SMTP, public URL, retries, SSRF allow-list (docs/alerts.md)."""
    alert_dispatch: bool = True
    """Run the alert dispatcher in this API process (off: another process sends)."""
    rate_limits: RateLimits = field(default_factory=RateLimits)
    """Failed-authentication and per-key request limits (see service/throttle.py)."""
    quotas: Quotas = field(default_factory=Quotas)
    """Per-tenant storage quotas (see service/quotas.py)."""
    tenant_monthly_budget_usd: float | None = None
    """The default tenant monthly budget the API reports (the engine enforces its own
    `ai_agent.tenant_monthly_budget_usd`, read from the same variable)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        url = env.get(DATABASE_URL_ENV) or DEFAULT_DATABASE_URL
        try:
            normalize_database_url(url)
        except ConfigError as exc:
            raise ConfigError(f"{DATABASE_URL_ENV}: {exc}") from exc
        key = env.get(SECRET_KEY_ENV) or None
        if key is not None:
            try:
                SecretBox(key)
            except ConfigError as exc:
                raise ConfigError(str(exc)) from exc
        return cls(
            database_url=url,
            secret_key=key,
            max_body_bytes=_int_env(env, MAX_BODY_BYTES_ENV, DEFAULT_MAX_BODY_BYTES, 1024),
            max_claim_wait_ms=_int_env(env, CLAIM_WAIT_ENV, DEFAULT_MAX_CLAIM_WAIT_MS, 0),
            retention=RetentionPolicy(
                run_retention_days=_int_env(env, RUN_RETENTION_ENV, DEFAULT_RUN_RETENTION_DAYS, 0),
                max_runs_per_job=_int_env(env, MAX_RUNS_ENV, DEFAULT_MAX_RUNS_PER_JOB, 0),
                error_retention_days=_int_env(
                    env, ERROR_RETENTION_ENV, DEFAULT_ERROR_RETENTION_DAYS, 0
                ),
                batch_size=_int_env(env, PRUNE_BATCH_ENV, DEFAULT_PRUNE_BATCH_SIZE, 1, 10_000),
            ),
            prune_interval_ms=_int_env(env, PRUNE_INTERVAL_ENV, DEFAULT_PRUNE_INTERVAL_MS, 0),
            prune_duty_percent=_int_env(env, PRUNE_DUTY_ENV, DEFAULT_PRUNE_DUTY_PERCENT, 1, 100),
            alerts=alert_settings_from_env(env),
            rate_limits=_rate_limits(env),
            quotas=_quotas(env),
            tenant_monthly_budget_usd=_money_env(env, TENANT_BUDGET_ENV),
        )

    @property
    def data_dir(self) -> Path:
        """Where generated files (the secret key) live: the SQLite file's folder, else CWD."""
        parsed = make_url(normalize_database_url(self.database_url))
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            return Path(str(parsed.database)).expanduser().resolve().parent
        return Path.cwd()

    def secret_box(self) -> SecretBox:
        return load_secret_box(self.data_dir, self.secret_key or "")


def _int_env(
    env: Mapping[str, str], name: str, default: int, minimum: int, maximum: int | None = None
) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be <= {maximum}, got {value}")
    return value


def _rate_limits(env: Mapping[str, str]) -> RateLimits:
    d = RateLimits()
    return RateLimits(
        window_s=_int_env(env, RATE_WINDOW_ENV, d.window_s, 1),
        auth_failures=_int_env(env, AUTH_FAILURES_ENV, d.auth_failures, 0),
        user=_int_env(env, RATE_USER_ENV, d.user, 0),
        admin=_int_env(env, RATE_ADMIN_ENV, d.admin, 0),
        engine=_int_env(env, RATE_ENGINE_ENV, d.engine, 0),
    )


def _quotas(env: Mapping[str, str]) -> Quotas:
    d = Quotas()
    return Quotas(
        jobs_per_tenant=_int_env(env, QUOTA_JOBS_ENV, d.jobs_per_tenant, 1),
        endpoints_per_job=_int_env(env, QUOTA_ENDPOINTS_ENV, d.endpoints_per_job, 1),
        messages_per_job=_int_env(env, QUOTA_MESSAGES_ENV, d.messages_per_job, 1),
        message_bytes=_int_env(env, QUOTA_MESSAGE_BYTES_ENV, d.message_bytes, 1),
    )


def _money_env(env: Mapping[str, str], name: str) -> float | None:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not 0 <= value <= 1e9:
        raise ConfigError(f"{name} must be between 0 and 1e9, got {raw!r}")
    return value
