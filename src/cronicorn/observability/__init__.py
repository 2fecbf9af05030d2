"""Observability building blocks: structured logs, Prometheus metrics, the metrics/health
server and the `status` report. See docs/observability.md."""

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
