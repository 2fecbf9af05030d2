"""Observability building blocks: structured logs, Prometheus metrics, the metrics/health
server and the `status` report. See docs/observability.md.

The names below are imported on first use (`redaction` is needed by the service schemas and
must not bring the metrics server or Prometheus with it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cronicorn._lazy import lazy_exports

__all__ = [
    "CORRELATION_FIELDS",
    "ApiMetrics",
    "EngineMetrics",
    "JobSummary",
    "MetricsMiddleware",
    "MetricsServer",
    "StatusReport",
    "build_status_report",
    "configure_logging",
    "current_context",
    "log_context",
    "redact",
    "redact_text",
    "register_header_secrets",
    "register_secret",
    "render",
    "render_status",
    "sampled",
    "start_metrics_server",
    "summarize_jobs",
]

_ASGI = "cronicorn.observability.asgi"
_LOGGING = "cronicorn.observability.logging"
_METRICS = "cronicorn.observability.metrics"
_REDACTION = "cronicorn.observability.redaction"
_SERVER = "cronicorn.observability.server"
_STATUS = "cronicorn.observability.status"

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "MetricsMiddleware": _ASGI,
        "CORRELATION_FIELDS": _LOGGING,
        "configure_logging": _LOGGING,
        "current_context": _LOGGING,
        "log_context": _LOGGING,
        "sampled": _LOGGING,
        "ApiMetrics": _METRICS,
        "EngineMetrics": _METRICS,
        "render": _METRICS,
        "redact": _REDACTION,
        "redact_text": _REDACTION,
        "register_header_secrets": _REDACTION,
        "register_secret": _REDACTION,
        "MetricsServer": _SERVER,
        "start_metrics_server": _SERVER,
        "JobSummary": _STATUS,
        "StatusReport": _STATUS,
        "build_status_report": _STATUS,
        "render_status": _STATUS,
        "summarize_jobs": _STATUS,
    },
)

if TYPE_CHECKING:
    from cronicorn.observability.asgi import MetricsMiddleware
    from cronicorn.observability.logging import (
        CORRELATION_FIELDS,
        configure_logging,
        current_context,
        log_context,
        sampled,
    )
    from cronicorn.observability.metrics import ApiMetrics, EngineMetrics, render
    from cronicorn.observability.redaction import (
        redact,
        redact_text,
        register_header_secrets,
        register_secret,
    )
    from cronicorn.observability.server import MetricsServer, start_metrics_server
    from cronicorn.observability.status import (
        JobSummary,
        StatusReport,
        build_status_report,
        render_status,
        summarize_jobs,
    )
