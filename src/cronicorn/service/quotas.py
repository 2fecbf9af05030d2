"""Per-tenant quotas: how much one tenant may store (SPEC §11 "Limits").

The checks run inside the creating transaction, after locking the owning row (the tenant
for jobs, the job for endpoints and messages; see `cronicorn.store.locks`), so concurrent
creates cannot overshoot a quota on SQLite or PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_JOBS_PER_TENANT = 1000
DEFAULT_ENDPOINTS_PER_JOB = 100
DEFAULT_MESSAGES_PER_JOB = 1000
DEFAULT_MESSAGE_BYTES = 32 * 1024


@dataclass(frozen=True, slots=True)
class Quotas:
    jobs_per_tenant: int = DEFAULT_JOBS_PER_TENANT
    """Jobs a tenant may hold, archived ones excluded; creating one more is a 409."""
    endpoints_per_job: int = DEFAULT_ENDPOINTS_PER_JOB
    """Endpoints of one job; adding one more is a 409."""
    messages_per_job: int = DEFAULT_MESSAGES_PER_JOB
    """Messages kept in a job's history. Posting a message to a full history deletes the
    oldest messages (any source) in the same transaction: history is a rolling window."""
    message_bytes: int = DEFAULT_MESSAGE_BYTES
    """Largest `content` of a posted message, in UTF-8 bytes; larger is a 422."""
