"""Service-level errors that the API maps to HTTP statuses."""

from __future__ import annotations

from cronicorn.errors import ConflictError, ValidationFailed


class FieldErrors(ValidationFailed):
    """Validation failed on named fields (checked against stored state, e.g. on PATCH).

    `fields` pairs each field name with its message; the API returns them as 422 details
    located at `[location, field]`, the same shape as request-schema errors.
    """

    def __init__(self, fields: list[tuple[str, str]], location: str = "body") -> None:
        super().__init__([f"{name}: {msg}" for name, msg in fields])
        self.fields = fields
        self.location = location


class StateConflict(ConflictError):
    """The object exists but is in a state that forbids the action (e.g. archived)."""
