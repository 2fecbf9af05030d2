"""The demo's jobs: plain data the `cronicorn demo` command creates through the API.

Each spec is a job body for ``POST /api/jobs`` plus an ``endpoints`` list, each item a body for
``POST /api/jobs/{id}/endpoints``. Field names follow SPEC §2. Intervals are short so that a
30 s demo shows several runs and visible changes of schedule:

- *orders*: polls the backlog, scales up when it is high. With the AI the interval tightens
  while the backlog grows and relaxes when it shrinks; the rules planner keeps the baseline.
  The scale-up hook has a `condition` (the backlog's status is `high`), so without a model
  it is called only in the runs where the backlog is high, not on every run; the model sees
  the backlog through an `ai_view`.
- *health*: watches a health check that fails for a few seconds in every cycle; failing runs
  back off (x2 per consecutive failure) and the schedule snaps back after recovery, with or
  without AI.
"""

from __future__ import annotations

from typing import Any

__all__ = ["demo_job_spec", "demo_job_specs", "health_job_spec", "split_spec"]

ORDERS_DEFINITION = (
    "Poll the orders API for the current order backlog. When the backlog is growing or its "
    "status is 'high' (above high_backlog), check it every 2-3 seconds and call the scale-up "
    "hook with the current backlog. When the backlog is shrinking or normal, relax to every "
    "8-10 seconds and do not call the scale-up hook."
)

HEALTH_DEFINITION = (
    "Check the shop's health endpoint every 2 seconds. If it fails, back off and retry less "
    "often until it recovers, then return to every 2 seconds."
)


SCALE_UP_CONDITION = "\"orders-backlog\".body.status == 'high'"
"""The scale-up hook runs (without a model, or on a reused plan) only when this holds."""


def demo_job_spec(base_url: str) -> dict[str, Any]:
    """The main demo job (orders backlog + scale-up hook) against the target at `base_url`."""
    base = base_url.rstrip("/")
    return {
        "name": "demo: orders backlog",
        "definition": ORDERS_DEFINITION,
        "interval_ms": 5_000,
        "min_interval_ms": 1_000,
        "max_interval_ms": 20_000,
        "endpoints": [
            {
                "name": "orders-backlog",
                "description": (
                    "Current order backlog: {backlog, trend: growing|shrinking, "
                    "status: high|normal, high_backlog, replicas}."
                ),
                "url": f"{base}/orders/backlog",
                "method": "GET",
                "timeout_ms": 5_000,
                "ai_view": {"backlog": "backlog", "status": "status", "trend": "trend"},
            },
            {
                "name": "scale-up",
                "description": (
                    "Adds a replica when the backlog is high. Call only when the backlog is "
                    "high or growing fast."
                ),
                "url": f"{base}/scale-up",
                "method": "POST",
                "body": {"reason": "backlog"},
                "request_schema": {
                    "type": "object",
                    "properties": {
                        "reason": {"type": "string"},
                        "backlog": {"type": "integer", "minimum": 0},
                    },
                    "additionalProperties": False,
                },
                "timeout_ms": 5_000,
                "condition": SCALE_UP_CONDITION,
            },
        ],
    }


def health_job_spec(base_url: str) -> dict[str, Any]:
    """A second job whose only endpoint fails periodically, to show backoff and recovery."""
    base = base_url.rstrip("/")
    return {
        "name": "demo: shop health",
        "definition": HEALTH_DEFINITION,
        "interval_ms": 2_000,
        "min_interval_ms": 1_000,
        "max_interval_ms": 16_000,
        "endpoints": [
            {
                "name": "health",
                "description": "200 {status: ok} when healthy, 503 {status: degraded} when not.",
                "url": f"{base}/health",
                "method": "GET",
                "timeout_ms": 2_000,
            }
        ],
    }


def demo_job_specs(base_url: str) -> list[dict[str, Any]]:
    """Every demo job, main job first."""
    return [demo_job_spec(base_url), health_job_spec(base_url)]


def split_spec(spec: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(job body, endpoint bodies): what to POST to /api/jobs and then to its endpoints."""
    job = {key: value for key, value in spec.items() if key != "endpoints"}
    return job, [dict(endpoint) for endpoint in spec["endpoints"]]
