"""User-supplied JSON Schemas (an endpoint's `request_schema`), handled without I/O.

A schema is user input that the engine evaluates on its event loop, so:

- it is never resolved over the network or from files: every `$ref` (and `$dynamicRef`,
  `$recursiveRef`) must be local — start with `#` — and validators get a `referencing`
  registry whose `retrieve` refuses everything, so even a schema stored before this rule
  (or written straight into the database) cannot make the process fetch a URL;
- its size and nesting are bounded, so checking it and validating against it stay cheap.

`schema_problem` is what the API turns into a 422; `schema_validator` is what plan
validation uses (None for a schema it must not or cannot use).
"""

from __future__ import annotations

import json
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource

MAX_SCHEMA_BYTES = 64 * 1024
"""Serialised (compact JSON) size limit of a `request_schema`."""
MAX_SCHEMA_DEPTH = 32
"""Nesting limit (objects and arrays) of a `request_schema`."""
REF_KEYWORDS = frozenset({"$ref", "$dynamicRef", "$recursiveRef"})


def _refuse(uri: str) -> Resource[Any]:
    """The registry's `retrieve`: schemas never load anything."""
    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]


NO_RETRIEVAL: Registry[Any] = Registry(retrieve=_refuse)  # type: ignore[call-arg]
"""A registry that knows nothing and can fetch nothing (the JSON Schema meta-schemas are
added by jsonschema itself)."""


def schema_problem(schema: Any) -> str | None:
    """Why `schema` may not be stored or used (too deep, too big, a non-local reference),
    or None. Iterative, so a hostile nesting depth cannot exhaust the stack."""
    stack: list[tuple[Any, int, str]] = [(schema, 0, "")]
    while stack:
        node, depth, where = stack.pop()
        if depth > MAX_SCHEMA_DEPTH:
            return f"is nested deeper than {MAX_SCHEMA_DEPTH} levels (at {where or '/'})"
        if isinstance(node, dict):
            for key, value in node.items():
                path = f"{where}/{key}"
                if key in REF_KEYWORDS and isinstance(value, str) and not value.startswith("#"):
                    return (
                        f"{key} {value[:200]!r} at {path} is not a local reference: only "
                        "references starting with '#' are allowed (schemas are never fetched)"
                    )
                stack.append((value, depth + 1, path))
        elif isinstance(node, list):
            stack.extend((item, depth + 1, f"{where}/{i}") for i, item in enumerate(node))
    size = len(json.dumps(schema, separators=(",", ":"), ensure_ascii=False))
    if size > MAX_SCHEMA_BYTES:
        return f"is {size} bytes of JSON; at most {MAX_SCHEMA_BYTES} are allowed"
    return None


def check_schema(schema: dict[str, Any]) -> None:
    """Raise ValueError (a message for the user) unless `schema` is safe and valid."""
    problem = schema_problem(schema)
    if problem is not None:
        raise ValueError(problem)
    try:
        validator_for(schema, default=Draft202012Validator).check_schema(schema)
    except SchemaError as exc:
        raise ValueError(f"is not a valid JSON Schema: {exc.message}") from None


def schema_validator(schema: dict[str, Any] | None) -> Validator | None:
    """A validator for `schema` that cannot retrieve anything, or None when the schema is
    absent, unsafe or invalid (callers then accept any parameters)."""
    if not schema or schema_problem(schema) is not None:
        return None
    cls = validator_for(schema, default=Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError:
        return None
    return cls(schema, registry=NO_RETRIEVAL)
