"""Exception hierarchy. Every error carries the ids that locate it."""

from __future__ import annotations


class CronicornError(Exception):
    """Base of every error raised by Cronicorn."""


class ConfigError(CronicornError):
    """A configuration value is missing or invalid (names the variable or field)."""


class NotFoundError(CronicornError):
    def __init__(self, kind: str, object_id: str) -> None:
        super().__init__(f"{kind} {object_id} not found")
        self.kind = kind
        self.object_id = object_id


class ConflictError(CronicornError):
    """The request conflicts with the current state."""


class LeaseLostError(ConflictError):
    """A write for a claimed job was refused: its lease was lost, expired or superseded."""

    def __init__(self, job_id: str, token: int, detail: str = "lease lost or expired") -> None:
        super().__init__(f"job {job_id}: {detail} (fencing token {token})")
        self.job_id = job_id
        self.token = token


class ValidationFailed(CronicornError):
    """Input failed validation; `errors` are human-readable, one per problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


class BackendUnavailableError(CronicornError):
    """The scheduler backend (API or database) could not be reached."""
