"""The credential in a session's recordingUrl: it opens that session's replay page and recording, nothing else.

Built like a connect token (core.tokens): an HMAC of the session id and a salt under a key of its own, so the API
can show the link again without storing it, and it is no connect token or live-view credential. Unlike those it
outlives the session (a replay is for after the fact): it works as long as the recording is kept, and deleting
the recording (which drops the salt) kills it. It only ever reads.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from core.config import Config
from core.crypto import deployment_secret, derive_key

REPLAY_INFO = b"browser-broker/replay-links/v1"
SALT_FIELD = "recordingSalt"


class ReplayLinks:
    def __init__(self, secret: str, public_url: str) -> None:
        self._key = derive_key(secret, REPLAY_INFO)
        self.public_url = public_url.rstrip("/")

    @classmethod
    def from_config(cls, config: Config) -> ReplayLinks:
        return cls(deployment_secret(config), config.web.public_url)

    @staticmethod
    def issue() -> dict[str, str]:
        """A recorded session's record carries this salt from its create on."""
        return {SALT_FIELD: secrets.token_hex(16)}

    def url_for(self, record: dict) -> str | None:
        token = self._token(record)
        return f"{self.public_url}/replay/{record['id']}?token={token}" if token else None

    def opens(self, record: dict | None, token: str | None) -> bool:
        expected = self._token(record) if record else None
        return bool(expected and token) and hmac.compare_digest(expected, token)

    def _token(self, record: dict) -> str | None:
        salt = record.get(SALT_FIELD)
        if not salt:
            return None
        digest = hmac.new(self._key, f"{record['id']}:{salt}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
