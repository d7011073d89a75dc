"""One project at a time on a worker whose browsers share one OS user.

A worker that is not root runs every browser as its own user (tasks/browser_users.py), so a page
of one session could read another session's profile files through a ``file`` input
(``DOM.setFileInputFiles`` takes any path the user can read). Tenants must then not share such a
worker: it holds sessions of one project at a time, and a launch for another project goes back
to the queue for a worker that may take it (or waits until this one is free of the first
project). ``BROKER_SHARED_USER_PROJECTS=any`` mixes projects anyway, for a single-tenant
deployment; a root worker (a user per browser) never needs the gate.
"""
from __future__ import annotations

import threading


class ProjectGate:
    """Thread-safe: launch tasks admit, every path that ends a browser or a launch releases."""

    def __init__(self, enforced: bool) -> None:
        self.enforced = enforced
        self._lock = threading.Lock()
        self._held: dict[str, str] = {}

    def admit(self, session_id: str, project: str) -> bool:
        """Whether this worker may launch the session now; an admitted session counts until ``release``."""
        with self._lock:
            if self.enforced and any(other != project for key, other in self._held.items() if key != session_id):
                return False
            self._held[session_id] = project
            return True

    def release(self, session_id: str) -> None:
        with self._lock:
            self._held.pop(session_id, None)

    def project(self) -> str | None:
        """The project this worker serves now, if any."""
        with self._lock:
            return next(iter(self._held.values()), None)
