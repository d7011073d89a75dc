"""Hosts made of Linux network namespaces: each its own network stack and loopback, joined by one private switch.

Every namespace and link is created by the test and removed at teardown (also
after a failure); nothing is added to the machine's own network namespace: the
switch is a bridge in a namespace of its own, and each veth pair is created
with one end in the switch's namespace and the other in its host's. Addresses
come from 198.18.0.0/15 (RFC 2544, the benchmarking range) only.

The test process itself stays where it is; ``Network.inside`` moves only the
calling thread onto a host's network (``setns`` is per thread for network
namespaces), so a client socket, a listening socket, or a child process
started there belongs to that host.
"""
from __future__ import annotations

import ctypes
import os
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

CLONE_NEWNET = 0x40000000
SUBNET = "198.18.0.0/24"
NETNS_DIR = "/run/netns"
_libc = ctypes.CDLL(None, use_errno=True)


class NamespacesUnavailable(RuntimeError):
    """This process may not create network namespaces (not root, no ``ip``, or a sandbox forbids it)."""


def _ip(*args: str) -> None:
    out = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {out.stderr.strip()}")


def _setns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns({path})")
    finally:
        os.close(fd)


def why_unavailable() -> str | None:
    """None if namespaces can be made here; else why not, in words for a skip message."""
    if os.geteuid() != 0:
        return "creating network namespaces needs root (ip netns add)"
    probe = f"bbprobe-{secrets.token_hex(3)}"
    try:
        _ip("netns", "add", probe)
    except (OSError, RuntimeError) as error:
        return f"cannot create a network namespace here: {error}"
    try:
        _ip("netns", "del", probe)
    except RuntimeError:
        pass
    return None


@dataclass(frozen=True)
class Host:
    name: str
    namespace: str
    address: str
    #: The veth end in the switch's namespace: bringing it down cuts this host off.
    port: str

    def command(self, *args: str) -> list[str]:
        """``args`` run on this host, with a hostname of its own (its own UTS namespace), as on a real machine."""
        script = 'hostname "$0" && exec "$@"'
        return ["ip", "netns", "exec", self.namespace, "unshare", "--uts", "sh", "-c", script, self.name, *args]


class Network:
    def __init__(self) -> None:
        self.tag = secrets.token_hex(3)
        self.switch = f"bbsw-{self.tag}"
        self.hosts: dict[str, Host] = {}
        self._namespaces: list[str] = []
        self._add_namespace(self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")

    def _add_namespace(self, name: str) -> None:
        _ip("netns", "add", name)
        self._namespaces.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def add_host(self, name: str) -> Host:
        index = len(self.hosts) + 1
        host = Host(name, f"bbh-{self.tag}-{name}", f"198.18.0.{index}", f"p{index}-{self.tag}")
        self._add_namespace(host.namespace)
        _ip("link", "add", host.port, "netns", self.switch, "type", "veth", "peer", "name", "eth0", "netns", host.namespace)
        _ip("-n", self.switch, "link", "set", host.port, "master", "br0", "up")
        _ip("-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", "eth0")
        _ip("-n", host.namespace, "link", "set", "eth0", "up")
        self.hosts[name] = host
        return host

    def cut(self, host: Host) -> None:
        _ip("-n", self.switch, "link", "set", host.port, "down")

    def restore(self, host: Host) -> None:
        _ip("-n", self.switch, "link", "set", host.port, "up")

    @contextmanager
    def inside(self, host: Host) -> Iterator[None]:
        """The calling thread on ``host``'s network until the block ends."""
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            _setns(f"{NETNS_DIR}/{host.namespace}")
            try:
                yield
            finally:
                if _libc.setns(own, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back to the test's own network")
        finally:
            os.close(own)

    def remove(self) -> None:
        """Deleting a namespace deletes the veth ends in it, and with them their peers."""
        for name in reversed(self._namespaces):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
        self._namespaces.clear()

    def leftovers(self) -> list[str]:
        """This network's namespaces and links still on the machine (both must be gone after ``remove``)."""
        names = os.listdir(NETNS_DIR) if os.path.isdir(NETNS_DIR) else []
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        return [n for n in names if self.tag in n] + [line for line in links.splitlines() if self.tag in line]
