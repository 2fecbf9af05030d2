"""Structured logging: correlation fields, text or JSON lines, secret masking, sampling.

Correlation fields (`cycle_id`, `job_id`, `run_id`, `endpoint_id`, `worker_id`) live in a
`ContextVar`, so they follow the code that set them: `asyncio` tasks copy the context when they
are created, hence a task started inside `with log_context(job_id=...)` logs that job id even
after the block has exited, and sibling tasks never see each other's fields.

Everything that reaches a handler installed by `configure_logging` passes through
`cronicorn.observability.redaction`, so a secret cannot be written even by a careless
`log.info("headers %s", headers)`.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Mapping, MutableMapping
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from types import MappingProxyType, TracebackType
from typing import IO, Any, Literal

from cronicorn.observability.redaction import redact, redact_text

CORRELATION_FIELDS = ("cycle_id", "job_id", "run_id", "endpoint_id", "worker_id")
SAMPLED = "sampled"
"""`extra={"sampled": True}` marks a noisy line (per attempt, per poll) as droppable."""

_context: ContextVar[Mapping[str, str]] = ContextVar(
    "cronicorn_log_context", default=MappingProxyType({})
)

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    SAMPLED,
    *CORRELATION_FIELDS,
}


def log_context(**fields: object) -> LogContext:
    """Add correlation fields for the duration of the block (nested blocks add to outer ones;
    `None` values are ignored). Restores the previous fields on exit."""
    return LogContext(fields)


_FIELDS = frozenset(CORRELATION_FIELDS)


class LogContext:
    """The context manager `log_context` returns: a class rather than a generator, since
    the engine enters one per run."""

    __slots__ = ("_fields", "_token")

    def __init__(self, fields: Mapping[str, object]) -> None:
        self._fields = fields
        self._token: Token[Mapping[str, str]] | None = None

    def __enter__(self) -> None:
        fields = self._fields
        if not _FIELDS.issuperset(fields):
            unknown = set(fields) - _FIELDS
            raise TypeError(f"unknown correlation field(s): {', '.join(sorted(unknown))}")
        merged = dict(_context.get())
        merged.update({k: str(v) for k, v in fields.items() if v is not None})
        self._token = _context.set(merged)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _context.reset(self._token)
            self._token = None


def current_context() -> dict[str, str]:
    """The correlation fields in effect here (a copy)."""
    return dict(_context.get())


class CorrelationFilter(logging.Filter):
    """Copies the current correlation fields onto each record (explicit `extra=` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class SamplingFilter(logging.Filter):
    """Keeps `rate` of the records marked `extra={"sampled": True}`; others always pass.

    Deterministic: of every run of sampled records, record n is kept when
    floor((n + 1) * rate) > floor(n * rate), so exactly round-down(N * rate) of N pass and the
    kept ones are evenly spread. Warnings and errors are never sampled out.
    """

    def __init__(self, rate: float) -> None:
        super().__init__()
        if not 0.0 <= rate <= 1.0:
            raise ValueError("sampling rate must be within [0, 1]")
        self.rate = rate
        self._seen = 0
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, SAMPLED, False) or record.levelno >= logging.WARNING:
            return True
        with self._lock:
            n = self._seen
            self._seen += 1
        return int((n + 1) * self.rate) > int(n * self.rate)


class _SampledAdapter(logging.LoggerAdapter[logging.Logger]):
    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        kwargs["extra"] = {**(kwargs.get("extra") or {}), SAMPLED: True}
        return msg, kwargs


def sampled(logger: logging.Logger) -> logging.LoggerAdapter[logging.Logger]:
    """`logger`, but every line it writes is subject to `sampling_rate`."""
    return _SampledAdapter(logger, {})


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _RESERVED}


def _correlation(record: logging.LogRecord) -> dict[str, str]:
    return {k: str(getattr(record, k)) for k in CORRELATION_FIELDS if hasattr(record, k)}


def _timestamp(record: logging.LogRecord) -> str:
    ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
    return ts.replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, correlation fields, extras, exc_info."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": redact_text(record.getMessage()),
        }
        out.update(redact(_correlation(record)))
        for key, value in redact(_extras(record)).items():
            out.setdefault(key, value)
        if record.exc_info:
            out["exc_info"] = redact_text(self.formatException(record.exc_info))
        if record.stack_info:
            out["stack_info"] = redact_text(self.formatStack(record.stack_info))
        return json.dumps(out, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`2024-05-01T12:00:00.123Z INFO  cronicorn.engine: msg job_id=… key=value`."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {**_correlation(record), **_extras(record)}
        suffix = " ".join(f"{k}={_text_value(v)}" for k, v in redact(fields).items())
        line = f"{_timestamp(record)} {record.levelname:<5} {record.name}: {record.getMessage()}"
        if suffix:
            line = f"{line} {suffix}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        if record.stack_info:
            line = f"{line}\n{self.formatStack(record.stack_info)}"
        return redact_text(line)


def _text_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if text == "" or any(c.isspace() or c in '"=' for c in text):
        return json.dumps(text)
    return text


_HANDLER_MARK = "_cronicorn_handler"
QUIET_LOGGERS = ("aiosqlite",)
"""Capped at INFO: their DEBUG lines (two per SQL statement, every parameter repeated) come
from a driver thread, outside any run's correlation context. Set their level again after
`configure_logging` to see them."""


def configure_logging(
    level: str = "INFO",
    fmt: Literal["text", "json"] = "text",
    sampling_rate: float = 1.0,
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Install one handler on the root logger (replacing one installed earlier by this
    function, leaving others alone) and return it. `stream` defaults to stderr."""
    if fmt not in ("text", "json"):
        raise ValueError(f"log format must be 'text' or 'json', not {fmt!r}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(CorrelationFilter())
    handler.addFilter(SamplingFilter(sampling_rate))
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.INFO, root.level))
    return handler
