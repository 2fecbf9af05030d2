"""The `Idempotency-Key` every endpoint call carries.

Delivery is at least once: a worker killed mid-run, or a run whose completion could not be
stored, is run again after its lease expires. The key lets the receiver recognise the
repeat. It is derived, not stored: a UUIDv5 of the job id, the run's due time (the job's
`next_run_at` when it was claimed — a re-run of the same due time is claimed at the same
value, since the first run never moved it) and the endpoint id. So the key is the same for
every retry of the call and every re-run of that due time, and different for the next due
time and for every other endpoint.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["IDEMPOTENCY_HEADER", "DueRun", "idempotency_key"]

IDEMPOTENCY_HEADER = "Idempotency-Key"
NAMESPACE = uuid.UUID("0b7c6f1e-3c1a-5f4e-9a51-63726f6e6963")
"""Fixed forever: changing it changes every key (receivers would see new keys for repeats)."""
_NAMESPACE_BYTES = NAMESPACE.bytes


def idempotency_key(job_id: str, due_at: datetime, endpoint_id: str) -> str:
    """`uuid5(NAMESPACE, "{job_id}|{due_at as UTC ISO-8601, microseconds}|{endpoint_id}")`."""
    if due_at.tzinfo is None:
        raise ValueError("due_at must be timezone-aware")
    due = due_at.astimezone(UTC).isoformat(timespec="microseconds")
    return _uuid5_text(f"{job_id}|{due}|{endpoint_id}")


def _uuid5_text(name: str) -> str:
    """`str(uuid.uuid5(NAMESPACE, name))` without the UUID object (one per endpoint call):
    SHA-1 of namespace + name, version 5 and the RFC 4122 variant set, 8-4-4-4-12 hex."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True, slots=True)
class DueRun:
    """Which due time of which job a run executes: the scope of its idempotency keys."""

    job_id: str
    due_at: datetime

    def idempotency_key(self, endpoint_id: str) -> str:
        return idempotency_key(self.job_id, self.due_at, endpoint_id)
