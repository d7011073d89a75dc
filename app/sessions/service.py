"""Creating and stopping sessions: record first, then the task, then (for create) wait for the worker.

A create is synchronous for the caller but never leaves a browser behind when it
gives up: the give-up and the worker's progress are both compare-and-set moves
on the session's status, so exactly one of them wins.

A create that needs nothing launch-time-specific takes a warm browser's offer
when any worker has one (core.store.warm) and sends its launch to that worker's
own queue; the rest join the line for a cold launch. Should the warm worker not
claim the launch within ``WARM_HANDOFF`` (it died a moment ago, or its browser
did), the create joins the line as well: the claim decides which launch wins.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from flask_smorest import abort
from werkzeug.exceptions import HTTPException

from app.auth import owned
from core.config import Config
from core.dispatch import can_use_warm, worker_queue
from core.ids import new_id, now_ms, utcnow_iso
from core.states import VISIBLE_STATUSES, SessionMachine, SessionRecord, Status, StopReason
from core.store import Store
from core.tokens import ConnectTokens, LiveViewTokens

log = logging.getLogger(__name__)
#: Seconds a launch sent to a warm browser's worker has to be claimed before the create also goes to the cold queue.
WARM_HANDOFF = 3.0


def public(record: SessionRecord, config: Config, tokens: ConnectTokens, live: LiveViewTokens, store: Store,
           drive: bool) -> dict:
    """What the owner sees: the record's public fields, the cdpUrl with its connect token, and the live-view links.

    A running session whose live-view credential is missing or past half its
    lifetime gets a fresh one here, so every answer carries a link that works
    for at least half of BROKER_LIVE_VIEW_TTL. ``drive``: whether the caller may
    drive the browser (sessions:write); without it, the answer carries neither
    the connect token (``cdpUrl``) nor the live view that takes input
    (``liveViewUrl``), only the read-only live view.
    """
    if record["status"] == Status.RUNNING and live.needs_renewal(record, time.time()):
        record = store.sessions.update_running(record["id"], live.issue(record["id"], time.time())) or record
    control, watch = live.token_for(record, read_only=False), live.token_for(record, read_only=True)
    running = record["status"] == Status.RUNNING and control is not None
    return {
        **record,
        "worker": record.get("worker"),
        "cdpUrl": config.cdp_url(record["id"], tokens.token_for(record)) if drive else None,
        "liveViewUrl": config.live_view_url(record["id"], control, read_only=False) if running and drive else None,
        "liveViewReadOnlyUrl": config.live_view_url(record["id"], watch, read_only=True) if running else None,
    }


def get_visible(store: Store, project: str, session_id: str) -> SessionRecord:
    """Another project's session, or one still launching, is as unknown as a made-up id."""
    record = owned(store.sessions.get(session_id), project, "session", session_id)
    if record["status"] not in VISIBLE_STATUSES:
        abort(404, message=f"No session {session_id}.")
    return record


def _hold_context(store: Store, project: str, context_id: str, session_id: str) -> None:
    """Decided atomically in the store: of two creates with one context, exactly one wins."""
    owned(store.contexts.get(context_id), project, "context", context_id)
    holder = store.contexts.claim(context_id, session_id)
    if holder is not None:
        abort(409, message=f"Context {context_id} is in use by {holder}; a context backs one running session at a time.")


def _claim(store: Store, config: Config, project: str, body: dict, session_id: str) -> None:
    """What the session will hold, claimed before its record exists: a refused create is refused here."""
    if body["contextId"]:
        _hold_context(store, project, body["contextId"], session_id)
    if body["proxyId"] and not store.proxies.claim(body["proxyId"], project, session_id):
        abort(404, message=f"No proxy {body['proxyId']}.")
    limit = store.projects.settings(project).get("maxSessions")
    if limit and not store.projects.claim_slot(project, session_id, limit):
        abort(429, message=f"This project may run {limit} sessions at once; stop one first.",
              headers={"Retry-After": str(config.retry_after)})


def _release_claims(store: Store, body: dict, session_id: str) -> None:
    """A refused create gives back at once what it had claimed, rather than holding it for a create's lifetime."""
    if body["contextId"]:
        store.contexts.release(body["contextId"], session_id)
    if body["proxyId"]:
        store.proxies.unclaim(body["proxyId"], session_id)


def create(
    machine: SessionMachine, config: Config, tokens: ConnectTokens, live: LiveViewTokens, project: str, body: dict,
    caller_gone: Callable[[], bool] = lambda: False,
) -> SessionRecord:
    """The live-view credential is in the record from the start, so the answer needs no second write to carry it."""
    store = machine.store
    session_id = new_id("ses")
    record: SessionRecord = {
        "id": session_id,
        **tokens.issue(session_id),
        **live.issue(session_id, time.time()),
        "project": project,
        "status": Status.PENDING.value,
        "contextId": body["contextId"],
        "proxyId": body["proxyId"],
        "url": body["url"],
        "timeout": body["timeout"],
        "idleTimeout": body["idleTimeout"],
        "createdAt": utcnow_iso(),
        "createdMs": now_ms(),
        "expiresAt": None,
        "stoppedAt": None,
        "stopReason": None,
        "snapshotError": None,
        "navigationError": None,
    }
    try:
        _claim(store, config, project, body, session_id)
    except HTTPException:
        _release_claims(store, body, session_id)
        raise
    offer = store.warm.take() if can_use_warm(record) else None
    store.sessions.create(record, in_line=offer is None)
    if offer is None:
        machine.dispatcher.send_launch(session_id)
    else:
        machine.dispatcher.send_warm_launch(worker_queue(offer.worker), session_id, offer.key)
    try:
        return _wait_until_running(machine, config, session_id, caller_gone, warm=offer is not None)
    except BaseException:
        store.sessions.drop_launch_events(session_id)
        raise


def _wait_until_running(
    machine: SessionMachine, config: Config, session_id: str, caller_gone: Callable[[], bool], warm: bool
) -> SessionRecord:
    """Waits in line up to BROKER_CREATE_WAIT, then for the launch itself.

    A worker whose host is cut off from Redis may have taken the launch off the
    queue (Redis hands it to that worker's pending BRPOP, and the answer never
    arrives): once any worker is declared lost while this create is still in
    line, its launch is sent again. Launches are idempotent, so a copy that
    reaches a worker after the session started elsewhere does nothing.
    """
    store = machine.store
    deadline = time.monotonic() + config.create_wait
    lost_workers = store.workers.lost_count()
    claimed = False
    handoff_deadline = time.monotonic() + WARM_HANDOFF if warm else None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return _give_up(machine, config, session_id)
        if caller_gone():
            return _caller_left(machine, config, session_id)
        if handoff_deadline is not None and time.monotonic() > handoff_deadline:
            handoff_deadline = None
            if store.sessions.join_line(session_id):
                log.warning("session %s: the warm browser's worker did not take the launch; trying a cold launch",
                            session_id, extra={"session": session_id})
                machine.dispatcher.send_launch(session_id)
        event = store.sessions.next_launch_event(session_id, timeout=1)
        if event is None:
            if not claimed and store.workers.lost_count() != lost_workers:
                lost_workers = store.workers.lost_count()
                log.warning("session %s: a worker was lost while this create waited; sending its launch again",
                            session_id, extra={"session": session_id})
                store.sessions.join_line(session_id)
                machine.dispatcher.send_launch(session_id)
            continue
        if event["event"] == "claimed":
            claimed = True
            handoff_deadline = None
            deadline = time.monotonic() + config.launch_timeout
        elif event["event"] == "ready":
            # The worker's last event: the list it came from is empty, so Redis has already dropped it.
            return event["session"]
        elif event["event"] == "failed":
            code = event.get("code", 503)
            headers = {"Retry-After": str(config.retry_after)} if code == 503 else {}
            abort(code, message=event["message"], headers=headers)


def _caller_left(machine: SessionMachine, config: Config, session_id: str) -> SessionRecord:
    """The caller lost its place in line; a browser already started for it is stopped at once."""
    if machine.abandon(session_id) is None:
        machine.stop(session_id, StopReason.ERROR)
    log.info("session %s: the caller hung up before its browser was ready", session_id, extra={"session": session_id})
    abort(503, message="The caller closed the connection.", headers={"Retry-After": str(config.retry_after)})


def _give_up(machine: SessionMachine, config: Config, session_id: str) -> SessionRecord:
    if machine.abandon(session_id) is None:
        record = machine.store.sessions.get(session_id)
        if record and record["status"] == Status.RUNNING:
            machine.store.sessions.drop_launch_events(session_id)
            return record
    log.warning("session %s: no worker took the launch in time", session_id, extra={"session": session_id})
    abort(
        503,
        message="No browser could be started in time; no worker has a free slot. Try again.",
        headers={"Retry-After": str(config.retry_after)},
    )
