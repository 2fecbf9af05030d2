"""A box decrypts each ciphertext once: claims decrypt the same secrets on every run."""

from __future__ import annotations

import pytest

from cronicorn.errors import ConfigError
from cronicorn.store.secrets import SecretBox


def test_a_ciphertext_decrypted_again_gives_the_same_plaintext_without_decrypting() -> None:
    box = SecretBox(SecretBox.generate_key())
    token = box.encrypt("s3cret-value")
    assert box.decrypt(token) == "s3cret-value"
    assert box.decrypt_map({"X-Key": token}) == {"X-Key": "s3cret-value"}
    info = box._decrypt.cache_info()
    assert (info.misses, info.hits) == (1, 1)


def test_a_failed_decryption_is_not_remembered_and_keys_do_not_share_plaintexts() -> None:
    box, other = SecretBox(SecretBox.generate_key()), SecretBox(SecretBox.generate_key())
    token = box.encrypt("s3cret-value")
    assert box.decrypt(token) == "s3cret-value"
    for _ in range(2):
        with pytest.raises(ConfigError, match="cannot be decrypted"):
            other.decrypt(token)
    with pytest.raises(ConfigError):
        box.decrypt("not-a-token")
