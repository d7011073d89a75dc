"""Session records made straight in the store, for the fast layer's tests of moves and reaping."""
from __future__ import annotations

import time

from core.ids import new_id, now_ms, utcnow_iso
from core.session_machine import SessionMachine
from core.states import Status
from core.store import Store

PROJECT = "p"
WORKER = "browsers.worker.w@test"


def new_session(store: Store, **fields) -> str:
    session_id = new_id("ses")
    store.sessions.create({
        "id": session_id, "project": PROJECT, "status": Status.PENDING.value, "contextId": None, "proxyId": None,
        "url": None, "timeout": 60, "idleTimeout": None, "createdAt": utcnow_iso(), "createdMs": now_ms(), **fields,
    })
    return session_id


def running_session(machine: SessionMachine, **fields) -> str:
    session_id = new_session(machine.store, **fields)
    machine.claim(session_id, WORKER)
    machine.ready(session_id, expiresEpoch=time.time() + 60, browserWsUrl="ws://127.0.0.1:1/devtools/browser/x")
    return session_id


def status_of(store: Store, session_id: str) -> str:
    return store.sessions.get(session_id)["status"]
