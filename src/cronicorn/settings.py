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

from cronicorn.errors import ConfigError
from cronicorn.store.db import DEFAULT_DATABASE_URL, normalize_database_url
from cronicorn.store.retention import (
    DEFAULT_ERROR_RETENTION_DAYS,
    DEFAULT_MAX_RUNS_PER_JOB,
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
TENANT_BUDGET_ENV = "CRONICORN_TENANT_MONTHLY_BUDGET_USD"

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
            ),
            prune_interval_ms=_int_env(env, PRUNE_INTERVAL_ENV, DEFAULT_PRUNE_INTERVAL_MS, 0),
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


def _int_env(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


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
