"""Who a browser runs as: a user of its own, never root, never the worker.

A worker running as root starts each browser (and its ChromeDriver) as one of
the users ``<prefix>-0``, ``<prefix>-1``, … that scripts/setup.sh creates, and
each of those users serves one running browser on the whole host at a time. So
a page of one session, even one that escaped Chromium's sandbox or talked the
browser into opening a path, acts as a uid that can read neither another
session's profile (0700, another owner) nor the worker's state (0700, root).

"Taken" is an flock on one file per user in LOCK_DIR, shared by every worker
on the host. The browser (or its ChromeDriver) inherits the lock's descriptor,
so the lock lasts as long as the worker or any of them holds it: a browser a
killed worker left behind keeps its user taken until the next life of that
worker has ended it. When a browser ends, whatever still runs as its user is
ended too, before the user is handed out again.

A worker that is not root cannot switch users: its browsers run as itself.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import re
from dataclasses import dataclass, field
from pathlib import Path

import psutil

#: Host-wide, not per deployment: two workers must never hand out the same user at once.
LOCK_DIR = Path("/run/browser-broker/users")
STRAY_ROUNDS = 3
STRAY_WAIT = 2.0


class NoBrowserUser(RuntimeError):
    pass


@dataclass
class BrowserUser:
    name: str
    uid: int
    gid: int
    lock: int | None = field(default=None, repr=False)

    @property
    def switches(self) -> bool:
        return self.uid != os.geteuid()

    def popen_kwargs(self) -> dict:
        """For subprocess.Popen; ``extra_groups=[]`` drops the worker's supplementary groups too."""
        if not self.switches:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": [], "pass_fds": (self.lock,)}

    def take(self, *folders: Path) -> None:
        """Hand folders over to this user, contents included (a snapshot is unpacked by the worker): 0700, its own."""
        for folder in folders:
            if self.switches:
                for parent, dirs, files in os.walk(folder):
                    os.chown(parent, self.uid, self.gid, follow_symlinks=False)
                    for name in (*dirs, *files):
                        os.chown(os.path.join(parent, name), self.uid, self.gid, follow_symlinks=False)
            folder.chmod(0o700)

    def give_back(self, *folders: Path) -> None:
        """Once its browser has ended: the folders' tops back to the worker.

        What is left inside (a profile being snapshotted, then deleted) is then
        out of reach of the next browser this user serves.
        """
        if not self.switches:
            return
        for folder in folders:
            try:
                os.chown(folder, os.geteuid(), os.getegid(), follow_symlinks=False)
            except FileNotFoundError:
                continue

    def end_strays(self) -> list[int]:
        """Kill whatever still runs as this user once its browser's process tree has ended.

        The user is dedicated to that one browser, so any such process is its own: one
        that left the tree (double fork, new session) must not wait there for the next
        session this user serves. The PIDs it ended.
        """
        if not self.switches:
            return []
        ended: list[int] = []
        for _ in range(STRAY_ROUNDS):
            strays = [p for p in psutil.process_iter(["uids", "status"])
                      if p.info["uids"] is not None and p.info["uids"].real == self.uid
                      and p.info["status"] != psutil.STATUS_ZOMBIE]
            if not strays:
                break
            for proc in strays:
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.kill()
                    ended.append(proc.pid)
            psutil.wait_procs(strays, timeout=STRAY_WAIT)
        return ended

    def release(self) -> None:
        """Idempotent: closing the lock's descriptor twice could close someone else's."""
        if self.lock is not None:
            os.close(self.lock)
            self.lock = None


def numbered_users(prefix: str) -> list[pwd.struct_passwd]:
    pattern = re.compile(rf"{re.escape(prefix)}-(\d+)")
    found = [(int(m.group(1)), e) for e in pwd.getpwall() if (m := pattern.fullmatch(e.pw_name)) and e.pw_uid != 0]
    return [entry for _, entry in sorted(found, key=lambda pair: pair[0])]


class BrowserUsers:
    def __init__(self, prefix: str, lock_dir: Path = LOCK_DIR) -> None:
        self.prefix = prefix
        self.lock_dir = lock_dir
        self.switching = os.geteuid() == 0
        self.candidates = numbered_users(prefix) if self.switching else []
        if self.switching and not self.candidates:
            raise NoBrowserUser(
                f"the worker runs as root but no user {prefix}-0, {prefix}-1, … exists to run browsers as; "
                "run scripts/setup.sh as root to create them"
            )
        if self.switching:
            lock_dir.mkdir(mode=0o700, parents=True, exist_ok=True)

    def describe(self) -> str:
        if not self.switching:
            return f"as the worker's own user ({pwd.getpwuid(os.geteuid()).pw_name}): it is not root, so it cannot switch"
        return f"each as a user of its own, {self.prefix}-N ({len(self.candidates)} on this host)"

    def acquire(self) -> BrowserUser:
        if not self.switching:
            return BrowserUser(pwd.getpwuid(os.geteuid()).pw_name, os.geteuid(), os.getegid())
        for entry in self.candidates:
            lock = os.open(self.lock_dir / entry.pw_name, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(lock)
                continue
            return BrowserUser(entry.pw_name, entry.pw_uid, entry.pw_gid, lock)
        raise NoBrowserUser(
            f"all {len(self.candidates)} users {self.prefix}-N of this host run a browser already; "
            "create more with scripts/setup.sh (BB_BROWSER_USERS=N)"
        )
