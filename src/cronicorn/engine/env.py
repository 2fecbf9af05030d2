"""`EngineConfig` from environment variables (SPEC §8).

Each variable overrides one field of a base config (defaults, or what the caller built from
flags/files). A bad value raises `ConfigError` with a one-line message that names the
variable, says what is expected and echoes what was given, so the CLI can print it and exit:
``CRONICORN_MAX_CONCURRENCY: must be an integer between 1 and 10000 (got 'abc')``.
Empty values count as unset, like most shells and container runtimes treat ``VAR=``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, SecretStr, ValidationError

from cronicorn.engine.config import EngineConfig
from cronicorn.errors import ConfigError

__all__ = ["ENV_VARS", "EnvVar", "engine_config_from_env"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class _BadValue(ValueError):
    """A raw string could not be parsed; the message says what was expected."""


def _bounds(model: type[BaseModel], field: str) -> tuple[Any, Any]:
    low = high = None
    for meta in model.model_fields[field].metadata:
        if isinstance(meta, Ge | Gt):
            low = meta.ge if isinstance(meta, Ge) else meta.gt
        elif isinstance(meta, Le | Lt):
            high = meta.le if isinstance(meta, Le) else meta.lt
    return low, high


def _range_text(kind: str, low: Any, high: Any) -> str:
    if low is not None and high is not None:
        return f"must be {kind} between {low} and {high}"
    if low is not None:
        return f"must be {kind} >= {low}"
    if high is not None:
        return f"must be {kind} <= {high}"
    return f"must be {kind}"


def _parse_int(raw: str) -> int:
    try:
        return int(raw.replace("_", ""))
    except ValueError:
        raise _BadValue from None


def _parse_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise _BadValue from None
    if not math.isfinite(value):
        raise _BadValue
    return value


def _parse_bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise _BadValue


def _parse_url(raw: str) -> str:
    if not raw.startswith(("http://", "https://")) or len(raw) <= len("https://"):
        raise _BadValue
    return raw


def _parse_hosts(raw: str) -> list[str]:
    hosts = [part.strip() for part in raw.split(",") if part.strip()]
    if any(" " in host for host in hosts):
        raise _BadValue
    return hosts


def _parse_level(raw: str) -> str:
    level = raw.upper()
    level = "WARNING" if level == "WARN" else level
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise _BadValue
    return level


def _parse_ai_mode(raw: str) -> str:
    if raw.lower() not in ("every_run", "on_change"):
        raise _BadValue
    return raw.lower()


def _parse_prices(raw: str) -> dict[str, Any]:
    """`{"model": {"input": 2.5, "cached_input": 1.25, "output": 10}}` (JSON)."""
    try:
        value = json.loads(raw)
    except ValueError:
        raise _BadValue from None
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise _BadValue
    return value


def _parse_format(raw: str) -> str:
    if raw.lower() not in ("text", "json"):
        raise _BadValue
    return raw.lower()


@dataclass(frozen=True, slots=True)
class EnvVar:
    """One environment variable and the `EngineConfig` field it overrides."""

    name: str
    section: str
    field: str
    parse: Callable[[str], Any]
    expected: str
    """What a valid value looks like; "{range}" is filled from the field's bounds."""


ENV_VARS: tuple[EnvVar, ...] = (
    EnvVar("OPENAI_API_KEY", "ai_agent", "api_key", SecretStr, "must be a non-empty key"),
    EnvVar("OPENAI_BASE_URL", "ai_agent", "base_url", _parse_url, "must be an http(s) URL"),
    EnvVar("CRONICORN_AI_MODEL", "ai_agent", "model", str, "must be a model name"),
    EnvVar("CRONICORN_AI_TEMPERATURE", "ai_agent", "temperature", _parse_float, "{number}"),
    EnvVar("CRONICORN_AI_MAX_RETRIES", "ai_agent", "max_retries", _parse_int, "{integer}"),
    EnvVar("CRONICORN_AI_TIMEOUT_MS", "ai_agent", "timeout_ms", _parse_int, "{integer}"),
    EnvVar(
        "CRONICORN_AI_MODE", "ai_agent", "mode", _parse_ai_mode, "must be every_run or on_change"
    ),
    EnvVar(
        "CRONICORN_AI_PRICES",
        "ai_agent",
        "prices",
        _parse_prices,
        'must be JSON like {"gpt-4o": {"input": 2.5, "cached_input": 1.25, "output": 10}}',
    ),
    EnvVar(
        "CRONICORN_TENANT_MONTHLY_BUDGET_USD",
        "ai_agent",
        "tenant_monthly_budget_usd",
        _parse_float,
        "{number}",
    ),
    EnvVar("CRONICORN_MAX_CONCURRENCY", "execution", "max_concurrency", _parse_int, "{integer}"),
    EnvVar(
        "CRONICORN_DEFAULT_TIMEOUT_MS", "execution", "default_timeout_ms", _parse_int, "{integer}"
    ),
    EnvVar(
        "CRONICORN_MAX_ENDPOINT_RETRIES",
        "execution",
        "max_endpoint_retries",
        _parse_int,
        "{integer}",
    ),
    EnvVar("CRONICORN_MAX_BATCH_SIZE", "scheduler", "max_batch_size", _parse_int, "{integer}"),
    EnvVar("CRONICORN_JOB_CONCURRENCY", "scheduler", "job_concurrency", _parse_int, "{integer}"),
    EnvVar(
        "CRONICORN_PROCESSING_INTERVAL_MS",
        "scheduler",
        "processing_interval_ms",
        _parse_int,
        "{integer}",
    ),
    EnvVar(
        "CRONICORN_STALE_LOCK_THRESHOLD_MS",
        "scheduler",
        "stale_lock_threshold_ms",
        _parse_int,
        "{integer}",
    ),
    EnvVar(
        "CRONICORN_CLAIM_AHEAD_MS",
        "scheduler",
        "claim_ahead_ms",
        _parse_int,
        "{integer}",
    ),
    EnvVar(
        "CRONICORN_SHUTDOWN_GRACE_MS",
        "scheduler",
        "shutdown_grace_ms",
        _parse_int,
        "{integer}",
    ),
    EnvVar(
        "CRONICORN_ALLOW_PRIVATE_NETWORKS",
        "execution",
        "allow_private_networks",
        _parse_bool,
        "must be a boolean (true/false, 1/0, yes/no, on/off)",
    ),
    EnvVar(
        "CRONICORN_ALLOWED_HOSTS",
        "execution",
        "allowed_hosts",
        _parse_hosts,
        "must be a comma-separated list of hosts, IPs or CIDRs",
    ),
    EnvVar("CRONICORN_LOG_FORMAT", "logger", "format", _parse_format, "must be text or json"),
    EnvVar(
        "CRONICORN_LOG_LEVEL",
        "logger",
        "level",
        _parse_level,
        "must be one of DEBUG, INFO, WARNING, ERROR",
    ),
)


def _expected(var: EnvVar, model: type[BaseModel]) -> str:
    low, high = _bounds(model, var.field)
    if var.expected == "{integer}":
        return _range_text("an integer", low, high)
    if var.expected == "{number}":
        return _range_text("a number", low, high)
    return var.expected


def _apply(var: EnvVar, section: BaseModel, raw: str) -> None:
    """Parse `raw` and assign it (validate_assignment checks the field's bounds)."""
    model = type(section)
    try:
        setattr(section, var.field, var.parse(raw))
    except (_BadValue, ValidationError):
        raise ConfigError(f"{var.name}: {_expected(var, model)} (got {raw!r})") from None


def engine_config_from_env(
    environ: Mapping[str, str] | None = None, base: EngineConfig | None = None
) -> EngineConfig:
    """`base` (default: all defaults) with every set variable of `ENV_VARS` applied.

    Raises `ConfigError` naming the first bad variable. `base` is not modified.
    """
    env = os.environ if environ is None else environ
    config = base if base is not None else EngineConfig()
    sections: dict[str, BaseModel] = {}
    for var in ENV_VARS:
        raw = env.get(var.name, "").strip()
        if not raw:
            continue
        if var.section not in sections:
            sections[var.section] = getattr(config, var.section).model_copy()
        _apply(var, sections[var.section], raw)
    if not sections:
        return config
    try:
        return EngineConfig.model_validate({**dict(config), **sections})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"environment: {first['msg']}") from None
