"""Encryption of the secrets the broker must store readable again (upstream proxy passwords), and the
deployment secret every other derived key comes from (connect tokens: core.tokens; worker gateway
credentials: core.gateway_auth).

The key comes from ``BROKER_SECRET_KEY``: the web process encrypts, the worker
decrypts, so both need the same value. Each use gets its own key from it through
HKDF rather than using it directly, so operators may set any long random string.
Outside development a process refuses to start without it: a password stored
under a guessable key is a password stored in the clear.
"""
from __future__ import annotations

import base64
import logging

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from core.config import Config

log = logging.getLogger(__name__)

DEVELOPMENT = "development"
#: Used only when BROKER_ENV=development and no secret is set; it is public, so it protects nothing.
DEVELOPMENT_SECRET = "browser-broker development secret: not for real passwords"
KEY_INFO = b"browser-broker/stored-secrets/v1"
MIN_SECRET_LENGTH = 16


class MissingSecretKey(RuntimeError):
    """Raised at start-up: the process must not run without a way to protect stored passwords."""


class UnreadableSecret(RuntimeError):
    """A stored secret was encrypted under another BROKER_SECRET_KEY (or altered)."""


def deployment_secret(config: Config) -> str:
    """BROKER_SECRET_KEY, or in development a public stand-in; raises MissingSecretKey otherwise."""
    if config.secret_key:
        if len(config.secret_key) < MIN_SECRET_LENGTH:
            raise MissingSecretKey(f"BROKER_SECRET_KEY must be at least {MIN_SECRET_LENGTH} characters.")
        return config.secret_key
    if config.env == DEVELOPMENT:
        log.warning("BROKER_SECRET_KEY is not set: development mode derives secrets from a public key")
        return DEVELOPMENT_SECRET
    raise MissingSecretKey(
        "BROKER_SECRET_KEY is not set. It encrypts stored proxy passwords and derives connect tokens and worker "
        "gateway credentials; set it to a "
        "long random string (the same in the web process and every worker), or set BROKER_ENV=development for a "
        "local run."
    )


def derive_key(secret: str, purpose: bytes) -> bytes:
    """32 bytes for one purpose: each use of the deployment secret gets a key of its own (HKDF)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret.encode())


class SecretBox:
    def __init__(self, secret: str) -> None:
        key = derive_key(secret, KEY_INFO)
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    @classmethod
    def from_config(cls, config: Config) -> SecretBox:
        """The box for this deployment; raises MissingSecretKey outside development without a usable secret."""
        return cls(deployment_secret(config))

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise UnreadableSecret("a stored secret cannot be decrypted with this BROKER_SECRET_KEY") from None
