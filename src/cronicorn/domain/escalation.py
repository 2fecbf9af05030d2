"""How bad a run was: escalation level and whether the run counts as failed.

Skipped and aborted endpoints are not failures (SPEC §4): a skip is the consequence of another
endpoint's failure (already counted) and an abort is the engine's doing (shutdown), not the
endpoint's.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from cronicorn.domain.models import EndpointResult, EndpointStatus, ErrorCategory, Escalation

__all__ = ["escalation_level", "failure_ratio", "is_run_failure"]

_NOT_ATTEMPTED = (EndpointStatus.SKIPPED, EndpointStatus.ABORTED)
_CRITICAL_CATEGORIES = (ErrorCategory.CRITICAL_FAILURE, ErrorCategory.DEPENDENCY_FAILED)


def failure_ratio(results: Sequence[EndpointResult]) -> float:
    """Failed / attempted (skipped and aborted excluded); 0.0 when nothing was attempted."""
    attempted = [r for r in results if r.status not in _NOT_ATTEMPTED]
    if not attempted:
        return 0.0
    failed = sum(1 for r in attempted if r.status is EndpointStatus.FAILED)
    return failed / len(attempted)


def escalation_level(
    results: Sequence[EndpointResult], warn_ratio: float, critical_ratio: float
) -> Escalation:
    """`critical` at ratio ≥ critical_ratio, `warn` at ≥ warn_ratio; `none` without failures."""
    ratio = failure_ratio(results)
    if ratio == 0.0:
        return Escalation.NONE
    if ratio >= critical_ratio:
        return Escalation.CRITICAL
    if ratio >= warn_ratio:
        return Escalation.WARN
    return Escalation.NONE


def is_run_failure(
    results: Sequence[EndpointResult], critical_endpoint_ids: Collection[str] = ()
) -> bool:
    """Whether the run counts as failed (drives `consecutive_failures` and so the backoff).

    A run fails when a critical endpoint failed — seen either from `critical_endpoint_ids`
    (the plan's critical calls) or from results the executor skipped with category
    `critical_failure` / `dependency_failed` — or when every attempted endpoint failed.
    A run where some non-critical endpoints failed is *not* failed; its escalation level says
    how degraded it was. Nothing attempted (empty plan, all skipped/aborted) is not a failure.
    """
    for result in results:
        if result.status is EndpointStatus.FAILED and result.endpoint_id in critical_endpoint_ids:
            return True
        if (
            result.status is EndpointStatus.SKIPPED
            and result.error_category in _CRITICAL_CATEGORIES
        ):
            return True
    attempted = [r for r in results if r.status not in _NOT_ATTEMPTED]
    return bool(attempted) and all(r.status is EndpointStatus.FAILED for r in attempted)
