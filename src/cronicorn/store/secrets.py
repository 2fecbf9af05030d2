"""Secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) from `cryptography`.

The key comes from `CRONICORN_SECRET_KEY` (a Fernet key: 32 url-safe base64 bytes) or is
generated once into the data directory as `secret.key` with 0600 permissions.

Every value that passes through a box (encrypted when the API accepts it, decrypted when a
job is claimed) is registered with the log redaction, so no log line can carry it.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from cronicorn.errors import ConfigError
from cronicorn.observability.redaction import MASK, register_header_secrets, register_secret

logger = logging.getLogger("cronicorn.store.secrets")


DECRYPTED_CACHE_SIZE = 4_096
"""Ciphertexts whose plaintext a box keeps (least recently used out first)."""


class SecretBox:
    """Encrypts and decrypts secret strings. Ciphertext is ASCII text.

    Every claim decrypts its jobs' secrets (headers, tokens, URL secrets, the tenant's
    signing key): the same ciphertexts again and again. A box remembers the plaintext of
    the last `DECRYPTED_CACHE_SIZE` ciphertexts it decrypted — each Fernet token is unique
    (random IV), so a ciphertext always maps to one plaintext — and skips the HMAC check
    and AES decryption the next time. The plaintexts are those a claim holds in memory
    anyway (and the log redaction registers); a failed decryption is never remembered.
    """

    def __init__(self, key: str | bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                "CRONICORN_SECRET_KEY must be a Fernet key (32 url-safe base64-encoded bytes)"
            ) from exc
        self._decrypt = functools.lru_cache(maxsize=DECRYPTED_CACHE_SIZE)(self._decrypt_token)

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()

    def encrypt(self, plaintext: str) -> str:
        register_secret(plaintext)
        return self._encrypt(plaintext)

    def decrypt(self, ciphertext: str) -> str:
        plaintext = self._decrypt(ciphertext)
        register_secret(plaintext)
        return plaintext

    def encrypt_json(self, value: Any) -> str:
        """A JSON value (e.g. a URL's secrets), encrypted as one ciphertext."""
        return self._encrypt(json.dumps(value, separators=(",", ":")))

    def decrypt_json(self, ciphertext: str) -> Any:
        return json.loads(self._decrypt(ciphertext))

    def encrypt_map(self, values: Mapping[str, str]) -> dict[str, str]:
        """Header maps: values of descriptive headers (content-type…) stay loggable."""
        register_header_secrets(values)
        return {name: self._encrypt(value) for name, value in values.items()}

    def decrypt_map(self, values: Mapping[str, str]) -> dict[str, str]:
        plain = {name: self._decrypt(value) for name, value in values.items()}
        register_header_secrets(plain)
        return plain

    def _encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def _decrypt_token(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise ConfigError("a stored secret cannot be decrypted with this secret key") from exc


def masked(values: Mapping[str, str]) -> dict[str, str]:
    """What the API shows for a secret map: the names, never the values."""
    return dict.fromkeys(values, MASK)


def load_secret_box(data_dir: Path, env_key: str | None = None) -> SecretBox:
    """The key from the environment, else from `data_dir/secret.key`, created if missing."""
    key = env_key if env_key is not None else os.environ.get("CRONICORN_SECRET_KEY")
    if key:
        return SecretBox(key)
    path = data_dir / "secret.key"
    if path.exists():
        return SecretBox(path.read_text().strip())
    data_dir.mkdir(parents=True, exist_ok=True)
    new_key = SecretBox.generate_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(new_key)
    logger.warning(
        "created the secret key file %s (it decrypts stored secrets: keep it, or set "
        "CRONICORN_SECRET_KEY)",
        path.resolve(),
    )
    return SecretBox(new_key)
