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


# -- live-view credentials ----------------------------------------------------------
LIVE_INFO = b"browser-broker/live-view/v1"
LIVE_SALT_FIELD = "liveViewSalt"
LIVE_HASH_FIELD = "liveViewHash"
LIVE_READ_ONLY_HASH_FIELD = "liveViewReadOnlyHash"
LIVE_EXPIRES_FIELD = "liveViewExpiresEpoch"


class LiveViewTokens:
    """The credential in a session's liveViewUrl: it opens that session's viewer, and nothing else.

    Built like a connect token (an HMAC of the session id and a salt under a key
    of its own, only its SHA-256 stored), so it is not a connect token and the
    relay never takes it, and the API can show it again without storing it. Two
    credentials share the salt: one lets the viewer send input, the other only
    watches. Both expire (``BROKER_LIVE_VIEW_TTL``) and are revoked together by
    issuing a new salt; a stopped session forgets both hashes.
    """

    def __init__(self, secret: str, ttl: float) -> None:
        self._key = derive_key(secret, LIVE_INFO)
        self.ttl = ttl

    @classmethod
    def from_config(cls, config: Config) -> LiveViewTokens:
        return cls(deployment_secret(config), config.live_view.ttl)

    def issue(self, session_id: str, now: float) -> dict[str, str | float]:
        """Fresh credentials for the session's record; whatever it had before stops matching."""
        salt = secrets.token_hex(16)
        return {
            LIVE_SALT_FIELD: salt,
            LIVE_HASH_FIELD: sha256_hex(self._token(session_id, salt, read_only=False)),
            LIVE_READ_ONLY_HASH_FIELD: sha256_hex(self._token(session_id, salt, read_only=True)),
            LIVE_EXPIRES_FIELD: now + self.ttl,
        }

    def needs_renewal(self, record: dict, now: float) -> bool:
        """No credential yet, or less than half its lifetime left: an answer should not hand out a link about to die."""
        return not record.get(LIVE_HASH_FIELD) or record.get(LIVE_EXPIRES_FIELD, 0) - now < self.ttl / 2

    def token_for(self, record: dict, read_only: bool) -> str | None:
        """The session's live-view credential, for its owner's answers; None once dead."""
        salt = record.get(LIVE_SALT_FIELD)
        if not salt or not record.get(LIVE_HASH_FIELD):
            return None
        return self._token(record["id"], salt, read_only)

    def _token(self, session_id: str, salt: str, read_only: bool) -> str:
        mode = "watch" if read_only else "control"
        digest = hmac.new(self._key, f"{session_id}:{salt}:{mode}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def live_view_access(record: dict | None, token: str | None, now: float) -> str | None:
    """``"control"`` or ``"watch"`` when ``token`` opens this session's viewer now, else None; constant-time compares."""
    if not record or not token or record.get(LIVE_EXPIRES_FIELD, 0) <= now:
        return None
    hashed = sha256_hex(token)
    control = hmac.compare_digest(hashed, record.get(LIVE_HASH_FIELD) or "")
    watch = hmac.compare_digest(hashed, record.get(LIVE_READ_ONLY_HASH_FIELD) or "")
    return "control" if control else "watch" if watch else None
