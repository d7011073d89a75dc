"""Creating and stopping sessions: record first, then the task, then (for create) wait for the worker.

A create is synchronous for the caller but never leaves a browser behind when it
gives up: the give-up and the worker's progress are both compare-and-set moves
on the session's status, so exactly one of them wins.
"""
from __future__ import annotations

import logging
import select
import socket
import time
from collections.abc import Callable

from flask_smorest import abort

from app.auth import owned
from app.config import Config
from app.store import (
    ABANDONED, LAUNCHING, PENDING, RUNNING, STOPPED, STOPPING, VISIBLE_STATUSES,
    Store, new_id, utcnow_iso,
)
from tasks.celery_app import LAUNCH_QUEUE, LAUNCH_TASK, STOP_TASK, celery

log = logging.getLogger(__name__)
#: Where the web process leaves the caller's socket in the WSGI environ.
CLIENT_SOCKET = "broker.client_socket"


def client_gone(environ: dict) -> bool:
    """True once the caller closed its connection (the web process puts its socket in the environ)."""
    sock = environ.get(CLIENT_SOCKET)
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def public(record: dict, config: Config) -> dict:
    return {**record, "cdpUrl": config.cdp_url(record["id"])}


def get_visible(store: Store, project: str, session_id: str) -> dict:
    """Another project's session, or one still launching, is as unknown as a made-up id."""
    record = owned(store.get_session(session_id), project, "session", session_id)
    if record["status"] not in VISIBLE_STATUSES:
        abort(404, message=f"No session {session_id}.")
    return record


def _hold_context(store: Store, project: str, context_id: str, session_id: str) -> None:
    """Decided atomically in the store: of two creates with one context, exactly one wins."""
    owned(store.get_context(context_id), project, "context", context_id)
    holder = store.claim_context(context_id, session_id)
    if holder is not None:
        abort(409, message=f"Context {context_id} is in use by session {holder}; a context backs one running session at a time.")


def create(
    store: Store, config: Config, project: str, body: dict, caller_gone: Callable[[], bool] = lambda: False
) -> dict:
    session_id = new_id("ses")
    record = {
        "id": session_id,
        "project": project,
        "status": PENDING,
        "contextId": body["contextId"],
        "proxyId": body["proxyId"],
        "url": body["url"],
        "timeout": body["timeout"],
        "idleTimeout": body["idleTimeout"],
        "createdAt": utcnow_iso(),
        "createdMs": int(time.time() * 1000),
        "expiresAt": None,
        "stoppedAt": None,
        "stopReason": None,
        "snapshotError": None,
    }
    if body["contextId"]:
        _hold_context(store, project, body["contextId"], session_id)
    if body["proxyId"] and not store.claim_proxy(body["proxyId"], project, session_id):
        abort(404, message=f"No proxy {body['proxyId']}.")
    limit = store.get_project_settings(project).get("maxSessions")
    if limit and not store.claim_project_slot(project, session_id, limit):
        abort(429, message=f"This project may run {limit} sessions at once; stop one first.",
              headers={"Retry-After": str(config.retry_after)})
    store.create_session(record)
    celery.send_task(LAUNCH_TASK, args=[session_id], queue=LAUNCH_QUEUE, expires=config.create_wait)
    try:
        return _wait_until_running(store, config, session_id, caller_gone)
    finally:
        store.drop_launch_events(session_id)


def _wait_until_running(store: Store, config: Config, session_id: str, caller_gone: Callable[[], bool]) -> dict:
    """Waits in line (the launch queue is FIFO) up to BROKER_CREATE_WAIT, then for the launch itself."""
    deadline = time.monotonic() + config.create_wait
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return _give_up(store, config, session_id)
        if caller_gone():
            return _caller_left(store, config, session_id)
        event = store.next_launch_event(session_id, timeout=1)
        if event is None:
            continue
        if event["event"] == "claimed":
            deadline = time.monotonic() + config.launch_timeout
        elif event["event"] == "ready":
            return store.get_session(session_id)
        elif event["event"] == "failed":
            code = event.get("code", 503)
            headers = {"Retry-After": str(config.retry_after)} if code == 503 else {}
            abort(code, message=event["message"], headers=headers)


def _caller_left(store: Store, config: Config, session_id: str) -> dict:
    """The caller lost its place in line; a browser already started for it is stopped at once."""
    if store.update_session(session_id, expect={PENDING, LAUNCHING}, status=ABANDONED) is None:
        stop(store, session_id, "error")
    log.info("session %s: the caller hung up before its browser was ready", session_id)
    abort(503, message="The caller closed the connection.", headers={"Retry-After": str(config.retry_after)})


def _give_up(store: Store, config: Config, session_id: str) -> dict:
    if store.update_session(session_id, expect={PENDING, LAUNCHING}, status=ABANDONED) is None:
        record = store.get_session(session_id)
        if record and record["status"] == RUNNING:
            return record
    log.warning("session %s: no worker took the launch in time", session_id)
    abort(
        503,
        message="No browser could be started in time; no worker has a free slot. Try again.",
        headers={"Retry-After": str(config.retry_after)},
    )


def stop(store: Store, session_id: str, reason: str) -> None:
    """Idempotent: stopping a stopping or stopped session does nothing more."""
    record = store.update_session(session_id, expect={RUNNING}, status=STOPPING, stopReason=reason)
    if record is not None:
        celery.send_task(STOP_TASK, args=[session_id, reason], queue=record["worker"])
    elif (current := store.get_session(session_id)) and current["status"] not in (STOPPING, STOPPED, LAUNCHING):
        log.info("session %s: stop ignored in status %s", session_id, current["status"])
