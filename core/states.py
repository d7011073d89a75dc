"""The session state machine's table: every status, every allowed move, and what each move does besides.

Read this table to know how a session can change. It is data only, beneath the
store: :mod:`core.session_machine` applies the moves, and :mod:`core.store.sessions`
carries each out, effects included, as one compare-and-set transaction; nothing
else writes a session's status. A move happens only if the record is in one of
the move's sources, so of two racing moves (a create giving up while a worker
finishes the launch, two DELETEs, a stop and a lost worker's reaper) exactly one
wins, and the loser learns it from a ``None`` and has no effect at all.

     ┌────────────────hand_over────────────────┐
     │                                         ▼
    pending ──claim──▶ launching ──ready──▶ running ──request_stop──▶ stopping
       │                   │                  │                         │
       └──abandon / drop───┴──▶ abandoned     └──finish_stop / lose─────┴──▶ stopped

``begin_move`` and ``settle_move`` keep a session ``running`` (``moving`` set, then cleared) while it moves from a
worker told to stop to another (tasks/moving.py), or from a lost worker's last checkpoint (core/recovery.py).

``hand_over`` is a warm browser given to a create with nothing left to do
(no first page to load): one move instead of ``claim`` then ``ready``.

``abandoned`` is a create that gave up before its browser was ready; users never
see it (nor ``pending``/``launching``): to them such a session does not exist.

**The create's deadline.** A create that cannot reach Redis cannot write its
``abandon``. So the create's patience is in the store from its first write: a
key beside the record whose TTL is the create's deadline, ``BROKER_CREATE_WAIT``
from the write, and ``BROKER_LAUNCH_TIMEOUT`` from the claim (the create restarts
its own clock when it hears of the claim). ``claim``, ``hand_over`` and ``ready``
happen only before it (:attr:`Deadline.BEFORE`); Redis itself refuses one whose
transaction commits after the key expired (an expired WATCHed key fails EXEC), so
a move held up by a stall past the deadline is refused too, and no host's clock is
involved. A create that gave up thus answers its error only once its ``abandon``
is written or its deadline has passed for sure (app/sessions/service.py); a launch
that meets a pending or launching session whose deadline has passed gives back what
its create held (``drop``, :attr:`Deadline.PASSED`).
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import TypedDict


class Status(StrEnum):
    PENDING = "pending"
    LAUNCHING = "launching"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    ABANDONED = "abandoned"


#: What a user can see; the other statuses are a create still in progress or given up.
VISIBLE_STATUSES = (Status.RUNNING, Status.STOPPING, Status.STOPPED)
#: A session in one of these holds its context, its proxy and its project slot.
LIVE_STATUSES = (Status.PENDING, Status.LAUNCHING, Status.RUNNING, Status.STOPPING)


class StopReason(StrEnum):
    DELETED = "deleted"
    TIMEOUT = "timeout"
    WORKER_LOST = "worker_lost"
    BROWSER_CLOSED = "browser_closed"
    #: Its worker was told to stop (SIGTERM: a deploy, a platform restart) and the session did not move.
    SHUTDOWN = "shutdown"
    #: It moved MOVE_LIMIT times within MOVE_WINDOW (core/recovery.py: its workers kept stopping or were lost) and was
    #: not moved again.
    MOVE_LIMIT = "move_limit"
    #: It was moving and no worker ran it again within BROKER_MOVE_TIMEOUT.
    MOVE_TIMEOUT = "move_timeout"
    ERROR = "error"


class Effect(Enum):
    """What a move does besides changing the record; the store carries each out in the move's transaction."""

    #: The record stops expiring (a pending record has a TTL, so an abandoned create cleans itself up).
    PERSIST = "persist"
    #: Into the project's session list, the worker's session set and the expiry and idle schedules.
    INDEX_RUNNING = "index_running"
    #: Out of the expiry and idle schedules; CDP client entries dropped.
    UNSCHEDULE = "unschedule"
    #: Out of the project's live count, the proxy's users, the worker's set; the context's hold released.
    FREE_HOLDS = "free_holds"
    #: Kept readable for BROKER_SESSION_RETENTION, then gone.
    RETAIN = "retain"
    #: Out of the line of creates waiting for a cold launch (a worker took it, or the create gave up).
    LEAVE_LINE = "leave_line"
    #: The downloads archived at stop are scheduled for deletion after BROKER_DOWNLOAD_RETENTION.
    EXPIRE_DOWNLOADS = "expire_downloads"
    #: The create waiting for the session hears the running record (core.store.sessions' launch events): in the
    #: move's own transaction, so it can never hear of a move that did not happen, at no extra round trip.
    TELL_CREATE = "tell_create"
    #: The create's deadline is now BROKER_LAUNCH_TIMEOUT away (a worker took the launch; the create restarts its clock
    #: when it hears so).
    EXTEND_DEADLINE = "extend_deadline"
    #: The create's deadline is over: it has its answer (running) or gave up.
    END_DEADLINE = "end_deadline"
    #: Every web process closes the session's CDP clients now, with the stop reason (core.store.events), if the move
    #: takes the session out of running: only a running session has clients (the relay admits no other), and a
    #: stopping one's were told when it left running. In the move's own transaction, like TELL_CREATE: once per
    #: session, and never for a move that lost.
    ANNOUNCE_STOP = "announce_stop"
    #: Every web process closes the session's CDP clients with 1012 (service restart): it is moving, and they may
    #: reconnect to the same URL (tasks/moving.py).
    ANNOUNCE_MOVE = "announce_move"
    #: Out of its worker's session set: a moving session is no worker's, so neither the reaper of its old worker nor
    #: that worker's successor (same name) ends it as lost; INDEX_RUNNING puts it in its new worker's set.
    LEAVE_WORKER = "leave_worker"
    #: Into the moves under way, by when each began: one no worker relaunches within BROKER_MOVE_TIMEOUT ends
    #: (core/reaping.py). UNSCHEDULE and RELAUNCHED take it out.
    AWAIT_RELAUNCH = "await_relaunch"
    #: Out of the moves under way: it runs again.
    RELAUNCHED = "relaunched"


class Deadline(Enum):
    """When, relative to the create's deadline (the module docstring), a move may happen."""

    #: Only while the create still waits: the session is one it will take.
    BEFORE = "before"
    #: Only once the create's deadline has passed: nobody will take the session any more.
    PASSED = "passed"


@dataclass(frozen=True)
class Move:
    name: str
    sources: frozenset[Status]
    target: Status
    effects: tuple[Effect, ...] = ()
    deadline: Deadline | None = None


def _move(name: str, sources: set[Status], target: Status, *effects: Effect, deadline: Deadline | None = None) -> Move:
    return Move(name, frozenset(sources), target, effects, deadline)


S = Status
CLAIM = _move("claim", {S.PENDING}, S.LAUNCHING, Effect.LEAVE_LINE, Effect.EXTEND_DEADLINE, deadline=Deadline.BEFORE)
ABANDON = _move("abandon", {S.PENDING, S.LAUNCHING}, S.ABANDONED, Effect.LEAVE_LINE, Effect.FREE_HOLDS,
                Effect.END_DEADLINE)
#: A launch meeting a session whose create's deadline passed before it could write its ``abandon`` (Redis was out).
DROP = _move("drop", {S.PENDING, S.LAUNCHING}, S.ABANDONED, Effect.LEAVE_LINE, Effect.FREE_HOLDS,
             deadline=Deadline.PASSED)
READY = _move("ready", {S.LAUNCHING}, S.RUNNING, Effect.PERSIST, Effect.INDEX_RUNNING, Effect.TELL_CREATE,
              Effect.END_DEADLINE, deadline=Deadline.BEFORE)
HAND_OVER = _move("hand_over", {S.PENDING}, S.RUNNING, Effect.LEAVE_LINE, Effect.PERSIST, Effect.INDEX_RUNNING,
                  Effect.TELL_CREATE, Effect.END_DEADLINE, deadline=Deadline.BEFORE)
REQUEST_STOP = _move("request_stop", {S.RUNNING}, S.STOPPING, Effect.ANNOUNCE_STOP)
FINISH_STOP = _move("finish_stop", {S.RUNNING, S.STOPPING}, S.STOPPED, Effect.ANNOUNCE_STOP, Effect.UNSCHEDULE,
                    Effect.FREE_HOLDS, Effect.RETAIN, Effect.EXPIRE_DOWNLOADS)
LOSE = _move("lose", {S.LAUNCHING, S.RUNNING, S.STOPPING}, S.STOPPED, Effect.ANNOUNCE_STOP, Effect.UNSCHEDULE,
             Effect.FREE_HOLDS, Effect.RETAIN)
#: A worker told to stop hands a movable running session back to the queue: it stays running, ``moving`` set.
BEGIN_MOVE = _move("begin_move", {S.RUNNING}, S.RUNNING, Effect.ANNOUNCE_MOVE, Effect.LEAVE_WORKER,
                   Effect.AWAIT_RELAUNCH)
#: Another worker (or the same one's successor) runs it again from its saved state: ``moving`` cleared.
SETTLE_MOVE = _move("settle_move", {S.RUNNING}, S.RUNNING, Effect.INDEX_RUNNING, Effect.RELAUNCHED)
MOVES = (CLAIM, ABANDON, DROP, READY, HAND_OVER, REQUEST_STOP, FINISH_STOP, LOSE, BEGIN_MOVE, SETTLE_MOVE)


class SessionRecord(TypedDict, total=False):
    """The one shape of a stored session. The API shows a subset (app/sessions/schemas.py)."""

    id: str
    project: str
    status: str
    contextId: str | None
    proxyId: str | None
    url: str | None
    timeout: int
    idleTimeout: int | None
    createdAt: str
    createdMs: int
    expiresAt: str | None
    expiresEpoch: float
    stoppedAt: str | None
    stopReason: str | None
    #: When ``request_stop`` happened (Unix seconds): a worker that still holds a session stopping long after, with no
    #: stop of its own under way, ends it itself (its stop task was never sent: tasks.lifecycle).
    stopRequestedEpoch: float
    snapshotError: str | None
    navigationError: str | None
    #: The worker's queue, set when a worker claims the launch.
    worker: str
    #: The browser's socket on its own host's loopback; never shown to users.
    browserWsUrl: str
    #: The connect token's salt and SHA-256 (core.tokens); the token itself is never stored.
    connectSalt: str
    connectTokenHash: str | None
    #: The live-view credentials' salt, SHA-256s and expiry (core.tokens.LiveViewTokens); never the credentials.
    liveViewSalt: str
    liveViewHash: str | None
    liveViewReadOnlyHash: str | None
    liveViewExpiresEpoch: float
    #: Which host (loopback) the browser is on (core.browser_link.local_host_id).
    hostId: str
    #: ``host:port`` of the owning worker's gateway, the way in from any other host.
    gateway: str
    browserVersion: str
    userAgent: str
    #: Browser.getVersion's jsVersion and revision, for /json/version's V8-Version and WebKit-Version.
    browserJsVersion: str
    browserRevision: str
    #: The session's download and upload folders, as the browser sees them (core/files.py); never shown to users.
    downloadsPath: str
    uploadsPath: str
    #: A download was cancelled for the size cap (BROKER_DOWNLOAD_MAX_BYTES).
    downloadError: str | None
    #: What the stop archived (name, size, state, mimeType, modifiedAt each) and when that archive is deleted.
    downloads: list[dict]
    downloadsExpireEpoch: float
    #: May move to another worker when its own stops (BROKER_MOVABLE by default).
    movable: bool
    #: Saved and handed back to the queue, not yet running on its next worker.
    moving: bool
    #: When the session was moved (Unix seconds), newest last, within BROKER_MOVE_WINDOW: for the crash-loop limit.
    moveEpochs: list[float]
    #: The blob key of the saved state it moves with (core/store/moves.py); never shown to users.
    moveState: str | None
    #: Seconds between checkpoints (tasks/checkpoints.py); 0: none.
    checkpointInterval: int
    #: The blob key of its last checkpoint, and when that was saved (ISO): what a lost worker's session is relaunched
    #: from (core/recovery.py); the key is never shown to users.
    checkpointState: str | None
    checkpointedAt: str | None
    #: When the checkpoint it was last relaunched from was saved (ISO): what happened after that was lost.
    restoredFrom: str | None
    #: The options the browser gets: the project's defaults under the create's, merged once at create
    #: (core/browser_options.py).
    browserOptions: dict
    #: How the browser came to the session, ``"warm"`` or ``"cold"``; null until it runs.
    launch: str | None
    #: Record every page (rrweb) into the snapshot store (core/recordings.py): the create's, project's or
    #: deployment's choice (BROKER_RECORDING).
    recording: bool
    #: The replay link's salt (core/replay_links.py), a recorded session's only; the link itself is never stored.
    recordingSalt: str
