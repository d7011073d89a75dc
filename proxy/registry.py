"""Which relay connections this web process holds, so a stop can close them at once."""
from __future__ import annotations

import logging
from collections import defaultdict

import gevent
from gevent.event import Event

from core.store import Store
from proxy.relay import GOING_AWAY, RelayConnection

log = logging.getLogger(__name__)
RETRY_DELAY = 1.0
#: The close reason of a moving session's clients (1012): they may reconnect to the same URL.
MOVING_REASON = "session moving to another worker; reconnect"
TO_BROWSER, TO_CLIENT = "to_browser", "to_client"


class RelayRegistry:
    def __init__(self) -> None:
        self._by_session: dict[str, set[RelayConnection]] = defaultdict(set)
        self._empty = Event()
        self._empty.set()
        #: Bytes relayed by connections already closed, by direction (``to_browser``, ``to_client``).
        self.closed_bytes = {TO_BROWSER: 0, TO_CLIENT: 0}

    def add(self, conn: RelayConnection) -> None:
        self._by_session[conn.session_id].add(conn)
        self._empty.clear()

    def remove(self, conn: RelayConnection) -> None:
        self.closed_bytes[TO_BROWSER] += conn.bytes_to_browser
        self.closed_bytes[TO_CLIENT] += conn.bytes_to_client
        conns = self._by_session.get(conn.session_id)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self._by_session[conn.session_id]
        if not self._by_session:
            self._empty.set()

    def clients(self) -> list[tuple[str, str]]:
        """(session id, client id) of every relayed client, for renewing their leases."""
        return [(session_id, conn.client_id) for session_id, conns in self._by_session.items() for conn in conns]

    def connections(self) -> list[RelayConnection]:
        return [conn for conns in self._by_session.values() for conn in conns]

    def bytes_relayed(self) -> dict[str, int]:
        """Every byte this process has relayed each way, open connections' included."""
        live = self.connections()
        return {TO_BROWSER: self.closed_bytes[TO_BROWSER] + sum(c.bytes_to_browser for c in live),
                TO_CLIENT: self.closed_bytes[TO_CLIENT] + sum(c.bytes_to_client for c in live)}

    def close_session(self, session_id: str, reason: str, code: int = GOING_AWAY) -> None:
        for conn in list(self._by_session.get(session_id, ())):
            conn.close(code, reason)

    def close_all(self, reason: str, timeout: float) -> None:
        """Returns once every client has had its close frame, or after ``timeout``.

        Waiting matters at shutdown: the server's handlers are plain greenlets that
        nobody joins, so a process that exited straight away could cut a pump
        thread off before the close frame left, and the client would see a bare EOF.
        """
        for session_id in list(self._by_session):
            self.close_session(session_id, reason)
        self._empty.wait(timeout)


def follow_stop_announcements(store: Store, registry: RelayRegistry) -> None:
    """Runs for the life of the web process; survives Redis restarts by resubscribing."""
    while True:
        try:
            for announcement in store.events.stop_announcements():
                if "code" in announcement:  # a move (core.store.events): the clients may reconnect to the same URL
                    registry.close_session(announcement["sessionId"], MOVING_REASON, announcement["code"])
                else:
                    registry.close_session(announcement["sessionId"], f"session stopped: {announcement['reason']}")
        except Exception as error:
            log.warning("stop announcements interrupted (%s); resubscribing", error)
            gevent.sleep(RETRY_DELAY)


def renew_client_leases(store: Store, registry: RelayRegistry, lease: float) -> None:
    """Runs for the life of the web process: its clients count as connected only while it keeps saying so."""
    while True:
        gevent.sleep(lease / 3)
        try:
            store.sessions.renew_clients(registry.clients(), lease)
        except Exception as error:
            log.warning("could not renew CDP client leases (%s); retrying", error)
