"""The signature scheme against an independent HMAC computation."""

from __future__ import annotations

import hashlib
import hmac

from cronicorn.domain.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    signature,
    signature_headers,
    verify_signature,
)


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    expected = hmac.new(b"k3y", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
    assert signature("k3y", 1700000000, b'{"a":1}') == "sha256=" + expected


def test_headers_verify_and_tampering_fails() -> None:
    headers = signature_headers("k3y", 1700000000, b"body")
    ts, sig = headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER]
    assert verify_signature("k3y", ts, b"body", sig, now=1700000010)
    assert not verify_signature("k3y", ts, b"bodY", sig, now=1700000010)
    assert not verify_signature("other", ts, b"body", sig, now=1700000010)
    assert not verify_signature("k3y", ts, b"body", sig, now=1700000000 + 301)
    assert not verify_signature("k3y", "not-a-number", b"body", sig, now=1700000000)
