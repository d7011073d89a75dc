"""An upstream proxy's address: the one parser both the API (validation) and the worker (forwarding) use."""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

SCHEMES = ("http", "https", "socks5")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
#: A host name or IPv4 address as labels of up to 63 characters (DNS answers for the whole name's length).
HOST_NAME_PATTERN = rf"{_LABEL}(?:\.{_LABEL})*"
_H16 = "[0-9A-Fa-f]{1,4}"
#: An IPv6 address in its colon forms (no embedded IPv4, no zone).
IPV6_PATTERN = "(?:" + "|".join([
    f"(?:{_H16}:){{7}}{_H16}", f"(?:{_H16}:){{1,7}}:", f"(?:{_H16}:){{1,6}}:{_H16}",
    f"(?:{_H16}:){{1,5}}(?::{_H16}){{1,2}}", f"(?:{_H16}:){{1,4}}(?::{_H16}){{1,3}}",
    f"(?:{_H16}:){{1,3}}(?::{_H16}){{1,4}}", f"(?:{_H16}:){{1,2}}(?::{_H16}){{1,5}}",
    f"{_H16}:(?::{_H16}){{1,6}}", f":(?:(?::{_H16}){{1,7}}|:)",
]) + ")"
PORT_PATTERN = r"(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
HOST_PORT_PATTERN = rf"(?:{HOST_NAME_PATTERN}|\[{IPV6_PATTERN}\]):{PORT_PATTERN}"
#: What ``ProxyAddress.parse`` takes, as a pattern the OpenAPI document can show (the API checks both).
SERVER_PATTERN = rf"^(?:[Hh][Tt][Tt][Pp][Ss]?|[Ss][Oo][Cc][Kk][Ss]5)://{HOST_PORT_PATTERN}/?$"
#: What ``split_host_port`` takes.
TARGET_PATTERN = rf"^{HOST_PORT_PATTERN}$"
HOST_NAME = re.compile(rf"^{HOST_NAME_PATTERN}$")


@dataclass(frozen=True)
class ProxyAddress:
    scheme: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> ProxyAddress:
        """``scheme://host:port`` and nothing more; ValueError says what is wrong without echoing the text.

        The text is never echoed because a user may have put a password in it.
        """
        try:
            parts = urlsplit(text)
        except ValueError:
            raise ValueError("Must be scheme://host:port; a bracketed host must be an IPv6 address.") from None
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES or not text.lower().startswith(f"{scheme}://"):
            raise ValueError("Must start with http://, https:// or socks5://.")
        if "@" in parts.netloc:
            raise ValueError("Credentials cannot be part of the URL; send them as username and password.")
        if parts.path not in ("", "/") or parts.query or parts.fragment or "?" in text or "#" in text:
            raise ValueError("Must be scheme://host:port, without a path, query or fragment.")
        try:
            port = parts.port
        except ValueError:
            raise ValueError("The port must be a number from 1 to 65535.") from None
        if port is None or not 1 <= port <= 65535:
            raise ValueError("Needs a port from 1 to 65535, as in http://proxy.example.com:8080.")
        host = parts.hostname or ""
        if not _valid_host(host, bracketed=parts.netloc.startswith("[")):
            raise ValueError("The host must be a host name, an IPv4 address or a bracketed IPv6 address.")
        return cls(scheme, host, port)

    @property
    def url(self) -> str:
        """The normalised form stored and shown: lower-case scheme and host, brackets around IPv6."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def _valid_host(host: str, bracketed: bool) -> bool:
    if bracketed:
        try:
            return ipaddress.ip_address(host).version == 6
        except ValueError:
            return False
    return bool(HOST_NAME.match(host))


def split_host_port(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` as a CONNECT line or a check target names it; ValueError if malformed."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError("Must be host:port with a port from 1 to 65535.")
    bracketed = host.startswith("[") and host.endswith("]")
    host = host[1:-1] if bracketed else host.lower()
    if not _valid_host(host, bracketed):
        raise ValueError("The host must be a host name, an IPv4 address or a bracketed IPv6 address.")
    return host, int(port_text)
