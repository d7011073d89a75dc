"""Connect tokens: the secret in a session's cdpUrl that opens its CDP socket.

A session id is a name (it is in logs, lists, dashboards); the token is the
credential. The session record keeps only the token's SHA-256 and a random salt;
the token itself is an HMAC of the session id and salt under a key derived from
BROKER_SECRET_KEY, so the API can show the owner their cdpUrl again without
storing it, and a copy of Redis alone opens no browser. The relay needs only the
hash. A stopped session's hash is cleared, so its token is dead for good.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from urllib.parse import parse_qs

from core.config import Config
from core.crypto import deployment_secret, derive_key
from core.ids import sha256_hex

TOKEN_PARAM = "token"
TOKEN_HASH_FIELD = "connectTokenHash"
SALT_FIELD = "connectSalt"
TOKEN_INFO = b"browser-broker/connect-tokens/v1"
#: ``token=<value>`` in a request line or URL, for logs that must not carry it.
TOKEN_IN_TEXT = re.compile(r"(\btoken=)[^&\s\"']+")


class ConnectTokens:
    def __init__(self, secret: str) -> None:
        self._key = derive_key(secret, TOKEN_INFO)

    @classmethod
    def from_config(cls, config: Config) -> ConnectTokens:
        return cls(deployment_secret(config))

    def issue(self, session_id: str) -> dict[str, str]:
        """The fields a new session record carries: a salt and the hash of the token they give (256 bits)."""
        salt = secrets.token_hex(16)
        return {SALT_FIELD: salt, TOKEN_HASH_FIELD: sha256_hex(self._token(session_id, salt))}

    def token_for(self, record: dict) -> str | None:
        """The session's token, for its owner's answers; None for a record made before tokens existed."""
        salt = record.get(SALT_FIELD)
        return self._token(record["id"], salt) if salt else None

    def _token(self, session_id: str, salt: str) -> str:
        digest = hmac.new(self._key, f"{session_id}:{salt}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def matches(record: dict | None, token: str | None) -> bool:
    """Whether ``token`` opens this session's socket; compared in constant time."""
    expected = (record or {}).get(TOKEN_HASH_FIELD)
    if not expected or not token:
        return False
    return hmac.compare_digest(sha256_hex(token), expected)


def token_in_query(query_string: str) -> str | None:
    values = parse_qs(query_string or "").get(TOKEN_PARAM)
    return values[0] if values else None


def redact(text: str) -> str:
    """``text`` with every ``token=`` value replaced, for a log line."""
    return TOKEN_IN_TEXT.sub(r"\1[redacted]", text)
