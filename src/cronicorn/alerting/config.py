"""Alert settings from the environment: SMTP, the public URL for links, delivery tuning and
the SSRF allow-list (the same variables as the engine's endpoint calls)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cronicorn.errors import ConfigError
from cronicorn.observability.redaction import register_secret

PUBLIC_URL_ENV = "CRONICORN_PUBLIC_URL"
ALLOW_PRIVATE_ENV = "CRONICORN_ALLOW_PRIVATE_NETWORKS"
ALLOWED_HOSTS_ENV = "CRONICORN_ALLOWED_HOSTS"

DEFAULT_FROM = "cronicorn@localhost"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """`CRONICORN_SMTP_*`. Without a host, email channels cannot be created."""

    host: str | None = None
    port: int = 587
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    from_addr: str = DEFAULT_FROM
    starttls: bool = True
    """STARTTLS after connecting (port 587); false only for a local relay."""
    timeout_s: float = 30.0
    ca_file: str | None = None
    """`CRONICORN_SMTP_CA_FILE`: CA bundle to verify a relay with a private certificate."""


@dataclass(frozen=True, slots=True)
class AlertSettings:
    public_url: str | None = None
    """`CRONICORN_PUBLIC_URL`: messages link to `{public_url}/jobs/{id}`."""
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    allow_private_networks: bool = False
    allowed_hosts: tuple[str, ...] = ()
    poll_ms: int = 1_000
    """`CRONICORN_ALERT_POLL_MS`: how often the dispatcher looks for queued work."""
    max_attempts: int = 6
    """`CRONICORN_ALERT_MAX_ATTEMPTS`: attempts per delivery before it is `failed`."""
    retry_base_ms: int = 10_000
    """`CRONICORN_ALERT_RETRY_BASE_MS`: first retry delay; doubles per attempt."""
    retry_max_ms: int = 600_000
    """`CRONICORN_ALERT_RETRY_MAX_MS`: cap on the retry delay."""
    timeout_ms: int = 10_000
    """`CRONICORN_ALERT_TIMEOUT_MS`: one HTTP delivery attempt, whole request."""


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigError(f"{name}: must be a boolean (true/false, 1/0, yes/no, on/off) (got {raw!r})")


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ConfigError(f"{name}: must be an integer between {low} and {high} (got {raw!r})")
    return value


def _text(env: Mapping[str, str], name: str) -> str | None:
    return env.get(name, "").strip() or None


def alert_settings_from_env(env: Mapping[str, str]) -> AlertSettings:
    public_url = _text(env, PUBLIC_URL_ENV)
    if public_url is not None and not public_url.startswith(("http://", "https://")):
        raise ConfigError(
            f"{PUBLIC_URL_ENV}: must start with http:// or https:// (got {public_url!r})"
        )
    password = env.get("CRONICORN_SMTP_PASSWORD") or None
    if password:
        register_secret(password)
    smtp = SmtpSettings(
        host=_text(env, "CRONICORN_SMTP_HOST"),
        port=_int(env, "CRONICORN_SMTP_PORT", 587, 1, 65535),
        username=_text(env, "CRONICORN_SMTP_USERNAME"),
        password=password,
        from_addr=_text(env, "CRONICORN_SMTP_FROM") or DEFAULT_FROM,
        starttls=_bool(env, "CRONICORN_SMTP_STARTTLS", True),
        ca_file=_text(env, "CRONICORN_SMTP_CA_FILE"),
    )
    hosts = tuple(h.strip() for h in env.get(ALLOWED_HOSTS_ENV, "").split(",") if h.strip())
    return AlertSettings(
        public_url=public_url,
        smtp=smtp,
        allow_private_networks=_bool(env, ALLOW_PRIVATE_ENV, False),
        allowed_hosts=hosts,
        poll_ms=_int(env, "CRONICORN_ALERT_POLL_MS", 1_000, 10, 3_600_000),
        max_attempts=_int(env, "CRONICORN_ALERT_MAX_ATTEMPTS", 6, 1, 100),
        retry_base_ms=_int(env, "CRONICORN_ALERT_RETRY_BASE_MS", 10_000, 1, 86_400_000),
        retry_max_ms=_int(env, "CRONICORN_ALERT_RETRY_MAX_MS", 600_000, 1, 86_400_000),
        timeout_ms=_int(env, "CRONICORN_ALERT_TIMEOUT_MS", 10_000, 100, 300_000),
    )
