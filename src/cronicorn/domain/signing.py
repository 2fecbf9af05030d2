"""Outbound request signing: HMAC-SHA256 over ``"{timestamp}.{body}"`` (SPEC §11).

One home for the signature scheme, shared by endpoint calls and alert deliveries, so a receiver
verifies both the same way. The key is the tenant's signing secret exactly as it is shown to the
user once (its UTF-8 bytes are the HMAC key).
"""

from __future__ import annotations

import hmac

__all__ = [
    "SIGNATURE_HEADER",
    "SIGNATURE_PREFIX",
    "TIMESTAMP_HEADER",
    "signature",
    "signature_headers",
    "verify_signature",
]

TIMESTAMP_HEADER = "X-Cronicorn-Timestamp"
SIGNATURE_HEADER = "X-Cronicorn-Signature"
SIGNATURE_PREFIX = "sha256="


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, f"{timestamp}." + body)."""
    mac = hmac.digest(secret.encode(), f"{timestamp}.".encode() + body, "sha256")
    return SIGNATURE_PREFIX + mac.hex()


def signature_headers(secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The two headers an outbound request carries (timestamp in whole Unix seconds)."""
    return {
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, timestamp, body),
    }


def verify_signature(
    secret: str,
    timestamp_header: str,
    body: bytes,
    signature_header: str,
    *,
    now: int,
    tolerance_s: int = 300,
) -> bool:
    """True when the signature matches and the timestamp is within ``tolerance_s`` of ``now``."""
    try:
        timestamp = int(timestamp_header)
    except ValueError:
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), signature_header)
