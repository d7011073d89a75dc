"""An upstream proxy ready to dial: its address and its decrypted credentials.

Built from a stored record only where a connection is about to be made (the
worker's forwarder, the API's check), so the clear password lives no longer
than that, and its repr never shows it.
"""
from __future__ import annotations

import ssl
from dataclasses import dataclass, field

from python_socks import ProxyType

from core.crypto import SecretBox
from core.proxy_address import ProxyAddress


@dataclass(frozen=True)
class Upstream:
    address: ProxyAddress
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_record(cls, record: dict, box: SecretBox) -> Upstream:
        ciphertext = record.get("passwordCiphertext")
        return cls(ProxyAddress.parse(record["server"]), record.get("username"), box.decrypt(ciphertext) if ciphertext else None)

    @property
    def proxy_type(self) -> ProxyType:
        return ProxyType.SOCKS5 if self.address.scheme == "socks5" else ProxyType.HTTP

    def tls_context(self) -> ssl.SSLContext | None:
        """An https:// proxy is spoken to over TLS, verified against the system's CAs like any server."""
        return ssl.create_default_context() if self.address.scheme == "https" else None

    def credentials(self) -> tuple[str | None, str | None]:
        """What python-socks takes; a user name alone authenticates with an empty password."""
        if self.username is None:
            return None, None
        return self.username, self.password or ""
