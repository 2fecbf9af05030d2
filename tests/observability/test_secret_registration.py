"""Secrets are registered where they enter memory (the SecretBox) and masked from then on;
descriptive header values stay readable."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cronicorn.observability.redaction import (
    clear_secrets,
    redact_text,
    register_header_secrets,
    register_secret,
    url_secrets,
)
from cronicorn.store.secrets import SecretBox


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[None]:
    clear_secrets()
    yield
    clear_secrets()


def test_decrypting_registers_values_but_not_descriptive_headers() -> None:
    box = SecretBox(SecretBox.generate_key())
    stored = box.encrypt_map({"X-Api-Key": "k-91xq-secret", "Content-Type": "application/json"})
    token = box.encrypt("tok-55-bearer")
    clear_secrets()  # forget what encrypting registered: decrypting alone must do it
    assert "k-91xq-secret" in redact_text("sent k-91xq-secret")
    box.decrypt_map(stored)
    box.decrypt(token)
    line = redact_text("sent k-91xq-secret as application/json with tok-55-bearer")
    assert line == "sent *** as application/json with ***"


def test_encrypting_registers_too() -> None:
    """The API accepts secrets in clear text: they are masked from that moment."""
    box = SecretBox(SecretBox.generate_key())
    box.encrypt_map({"Authorization-Extra": "zz-accepted-1"})
    assert redact_text("zz-accepted-1") == "***"


def test_registration_is_lazy_and_many_secrets_all_match() -> None:
    for i in range(2_000):
        register_secret(f"secret-value-{i:05d}")
    register_header_secrets({"accept": "text/plain", "x-token-ish": "hdr-77-value"})
    assert (
        redact_text("a secret-value-01999 b hdr-77-value c text/plain")
        == "a *** b *** c text/plain"
    )
    register_secret("abc")  # too short to be worth masking
    assert redact_text("abc") == "abc"


@pytest.mark.parametrize(
    ("url", "found"),
    [
        ("https://api.example/v1/ping", []),
        ("https://api.example/v1/ping#token=frag", []),
        ("https://bob:pa%20ss@api.example/x", ["pa%20ss", "bob:pa%20ss", "pa ss", "bob:pa ss"]),
        ("https://api.example/x?api_key=k-123456&page=2", ["k-123456"]),
        ("https://api.example/x?page=2", []),
    ],
)
def test_url_secrets_userinfo_and_secret_query_values(url: str, found: list[str]) -> None:
    assert url_secrets(url) == found
