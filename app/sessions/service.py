"""Creating and stopping sessions: record first, then the task, then (for create) wait for the worker.

A create is synchronous for the caller but never leaves a browser behind when it
gives up: the give-up and the worker's progress are both compare-and-set moves
on the session's status, so exactly one of them wins. With Redis unreachable the
give-up cannot be written: the create then answers its error only once its
deadline, kept in Redis since its first write, has passed for sure, and no launch
can start the session after that (core.states).

A create that needs nothing launch-time-specific takes a warm browser's offer
when any worker has one (core.store.warm) and sends its launch to that worker's
own queue; the rest join the line for a cold launch. Should the warm worker not
claim the launch within BROKER_WARM_HANDOFF (it died a moment ago, or its browser
did), the create joins the line as well: the claim decides which launch wins.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from flask_smorest import abort
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException

from app.auth import owned
from app.sessions import browser_options
from core.browser_options import shown
from core.config import Config
from core.dispatch import can_use_warm, worker_queue
from core.ids import new_id, now_ms, utcnow_iso
from core.session_machine import SessionMachine
from core.states import VISIBLE_STATUSES, SessionRecord, Status, StopReason
from core.store import Store
from core.store.metrics import WARM_OFFERS
from core.replay_links import SALT_FIELD as REPLAY_SALT, ReplayLinks
from core.tokens import ConnectTokens, LiveViewTokens

log = logging.getLogger(__name__)


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
        "browserOptions": shown(record["browserOptions"]) if "browserOptions" in record else None,
        "launch": record.get("launch"),
        "recording": bool(record.get("recording")),
        "recordingUrl": _recording_url(record, config, store),
        "movable": bool(record.get("movable")),
        "moving": bool(record.get("moving")) and record["status"] == Status.RUNNING,
        "checkpointInterval": record.get("checkpointInterval") or 0,
        "checkpointedAt": record.get("checkpointedAt"),
        "restoredFrom": record.get("restoredFrom"),
    }


def _recording_url(record: SessionRecord, config: Config, store: Store) -> str | None:
    """Read-only, like the live view's watching link, but for as long as the recording is kept."""
    if not record.get(REPLAY_SALT) or store.recordings.deleted(record["id"]):
        return None
    return ReplayLinks.from_config(config).url_for(record)


def movability(config: Config, body: dict) -> dict:
    """``movable`` and ``checkpointInterval``: a checkpoint is used only by a move, so asking for checkpoints makes a
    session movable unless the create said otherwise (a 422, app/sessions/schemas.py), and BROKER_CHECKPOINT_INTERVAL
    applies to movable sessions only."""
    interval = body.get("checkpointInterval")
    movable = body.get("movable")
    if movable is None:
        movable = bool(interval) or config.sessions.movable
    if interval is None:
        interval = config.sessions.checkpoint_interval if movable else 0
    return {"movable": movable, "checkpointInterval": interval}


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
              headers={"Retry-After": str(config.web.retry_after)})


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
    options = browser_options.for_create(store, project, body)
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
        "browserOptions": options,
        "launch": None,
        "recording": browser_options.recording_for(store, config.sessions.recording, project, body),
        **movability(config, body),
    }
    if record["recording"]:
        record.update(ReplayLinks.issue())
    try:
        _claim(store, config, project, body, session_id)
    except HTTPException:
        _release_claims(store, body, session_id)
        raise
    offer = store.warm.take() if can_use_warm(record) else None
    if can_use_warm(record):
        store.metrics.count(WARM_OFFERS, "hit" if offer else "miss")
    store.sessions.create(record, in_line=offer is None)
    patience = Patience(config, written=time.monotonic())
    try:
        try:
            if offer is None:
                machine.dispatcher.send_launch(session_id)
            else:
                machine.dispatcher.send_warm_launch(worker_queue(offer.worker), session_id, offer.key)
        except STORAGE_ERRORS as error:
            # The launch may have reached Redis all the same: the create gives up as after any wait.
            log.warning("session %s: its launch could not be sent (%s)", session_id, error,
                        extra={"session": session_id})
            return _give_up(machine, config, session_id, patience, "The launch could not be sent; try again.")
        return _wait_until_running(machine, config, session_id, caller_gone, patience, warm=offer is not None)
    except BaseException as error:
        if not isinstance(error, STORAGE_ERRORS):
            _forget_launch_events(store, session_id)
        raise


#: What a Redis outage raises: the store's client, or Celery's sender (kombu) once its retries are spent.
STORAGE_ERRORS = (RedisError, OperationalError)
#: Seconds added to the create's deadline before this process takes it as passed without Redis's word: Redis times
#: the deadline by its own clock (core.states), this process by its own.
CLOCK_MARGIN = 1.0


class Patience:
    """The create's deadline in Redis (core.states), as this process can bound it when Redis does not answer.

    Its TTL started before the record's write returned (``written``): BROKER_CREATE_WAIT, then
    BROKER_LAUNCH_TIMEOUT from a claim, which happened before the create heard of it (``claimed``). A claim
    the create never heard of (Redis failed first) may have come up to BROKER_CREATE_WAIT after the write.
    """

    def __init__(self, config: Config, written: float) -> None:
        self.config = config
        self.written = written
        self.claimed: float | None = None

    def passed_for_sure(self) -> bool:
        if self.claimed is not None:
            ends = self.claimed + self.config.worker.launch_timeout
        else:
            ends = self.written + self.config.web.create_wait + self.config.worker.launch_timeout
        return time.monotonic() > ends + CLOCK_MARGIN


def _wait_until_running(
    machine: SessionMachine, config: Config, session_id: str, caller_gone: Callable[[], bool], patience: Patience,
    warm: bool,
) -> SessionRecord:
    """Waits in line up to BROKER_CREATE_WAIT, then for the launch itself.

    A worker whose host is cut off from Redis may have taken the launch off the
    queue (Redis hands it to that worker's pending BRPOP, and the answer never
    arrives): once any worker is declared lost while this create is still in
    line, its launch is sent again. Launches are idempotent, so a copy that
    reaches a worker after the session started elsewhere does nothing.

    Redis failing meanwhile is waited out, to the same deadline: the launch may
    still come, and the give-up must be a move in Redis anyway (:func:`_settle`).
    """
    store = machine.store
    deadline = time.monotonic() + config.web.create_wait
    lost_workers: int | None = None
    claimed = False
    handoff_deadline = time.monotonic() + config.web.warm_handoff if warm else None
    outage: Exception | None = None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return _give_up(machine, config, session_id, patience,
                            "No browser could be started in time; no worker has a free slot. Try again.")
        if caller_gone():
            return _caller_left(machine, config, session_id, patience)
        try:
            if lost_workers is None:
                lost_workers = store.workers.lost_count()
            if handoff_deadline is not None and time.monotonic() > handoff_deadline:
                if store.sessions.join_line(session_id):
                    log.warning("session %s: the warm browser's worker did not take the launch; trying a cold launch",
                                session_id, extra={"session": session_id})
                    machine.dispatcher.send_launch(session_id)
                handoff_deadline = None
            event = store.sessions.next_launch_event(session_id, timeout=1)
            if event is None:
                if not claimed and store.workers.lost_count() != lost_workers:
                    lost_workers = store.workers.lost_count()
                    log.warning("session %s: a worker was lost while this create waited; sending its launch again",
                                session_id, extra={"session": session_id})
                    store.sessions.join_line(session_id)
                    machine.dispatcher.send_launch(session_id)
                continue
        except STORAGE_ERRORS as error:
            if outage is None:
                log.warning("session %s: Redis failed while the create waited (%s); waiting on", session_id, error,
                            extra={"session": session_id})
            outage = error
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
            continue
        outage = None
        if event["event"] == "claimed":
            claimed = True
            handoff_deadline = None
            patience.claimed = time.monotonic()
            deadline = patience.claimed + config.worker.launch_timeout
        elif event["event"] == "ready":
            # The worker's last event: the list it came from is empty, so Redis has already dropped it.
            return event["session"]
        elif event["event"] == "failed":
            code = event.get("code", 503)
            headers = {"Retry-After": str(config.web.retry_after)} if code == 503 else {}
            abort(code, message=event["message"], headers=headers)


def _settle(machine: SessionMachine, session_id: str, patience: Patience) -> SessionRecord | None:
    """The create's give-up, before it answers an error: ``abandon`` written, or, while Redis does not answer, its
    deadline passed for sure, after which no launch can start the session (core.states). Only then may the create
    answer an error; the record is returned when the give-up lost the race to the launch (the session runs)."""
    while True:
        try:
            if machine.abandon(session_id) is not None:
                return None
            return machine.store.sessions.get(session_id)
        except RedisError as error:
            if patience.passed_for_sure():
                log.warning("session %s: its give-up could not be written (%s); past its deadline, no launch can take "
                            "it", session_id, error, extra={"session": session_id})
                raise
            time.sleep(0.5)


def _forget_launch_events(store: Store, session_id: str) -> None:
    """Tidying only (the list expires by itself): not tried when Redis just failed, and a failure here must not
    replace the create's answer."""
    try:
        store.sessions.drop_launch_events(session_id)
    except RedisError:
        pass


def _caller_left(machine: SessionMachine, config: Config, session_id: str, patience: Patience) -> SessionRecord:
    """The caller lost its place in line; a browser already started for it is stopped at once."""
    record = _settle(machine, session_id, patience)
    if record is not None:
        machine.stop(session_id, StopReason.ERROR)
    log.info("session %s: the caller hung up before its browser was ready", session_id, extra={"session": session_id})
    abort(503, message="The caller closed the connection.", headers={"Retry-After": str(config.web.retry_after)})


def _give_up(
    machine: SessionMachine, config: Config, session_id: str, patience: Patience, message: str
) -> SessionRecord:
    record = _settle(machine, session_id, patience)
    if record and record["status"] == Status.RUNNING:
        _forget_launch_events(machine.store, session_id)
        return record
    log.warning("session %s: no worker took the launch in time", session_id, extra={"session": session_id})
    abort(503, message=message, headers={"Retry-After": str(config.web.retry_after)})
