"""docker-compose.yml run as written, without Docker: each container a network, PID, mount and UTS namespace.

What compose and the image would give each container, and how it is given here:

- one network namespace per container on one switch (the compose network), a
  hostname of its own (a container ID, as Docker names a replica without
  ``hostname:``), and an /etc/hosts that names itself and every service
  (compose's DNS; ``ip netns exec`` mounts /etc/netns/<ns>/hosts over /etc/hosts);
- a PID namespace whose PID 1 is the Dockerfile's ENTRYPOINT (tini) running the
  service's ``command``: stopping a container is SIGTERM to its PID 1, and every
  process left inside ends with it, as in Docker;
- the environment: the image's ``ENV`` lines, then the service's
  ``environment`` with compose's interpolation (``${VAR:-default}``,
  ``${VAR:?message}``) from the variables the test gives, as ``docker compose``
  reads them from the shell or an .env file;
- each named volume a folder the test owns, bind-mounted at the service's path
  in the container's own mount namespace (the snapshots volume is one folder
  shared by web and every worker, as compose shares it);
- published ports (``ports:``) a forwarder on the Docker host's addresses, as
  docker-proxy does; nothing else of the compose network is reachable from a
  host outside it.

The image's processes run as its ``USER`` (``broker``, made by scripts/setup.sh
as the Dockerfile makes it) unless the service says ``user:`` (in the file, or
in an override, as a second ``-f`` file gives one: ``Project(overrides=...)``);
the image's own folders stay its USER's either way, as ``install -d -o broker``
left them in the image. ``documented_options`` reads what the file keeps in
comments for an operator to turn on (the worker's ``# user: root``).

Mapped, since this machine is not an image (said where it is done): the image's
WORKDIR is the worktree, its Python the worktree's .venv (and the folder of the
interpreter behind it); the container's /tmp is a folder of its own; Redis runs
this machine's redis-server, as root, with the redis image's WORKDIR (/data,
the redis-data volume) as its folder and the flag that image's entrypoint adds.
"""
from __future__ import annotations

import json
import os
import pwd
import re
import secrets
import shlex
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import yaml

from tests.support.netns import Host, Network
from tests.support.processes import RUN_ID, RUN_MARK, ROOT

COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
#: Mount points the image has and this machine may not: made for the run, removed after it.
IMAGE_FOLDERS = ("/var/lib/browser-broker",)
#: Marks an image folder a compose run made on this machine: the last run using it removes it. Another run's
#: containers mount their own folders there (in their own mount namespaces); removing the folder under them would
#: detach those mounts, so their workers lose BROKER_STATE_DIR and the snapshots volume mid-run.
MADE_MARK = "user.browser-broker-compose"
_VARIABLE = re.compile(r"\$(?:(\$)|\{(\w+)(?:(:?[-?])([^}]*))?\}|(\w+))")


def _blocking_folder(path: Path, user: str) -> Path | None:
    """The outermost folder on ``path`` that ``user`` may not enter, or None."""
    entry = pwd.getpwnam(user)
    groups = set(os.getgrouplist(user, entry.pw_gid))
    for folder in [*reversed(path.parents), path]:
        info = folder.stat()
        if info.st_uid == entry.pw_uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid in groups:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            return folder
    return None


class MissingVariable(ValueError):
    """A ``${VAR:?message}`` whose variable is unset or empty: compose refuses to start, with that message."""


def interpolate(text: str, variables: dict[str, str]) -> str:
    """Compose's interpolation of one value (``$$`` is a literal ``$``)."""

    def one(match: re.Match) -> str:
        dollar, braced, operator, argument, bare = match.groups()
        if dollar:
            return "$"
        name = braced or bare
        value = variables.get(name)
        unset = value is None or (operator in (":-", ":?") and value == "")
        if operator in (":-", "-") and unset:
            return interpolate(argument, variables)
        if operator in (":?", "?") and unset:
            raise MissingVariable(f"required variable {name} is missing a value: {argument}")
        return value or ""

    return _VARIABLE.sub(one, text)


def compose_services() -> dict:
    """The services as compose reads them: YAML anchors and ``<<`` merge keys resolved (PyYAML's safe loader does both)."""
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]


#: A comment line that is a service option of its own (``    # user: root``), not prose that mentions one.
_COMMENTED_OPTION = re.compile(r"^\s+#\s?([a-z_]+: .+)$")


def documented_options(service: str) -> dict:
    """The options docker-compose.yml documents for ``service`` in comment lines of their own, to turn on by hand."""
    lines = COMPOSE_FILE.read_text().splitlines()
    start = lines.index(f"  {service}:")
    options: dict = {}
    for line in lines[start + 1:]:
        if line.strip() and not line.startswith("   "):
            break
        match = _COMMENTED_OPTION.match(line)
        if match:
            options.update(yaml.safe_load(match.group(1)))
    return options


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", "\n".join(
        line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")))
    return [tuple(line.split(None, 1)) for line in joined.splitlines() if line.strip()]  # type: ignore[misc]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, arguments in _dockerfile_instructions():
        if instruction == "ENV":
            env.update(word.split("=", 1) for word in shlex.split(arguments))
    return env


def image_user() -> str | None:
    users = [args.strip() for instruction, args in _dockerfile_instructions() if instruction == "USER"]
    return users[-1] if users else None


def image_entrypoint() -> list[str]:
    return next(json.loads(args) for instruction, args in _dockerfile_instructions() if instruction == "ENTRYPOINT")


class Forwarder:
    """One published port: accepts on the Docker host's addresses and splices each connection to the container (docker-proxy)."""

    def __init__(self, net: Network, host: Host, address: str, port: int, target: tuple[str, int]) -> None:
        self.net, self.host, self.target = net, host, target
        self.connections: list[socket.socket] = []
        with net.inside(host):
            self.listener = socket.create_server((address, port))
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        with self.net.inside(self.host):
            while True:
                try:
                    client, _ = self.listener.accept()
                except OSError:
                    return
                try:
                    upstream = socket.create_connection(self.target, timeout=10)
                except OSError:
                    client.close()
                    continue
                upstream.settimeout(None)
                self.connections += [client, upstream]
                for source, sink in ((client, upstream), (upstream, client)):
                    threading.Thread(target=_pump, args=(source, sink), daemon=True).start()

    def close(self) -> None:
        """Wakes the blocked accept (shutdown; a close alone would not) and ends every connection, so no socket keeps the namespace."""
        for sock in [self.listener, *self.connections]:
            _shut(sock)
            sock.close()
        self.thread.join(10)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(1 << 16):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        _shut(sink)
        _shut(source)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class Container:
    def __init__(self, service: str, index: int, host: Host) -> None:
        self.service = service
        self.index = index
        self.host = host
        #: Docker names a replica's host after its container ID (12 hex digits) unless ``hostname:`` says otherwise.
        #: One with a letter: all-decimal ones (1 in ~280) do not resolve from /etc/hosts (glibc reads them as a
        #: malformed number), which tests/unit/test_gateway_host.py covers; a compose test would fail by luck.
        self.hostname = secrets.token_hex(6)
        while self.hostname.isdigit():
            self.hostname = secrets.token_hex(6)
        self.proc: subprocess.Popen | None = None
        #: The process's folder: the image's WORKDIR (the worktree here), or a volume standing for it.
        self.cwd: Path = ROOT

    @property
    def address(self) -> str:
        return self.host.address

    def init(self) -> psutil.Process:
        """PID 1 of the container (``unshare --fork`` is its parent outside)."""
        return psutil.Process(self.proc.pid).children()[0]

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Project:
    """``docker compose up`` of docker-compose.yml, with ``scale`` replicas per service, on network namespaces."""

    def __init__(self, workdir: Path, variables: dict[str, str], scale: dict[str, int], *, prefix: str,
                 outside_prefix: str, overrides: dict[str, dict] | None = None) -> None:
        """``overrides``: {service: {option: value}} over the file's, as ``docker compose -f docker-compose.yml -f
        override.yml`` merges a second file (an option given there replaces the file's; only whole values here)."""
        self.workdir = workdir
        self.variables = variables
        self.services = compose_services()
        for service, options in (overrides or {}).items():
            self.services[service] = {**self.services[service], **options}
        self.net = Network(prefix)
        self.made_folders: list[str] = []
        self._owned: dict[str, bool] = {}
        self.forwarders: list[Forwarder] = []
        self.containers: list[Container] = []
        try:
            #: The Docker host: on the compose network (the bridge's gateway), with the published ports.
            self.docker_host = self.net.add_host("dockerhost")
            for service in self.services:
                for index in range(1, scale.get(service, 1) + 1):
                    self.containers.append(Container(service, index, self.net.add_host(f"{service}{index}")))
            #: Stands for every other machine: linked to the Docker host only, it reaches what ``ports:`` publish.
            self.outside = self.net.add_outside("outside", self.docker_host, outside_prefix)
            for container in self.containers:
                self.net.write_hosts_file(container.host, self._hosts_for(container))
        except BaseException:
            self.net.remove()
            raise

    def _hosts_for(self, container: Container) -> dict[str, list[str]]:
        names: dict[str, list[str]] = {}
        for other in self.containers:
            names[other.address] = [other.service, f"bb-{other.service}-{other.index}"]
        names[container.address] = [container.hostname, *names[container.address]]
        return names

    def _own(self, folder: Path) -> None:
        """The image's own folders belong to its USER, 0700 (Dockerfile: ``install -d -o broker -g broker -m 0700``),
        whatever ``user:`` the service runs as: the folders were made when the image was built."""
        user = image_user()
        if user:
            entry = pwd.getpwnam(user)
            os.chown(folder, entry.pw_uid, entry.pw_gid)
            folder.chmod(0o700)

    def replicas(self, service: str) -> list[Container]:
        return [c for c in self.containers if c.service == service]

    def volume(self, name: str) -> Path:
        return self.workdir / "volumes" / name

    def _mounts(self, container: Container) -> list[tuple[str, str]]:
        """The container's own folders of the image, then its volumes over them; /tmp its own (mapped)."""
        own = self.workdir / "containers" / f"{container.service}-{container.index}"
        own.mkdir(parents=True)
        mounts: dict[str, str] = {}
        # Paths the container's processes use by their names here (the worktree, whose scripts name its .venv's
        # Python, and the interpreter behind that) but which the image's user may not reach on this machine (root's
        # 0700 home, a checkout under a 0700 temporary folder). Mapped, as the image has these in its own folders:
        # one under /tmp is made, open, in the container's own /tmp and bound there (blocked or not: that /tmp
        # hides this machine's); elsewhere it is staged, the folder that blocks it replaced by an empty one, and it
        # is mounted back at its own path.
        user = self.user(container)
        tmp = own / "tmp"
        tmp.mkdir(parents=True)
        tmp.chmod(0o1777)
        staged, unblock, restored, in_tmp = [], [], [], []
        for path, stage in ((Path(sys.base_prefix), own / "python"), (ROOT, own / "checkout")):
            folder = _blocking_folder(path, user) if user else None
            if path.is_relative_to("/tmp"):
                inside = tmp / path.relative_to("/tmp")
                inside.mkdir(mode=0o755, parents=True)
                in_tmp.append((str(path), str(inside)))
            elif folder is not None:
                staged.append((str(path), str(stage)))
                unblock.append(("tmpfs", str(folder)))
                restored.append((str(stage), str(path)))
        staged += list(dict.fromkeys(unblock)) + restored
        for folder in IMAGE_FOLDERS if self.services[container.service].get("build") else ():
            mine = own / folder.strip("/").replace("/", "_")
            mine.mkdir(parents=True)
            self._own(mine)
            mounts[str(mine)] = folder
        for spec in self.services[container.service].get("volumes", []):
            name, _, path = spec.partition(":")
            source = self.volume(name)
            source.mkdir(parents=True, exist_ok=True)
            under = next((f for f in IMAGE_FOLDERS if path.startswith(f + "/")), None)
            if under is not None:
                (Path(next(s for s, d in mounts.items() if d == under)) / Path(path).relative_to(under)).mkdir(parents=True)
                # A new named volume takes the image's folder's owner and mode (the Dockerfile's `install -d`).
                if not self._owned.get(name):
                    self._own(source)
                    self._owned[name] = True
                mounts[str(source)] = path
            else:
                # An image path this machine lacks (the redis image's /data, its WORKDIR): the volume is the process's folder instead.
                container.cwd = source
        # Last: the sources above may lie under this machine's /tmp (bound with what was bound inside it).
        mounts[str(tmp)] = "/tmp"
        return staged + in_tmp + list(mounts.items())

    def user(self, container: Container) -> str | None:
        """The service's ``user:``, else the image's USER; None: root (the redis image's entrypoint drops to its own user: mapped)."""
        spec = self.services[container.service]
        return spec.get("user") or (image_user() if spec.get("build") else None)

    def env(self, container: Container) -> dict[str, str]:
        declared = self.services[container.service].get("environment", {})
        env = {
            # The image's PATH, with the worktree's .venv standing for the image's Python (mapped).
            "PATH": f"{Path(sys.executable).parent}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOSTNAME": container.hostname,
            "HOME": pwd.getpwnam(self.user(container) or "root").pw_dir,
            RUN_MARK: RUN_ID,
        }
        if self.services[container.service].get("build"):
            env.update(image_env())
        env.update({name: interpolate(str(value), self.variables) for name, value in declared.items()})
        return env

    def command(self, container: Container) -> list[str]:
        command = list(self.services[container.service]["command"])
        if self.services[container.service].get("build"):
            return [*image_entrypoint(), *command]
        # The redis image's entrypoint adds this when no config file is given (reachable from the compose network).
        return [*command, "--protected-mode", "no"]

    def processes(self) -> list[psutil.Process]:
        """Live processes started in this project's containers (their environment names a container's hostname)."""
        hostnames = {c.hostname for c in self.containers}
        found = []
        for proc in psutil.process_iter():
            try:
                env = proc.environ()
                if env.get(RUN_MARK) == RUN_ID and env.get("HOSTNAME") in hostnames and proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return found

    def log(self, container: Container) -> str:
        return (self.workdir / f"{container.service}-{container.index}.log").read_text(errors="replace")

    def grace(self, service: str) -> float:
        """The service's stop_grace_period in seconds (Docker's default: 10 s)."""
        return _seconds(self.services[service].get("stop_grace_period", "10s"))

    def make_image_folders(self) -> None:
        for folder in IMAGE_FOLDERS:
            if not os.path.exists(folder):
                os.makedirs(folder)
                self.made_folders.append(folder)
                try:
                    os.setxattr(folder, MADE_MARK, b"1")
                except OSError:  # no user xattrs here: only this run knows it made the folder
                    pass

    def _ours_to_remove(self, folder: str) -> bool:
        """Made by this run or another compose run (marked), and on no one's mount any more."""
        try:
            made = MADE_MARK in os.listxattr(folder) or folder in self.made_folders
        except OSError:  # not there
            return False
        return made and not mounted_anywhere(folder)

    def folders_left(self) -> list[str]:
        """Image folders a compose run made that are still here though no container mounts them."""
        return [folder for folder in IMAGE_FOLDERS if self._ours_to_remove(folder)]

    def start(self, container: Container) -> None:
        mounts = self._mounts(container)
        log = open(self.workdir / f"{container.service}-{container.index}.log", "ab")
        container.proc = subprocess.Popen(
            container.host.command(*self.command(container), mounts=mounts, hostname=container.hostname,
                                   user=self.user(container)),
            cwd=container.cwd, env=self.env(container), stdout=log, stderr=subprocess.STDOUT)
        for spec in self.services[container.service].get("ports", []):
            address, published, port = published_port(str(spec))
            self.forwarders.append(Forwarder(self.net, self.docker_host, address, published, (container.address, port)))

    def up(self) -> None:
        """Every container, in ``depends_on`` order."""
        self.make_image_folders()
        started: set[str] = set()
        while len(started) < len(self.services):
            for service, spec in self.services.items():
                if service not in started and set(spec.get("depends_on", [])) <= started:
                    for container in self.replicas(service):
                        self.start(container)
                    started.add(service)

    def stop(self, container: Container, timeout: float | None = None) -> float:
        """``docker stop``: SIGTERM to PID 1, SIGKILL after the service's stop_grace_period (Docker's default 10 s); seconds it took."""
        if not container.running():
            return 0.0
        grace = timeout if timeout is not None else self.grace(container.service)
        init = container.init()
        began = time.monotonic()
        init.terminate()
        try:
            container.proc.wait(grace)
        except subprocess.TimeoutExpired:
            init.kill()
            container.proc.wait(30)
        return time.monotonic() - began

    def down(self) -> None:
        for forwarder in self.forwarders:
            forwarder.close()
        for container in reversed(self.containers):
            if container.running():
                try:
                    container.init().kill()
                except (psutil.NoSuchProcess, IndexError):
                    container.proc.kill()
                container.proc.wait(30)
        self.net.remove()
        for folder in IMAGE_FOLDERS:
            if self._ours_to_remove(folder):
                try:
                    os.rmdir(folder)
                except OSError:  # gone already, or a run that started meanwhile uses it: that run removes it
                    pass


def mounted_anywhere(path: str) -> bool:
    """Whether something is mounted on ``path`` in any mount namespace of the machine (read once per namespace)."""
    seen: set[str] = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            namespace = os.readlink(f"/proc/{pid}/ns/mnt")
            if namespace in seen:
                continue
            seen.add(namespace)
            with open(f"/proc/{pid}/mountinfo") as mounts:
                if any(line.split()[4] == path for line in mounts):
                    return True
        except OSError:  # ended meanwhile
            continue
    return False


def published_port(spec: str) -> tuple[str, int, int]:
    """``[HOST_IP:]PUBLISHED:TARGET`` as compose reads it: (address on the Docker host, its port, the container's port)."""
    *address, published, target = spec.split(":")
    return (address[0] if address else "0.0.0.0"), int(published), int(target)


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)s", duration.strip())
    if not match:
        raise ValueError(f"stop_grace_period {duration!r}: only seconds are modelled")
    return float(match.group(1))
