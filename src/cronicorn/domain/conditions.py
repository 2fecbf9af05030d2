"""Endpoint conditions: a JMESPath expression over the results of endpoints called earlier
in the same run, deciding whether a call is made (rules plans and reused AI plans).

The document the expression sees maps each earlier endpoint's *name* to
`{"status", "status_code", "ok", "body", "error"}`, e.g.
`backlog.body.backlog > \\`20\\`` or `"orders-backlog".ok`. Names with characters other than
letters, digits and `_` must be quoted (`"scale-up"`). A name not called yet is null, so a
condition on it is false. JMESPath truthiness decides: false, null and empty values do not
hold. An expression that fails to evaluate does not hold either (the reason says why).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cronicorn.domain.jmes import ExpressionError, search, truthy
from cronicorn.domain.models import EndpointResult, EndpointStatus


def result_document(result: EndpointResult) -> dict[str, Any]:
    return {
        "status": result.status.value,
        "status_code": result.status_code,
        "ok": result.status is EndpointStatus.SUCCESS,
        "body": result.response_body,
        "error": result.error,
    }


def condition_holds(expression: str, earlier: Mapping[str, EndpointResult]) -> tuple[bool, str]:
    """(holds, reason): whether `expression` holds over the earlier results by name."""
    document = {name: result_document(r) for name, r in earlier.items()}
    try:
        value = search(expression, document)
    except ExpressionError as exc:
        return False, f"condition {expression!r} could not be evaluated: {exc}"
    if truthy(value):
        return True, f"condition {expression!r} holds"
    return False, f"condition {expression!r} does not hold (value: {_short(value)})"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:79] + "…"
