"""The credential that opens a worker's gateway for one session: an HMAC only web processes and workers can make.

The web process proves to a worker's gateway that it may drive a session by
presenting ``HMAC(key, purpose | session id)``, where the key is stretched from
``BROKER_SECRET_KEY`` (which web and workers already share). Nothing is stored:
both sides compute it, so no store read, API answer or log line ever carries
it. Bound to the session id and a purpose, a credential seen for one session
opens no other session and no other kind of door; the gateway admits only
sessions whose browser it holds, so it also dies with the session.
"""
from __future__ import annotations

import hashlib
import hmac

from core.config import Config
from core.crypto import deployment_secret, derive_key

#: The request header that carries the credential to the gateway.
HEADER = "X-Broker-Gateway-Credential"
#: Driving a session's browser over CDP (the relay, the cookie calls).
CDP = "cdp"
#: Reading a session's downloads and writing its uploads (tasks/file_door.py).
FILES = "files"
KEY_INFO = b"browser-broker/worker-gateway/v1"


class GatewayKey:
    def __init__(self, secret: str) -> None:
        self._key = derive_key(secret, KEY_INFO)

    @classmethod
    def from_config(cls, config: Config) -> GatewayKey:
        """Raises crypto.MissingSecretKey outside development without BROKER_SECRET_KEY, like SecretBox."""
        return cls(deployment_secret(config))

    def credential(self, session_id: str, purpose: str = CDP) -> str:
        return hmac.new(self._key, f"{purpose}|{session_id}".encode(), hashlib.sha256).hexdigest()

    def verify(self, session_id: str, presented: str | None, purpose: str = CDP) -> bool:
        """Constant-time comparison; a missing credential is simply wrong."""
        return presented is not None and hmac.compare_digest(self.credential(session_id, purpose), presented)
