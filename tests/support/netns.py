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
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"
#: ``ip netns exec NS`` bind-mounts files found here over /etc (e.g. /etc/netns/NS/hosts over /etc/hosts).
NETNS_ETC = "/etc/netns"
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

    def command(self, *args: str, mounts: Sequence[tuple[str, str]] | None = None, hostname: str | None = None,
                user: str | None = None) -> list[str]:
        """``args`` run on this host, with a hostname of its own (its own UTS namespace), as on a real machine.

        With ``mounts`` ([(folder here, path inside)], in order) they run as in a
        container: in PID and mount namespaces of their own (the first of ``args``
        is PID 1, and every process left inside ends with it), each folder
        bind-mounted (with what is mounted under it) at its path, made if missing (a folder ``tmpfs``: a fresh
        empty one; private mounts: nothing shows outside), and as ``user`` if given.
        """
        name = hostname or self.name
        if mounts is None:
            script = 'hostname "$0" && exec "$@"'
            return ["ip", "netns", "exec", self.namespace, "unshare", "--uts", "sh", "-c", script, name, *args]
        binds = "".join(
            f"mount -t tmpfs -o mode=0755 tmpfs {shlex.quote(dst)} && " if src == "tmpfs"
            else f"mount --rbind -o X-mount.mkdir {shlex.quote(src)} {shlex.quote(dst)} && " for src, dst in mounts)
        become = f"setpriv --reuid={shlex.quote(user)} --regid={shlex.quote(user)} --init-groups " if user else ""
        script = f'hostname "$0" && {binds}exec {become}"$@"'
        return ["ip", "netns", "exec", self.namespace, "unshare", "--uts", "--mount", "--propagation", "private",
                "--pid", "--fork", "--mount-proc", "sh", "-c", script, name, *args]


class Network:
    def __init__(self, prefix: str = "198.18.0") -> None:
        """``prefix``: the first three octets of the switch's /24 (inside 198.18.0.0/15)."""
        self.prefix = prefix
        self.tag = secrets.token_hex(3)
        self.switch = f"bbsw-{self.tag}"
        self.hosts: dict[str, Host] = {}
        self._namespaces: list[str] = []
        #: /etc/netns made by this network (absent before): removed with the last hosts file.
        self.made_netns_etc = False
        self._add_namespace(self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")

    def _add_namespace(self, name: str) -> None:
        _ip("netns", "add", name)
        self._namespaces.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def add_host(self, name: str) -> Host:
        index = len(self.hosts) + 1
        host = Host(name, f"bbh-{self.tag}-{name}", f"{self.prefix}.{index}", f"p{index}-{self.tag}")
        self._add_namespace(host.namespace)
        _ip("link", "add", host.port, "netns", self.switch, "type", "veth", "peer", "name", "eth0", "netns", host.namespace)
        _ip("-n", self.switch, "link", "set", host.port, "master", "br0", "up")
        _ip("-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", "eth0")
        _ip("-n", host.namespace, "link", "set", "eth0", "up")
        self.hosts[name] = host
        return host

    def add_outside(self, name: str, gateway: Host, prefix: str) -> Host:
        """A host off the switch, linked only to ``gateway`` (``prefix``.1 there, ``prefix``.2 here), with no route beyond it."""
        host = Host(name, f"bbh-{self.tag}-{name}", f"{prefix}.2", f"o{len(self.hosts) + 1}-{self.tag}")
        self._add_namespace(host.namespace)
        _ip("link", "add", host.port, "netns", gateway.namespace, "type", "veth", "peer", "name", "eth0", "netns", host.namespace)
        _ip("-n", gateway.namespace, "addr", "add", f"{prefix}.1/24", "dev", host.port)
        _ip("-n", gateway.namespace, "link", "set", host.port, "up")
        _ip("-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", "eth0")
        _ip("-n", host.namespace, "link", "set", "eth0", "up")
        self.hosts[name] = host
        return host

    def write_hosts_file(self, host: Host, names: Mapping[str, list[str]]) -> None:
        """/etc/hosts as processes on ``host`` see it (``ip netns exec`` mounts it): ``names`` {address: [name, ...]}."""
        if not os.path.isdir(NETNS_ETC):
            os.mkdir(NETNS_ETC)
            self.made_netns_etc = True
        folder = os.path.join(NETNS_ETC, host.namespace)
        os.makedirs(folder, exist_ok=True)
        lines = ["127.0.0.1\tlocalhost"] + [f"{address}\t{' '.join(n)}" for address, n in names.items()]
        with open(os.path.join(folder, "hosts"), "w") as out:
            out.write("\n".join(lines) + "\n")

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
            shutil.rmtree(os.path.join(NETNS_ETC, name), ignore_errors=True)
        self._namespaces.clear()
        if self.made_netns_etc:
            try:
                os.rmdir(NETNS_ETC)  # only if no one else's files are in it
            except OSError:
                pass

    def leftovers(self) -> list[str]:
        """This network's namespaces, links and hosts files still on the machine (all must be gone after ``remove``)."""
        names = os.listdir(NETNS_DIR) if os.path.isdir(NETNS_DIR) else []
        files = os.listdir(NETNS_ETC) if os.path.isdir(NETNS_ETC) else []
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        return ([n for n in names if self.tag in n] + [f"{NETNS_ETC}/{f}" for f in files if self.tag in f]
                + [line for line in links.splitlines() if self.tag in line])
