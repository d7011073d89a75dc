"""Where a session's browser may open connections: public addresses only, unless the operator opens more.

Every browser talks to the network through its own forwarder (tasks/forwarder.py),
and the forwarder asks this policy before it dials: the name is resolved once,
each address is judged, and the connection goes to an address that was judged,
never to a second lookup of the name. So DNS rebinding (a name that answers a
public address to one lookup and 127.0.0.1 to the next) and a page's own
``fetch('http://10.0.0.1/')`` meet the same rule, decided at connect time.

Refused by default: everything ``ipaddress`` does not call global (loopback,
RFC 1918, link-local and cloud metadata at 169.254.169.254, CGNAT 100.64/10,
unique-local IPv6, the benchmarking and documentation ranges, 0.0.0.0/8),
multicast, an IPv6 address that maps or embeds one of those, and every address
of the host's own interfaces (a public address on the host still reaches the
broker's own listeners). ``BROKER_EGRESS_ALLOW`` opens what a deployment needs:
``CIDR`` or ``CIDR:PORT`` or ``CIDR:LOW-HIGH`` (IPv6 as ``[CIDR]:PORT``),
separated by commas or spaces. The same policy judges the address of a saved
upstream proxy and the target of ``POST /v1/proxies/:id/check``, both of which
the web process or a worker dials on a tenant's say.
"""
from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from functools import cached_property

import psutil

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_RULE = re.compile(r"^(?:\[(?P<v6>[^\]]+)\]|(?P<net>[^:\[\]]+|[0-9A-Fa-f:]+(?:/\d+)?))(?::(?P<low>\d+)(?:-(?P<high>\d+))?)?$")


class EgressRefused(OSError):
    """The destination is outside what a session may reach; the text is safe to show to the tenant."""


@dataclass(frozen=True)
class AllowRule:
    network: IPNetwork
    low: int = 1
    high: int = 65535

    @classmethod
    def parse(cls, text: str) -> AllowRule:
        """ValueError names the entry and what is wrong with it (a deployment must not start on a typo)."""
        match = _RULE.match(text.strip())
        if not match:
            raise ValueError(f"BROKER_EGRESS_ALLOW entry {text!r} is not CIDR, CIDR:PORT or CIDR:LOW-HIGH")
        net = match["v6"] or match["net"]
        try:
            network = ipaddress.ip_network(net, strict=False)
        except ValueError as error:
            raise ValueError(f"BROKER_EGRESS_ALLOW entry {text!r}: {error}") from None
        low = int(match["low"]) if match["low"] else 1
        high = int(match["high"]) if match["high"] else (low if match["low"] else 65535)
        if not 1 <= low <= high <= 65535:
            raise ValueError(f"BROKER_EGRESS_ALLOW entry {text!r}: ports must be 1-65535, low to high")
        return cls(network, low, high)

    def covers(self, address: IPAddress, port: int) -> bool:
        return address.version == self.network.version and address in self.network and self.low <= port <= self.high


def _unwrap(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one stands for (mapped ::ffff:a.b.c.d, 6to4, Teredo's server), else itself."""
    if isinstance(address, ipaddress.IPv6Address):
        for inner in (address.ipv4_mapped, address.sixtofour, address.teredo[1] if address.teredo else None):
            if inner is not None:
                return inner
    return address


def host_addresses() -> frozenset[IPAddress]:
    """Every address of this host's interfaces, as the forwarder's dial would meet them."""
    found: set[IPAddress] = set()
    for entries in psutil.net_if_addrs().values():
        for entry in entries:
            if entry.family in (socket.AF_INET, socket.AF_INET6):
                try:
                    found.add(ipaddress.ip_address(entry.address.split("%", 1)[0]))
                except ValueError:
                    continue
    return frozenset(found)


class EgressPolicy:
    """Thread-safe and cheap to ask: a judgement is a few set and range checks."""

    def __init__(self, allow: tuple[AllowRule, ...] = ()) -> None:
        self.allow = allow

    @classmethod
    def parse(cls, entries: tuple[str, ...]) -> EgressPolicy:
        return cls(tuple(AllowRule.parse(entry) for entry in entries if entry.strip()))

    @cached_property
    def _own(self) -> frozenset[IPAddress]:
        return host_addresses()

    def permits(self, address: IPAddress, port: int) -> bool:
        """An allow rule wins; otherwise only a global unicast address that is not the host's own."""
        if any(rule.covers(address, port) for rule in self.allow):
            return True
        inner = _unwrap(address)
        if inner is not address and any(rule.covers(inner, port) for rule in self.allow):
            return True
        for candidate in {address, inner}:
            if not candidate.is_global or candidate.is_multicast or candidate in self._own:
                return False
        return True

    def check(self, host: str, port: int) -> None:
        """EgressRefused unless ``host`` is a literal address the policy permits (no lookup: for addresses only)."""
        address = ipaddress.ip_address(host.strip("[]"))
        if not self.permits(address, port):
            raise EgressRefused(f"{address} port {port} is not reachable from a session (egress policy)")

    def resolve(self, host: str, port: int) -> list[tuple[int, str]]:
        """(family, address) pairs to dial for ``host``, permitted ones only, in the resolver's order.

        EgressRefused if the name resolves but to nothing permitted; OSError (gaierror)
        if it does not resolve at all. The caller must dial one of these addresses,
        not the name, or a second lookup could answer differently.
        """
        try:
            literal = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            literal = None
        if literal is not None:
            self.check(str(literal), port)
            return [(socket.AF_INET6 if literal.version == 6 else socket.AF_INET, str(literal))]
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        permitted: list[tuple[int, str]] = []
        refused: list[str] = []
        for family, _, _, _, sockaddr in answers:
            address = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
            if self.permits(address, port):
                if (family, str(address)) not in permitted:
                    permitted.append((family, str(address)))
            else:
                refused.append(str(address))
        if not permitted:
            raise EgressRefused(f"{host} ({', '.join(sorted(set(refused)))}) port {port} is not reachable from a "
                                "session (egress policy)")
        return permitted

    def connect(self, host: str, port: int, timeout: float) -> socket.socket:
        """A blocking TCP connection to a permitted address of ``host`` (for the web process's proxy check)."""
        last: OSError | None = None
        for family, address in self.resolve(host, port):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect((address, port))
                return sock
            except OSError as error:
                sock.close()
                last = error
        assert last is not None
        raise last

    def describe(self) -> str:
        opened = ", ".join(f"{r.network}" + ("" if (r.low, r.high) == (1, 65535) else f":{r.low}-{r.high}")
                           for r in self.allow)
        return f"public addresses only{'; also ' + opened if opened else ''}"
