"""JMESPath, typed and bounded: the one place that compiles and evaluates the expressions
users give endpoints (`ai_view`, `condition`).

Uses the `jmespath` library (no home-made evaluator). Compiled expressions are cached, so a
job's expressions are parsed once per process, not once per run.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

MAX_EXPRESSION_CHARS = 500
MAX_VIEW_EXPRESSIONS = 20

AiView = Mapping[str, str] | Sequence[str]
"""An endpoint's `ai_view`: a name → expression mapping, or a list of expressions (each
then named by its own text)."""


class ExpressionError(ValueError):
    """An expression that does not compile or cannot be evaluated."""


@functools.lru_cache(maxsize=4096)
def compile_expression(expression: str) -> Any:
    """The compiled expression; ExpressionError (with the library's message) if invalid."""
    if not expression.strip():
        raise ExpressionError("expression is empty")
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(f"expression is longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        return jmespath.compile(expression)
    except JMESPathError as exc:
        raise ExpressionError(_first_line(exc)) from None


def search(expression: str, data: Any) -> Any:
    """Evaluate `expression` over `data`; ExpressionError on invalid expressions and on
    evaluation errors (e.g. a function given the wrong type)."""
    compiled = compile_expression(expression)
    try:
        return compiled.search(data)
    except JMESPathError as exc:
        raise ExpressionError(_first_line(exc)) from None
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        raise ExpressionError(f"{type(exc).__name__}: {exc}") from None


def truthy(value: Any) -> bool:
    """JMESPath truthiness: false, null, empty strings, lists and objects are false."""
    if value is None or value is False:
        return False
    if isinstance(value, str | list | dict | tuple):
        return len(value) > 0
    return True


def view_items(view: AiView | None) -> list[tuple[str, str]]:
    """(name, expression) pairs of an `ai_view`, in the order given."""
    if not view:
        return []
    if isinstance(view, Mapping):
        return [(str(name), str(expr)) for name, expr in view.items()]
    return [(str(expr), str(expr)) for expr in view]


def evaluate_view(view: AiView | None, body: Any) -> dict[str, Any]:
    """Every expression of `view` over `body`: its value, or `{"error": ...}` when it
    cannot be evaluated (an error never hides the other values)."""
    out: dict[str, Any] = {}
    for name, expression in view_items(view):
        try:
            out[name] = search(expression, body)
        except ExpressionError as exc:
            out[name] = {"error": str(exc)}
    return out


def validate_view(view: AiView) -> list[str]:
    """Problems with an `ai_view` as given through the API (empty list: valid)."""
    items = view_items(view)
    errors: list[str] = []
    if len(items) > MAX_VIEW_EXPRESSIONS:
        errors.append(f"at most {MAX_VIEW_EXPRESSIONS} expressions")
    for name, expression in items:
        if not name.strip() or len(name) > 100:
            errors.append("names must be 1 to 100 characters")
            continue
        try:
            compile_expression(expression)
        except ExpressionError as exc:
            errors.append(f"{name!r}: {exc}")
    return errors


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
