"""The worker as one object: every part one worker process holds, wired in the order it starts.

Built and run by the worker's bootstep (tasks/worker_steps.py) once Celery has named the worker, and handed to
tasks as ``self.worker`` (tasks/worker_task.py); nothing in ``tasks/`` is built at import. The fast tests build
one with a fake launcher (tests/unit/test_worker_launch.py and its siblings) and drive the same code the tasks run.

Start order (:meth:`Worker.start`): this worker's own queue is consumed; what an earlier life of the worker left
(browsers, profiles, warm offers, sessions) is ended; the gateway listens (each session's record names its
address); the housekeeping thread beats, the checkpoints thread saves (tasks/checkpoints.py) and the warm keeper
fills. :meth:`Worker.stop` (SIGTERM, once the tasks under way have finished) stops every session through the
normal flow within the grace period, ends the warm browsers and whatever browser is left, then the forwarders and
the gateway.
"""
from __future__ import annotations

import logging
import threading
import time
import urllib.request
from collections.abc import Callable
from urllib.parse import urlsplit

from celery import Celery, Task
from celery.signals import task_received, task_revoked, worker_shutting_down
from celery.worker.consumer import Consumer
from celery.worker.request import Request
from redis.exceptions import RedisError

from core.config import Config
from core.crypto import SecretBox
from core.dispatch import LAUNCH_TASK, Dispatcher, worker_queue
from core.download_archive import DownloadArchive
from core.recordings import Recordings
from core.egress import EgressPolicy
from core.gateway_auth import GatewayKey
from core.recovery import recover_or_lose
from core.session_machine import SessionMachine
from core.snapshots import open_snapshot_store
from core.states import StopReason
from core.store import Store
from tasks.browser import StopsUnderWay, drop, end_session
from tasks.browser_options import BrowserOptions
from tasks.browser_users import BrowserUsers, NoBrowserUser
from tasks.checkpoints import Checkpoints
from tasks.chromium_flags import browser_flags
from tasks.confinement import ConfinementError, start_checks
from tasks.contexts import ContextState
from tasks.downloads import DownloadGuards
from tasks.session_watch import SessionWatches
from tasks.forwarder import Forwarders
from tasks.gateway import Gateway
from tasks.intake import LaunchIntake
from tasks.launchers import make_launcher
from tasks.launchers.base import Launcher
from tasks.lifecycle import Housekeeping
from tasks.moving import Mover
from tasks.pool import ChromiumPool
from tasks.project_gate import ProjectGate
from tasks.running_browser import SIGNAL_SPREAD, RunningBrowser
from tasks.warm import WarmBrowsers

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, config: Config, app: Celery, name: str, launcher: Launcher | None = None,
                 users: BrowserUsers | None = None) -> None:
        """``launcher``: None for the real one (BROKER_LAUNCHER), made once the start checks (tasks/confinement.py)
        have proved its browsers confined; tests pass a fake one, which has nothing to prove. ``users``: who the
        browsers run as (only whether they share one user matters here), BROKER_BROWSER_USER's by default.

        Raises MissingSecretKey (outside development, without BROKER_SECRET_KEY) before anything else, and
        ConfinementError if the real launcher's browsers could read the host."""
        self.config = config
        self.app = app
        self.name = name
        self.queue = worker_queue(name)
        # Records, moves and what sessions keep beyond their browsers.
        self.secret_box = SecretBox.from_config(config)
        self.store = Store(config)
        self.dispatcher = Dispatcher(app, config)
        self.machine = SessionMachine(self.store, self.dispatcher)
        self.contexts = ContextState(config, self.store, open_snapshot_store(config))
        self.download_archive = DownloadArchive(open_snapshot_store(config))
        #: Where a moving session's saved state goes (tasks/moving.py).
        self.snapshots = open_snapshot_store(config)
        # Who the browsers run as, and what that allows.
        self.users = users if users is not None else _browser_users(config)
        #: Enforced only where browsers share the worker's user and BROKER_SHARED_USER_PROJECTS is not ``any``.
        self.project_gate = ProjectGate(enforced=not self.users.switching and config.worker.shared_user_projects != "any")
        # What each browser has beside it: its forwarder, its download guard.
        self.forwarders = Forwarders(EgressPolicy.parse(config.network.egress_allow), config.network.proxy_connect_timeout)
        self.download_guards = DownloadGuards(config.files.download_max_bytes, self._report_download_error)
        self.session_watches = SessionWatches(self.store, config, Recordings(open_snapshot_store(config), self.store))
        self.browser_options = BrowserOptions(config, open_snapshot_store(config), self.secret_box)
        self.download_guards.listeners.append(self.session_watches.download_event)
        # The browsers: the pool, its warm spares, the intake of launches, the gateway web processes reach them by.
        root = config.chromium.profiles_dir / name
        if launcher is None:
            launcher = make_launcher(config, self.users, start_checks(config, self.users, root))
        self.pool = ChromiumPool(launcher, config.worker.pool_size, root, config.worker.spare_room)
        self.warm = WarmBrowsers(self.pool, self.store, lambda: self.name, config.worker.warm_browsers, config.worker.warm_window,
                                 self._warm_flags, config.worker.launch_timeout, on_ready=lambda: self.intake.reconcile(),
                                 prepare=self._prepare_spare)
        #: A warm browser is room too, for creates that waited: a plain one takes it, any other ends it for its slot.
        self.intake = LaunchIntake(app, name, self.pool, self.warm.room, self.store)
        self.gateway = Gateway(config, GatewayKey.from_config(config), self.pool.get)
        # What ends with each browser, whichever path ends it (or its launch), and follows a warm one to its session.
        self.pool.release_hooks += [self.forwarders.stop, self.download_guards.stop, self.session_watches.stop,
                                    self.browser_options.stop, self.project_gate.release, self.intake.forget,
                                    lambda _: self.intake.reconcile(), lambda _: self.warm.wake()]
        self.pool.end_hooks.append(self.session_watches.finish_recording)
        self.pool.failed_launch_hooks.append(self.forwarders.stop)
        self.pool.cold_launch_hooks.append(self.intake.launched_cold)
        self.pool.rekey_hooks += [self.forwarders.rekey, self.download_guards.rekey, self.session_watches.rekey,
                                  self.browser_options.rekey]
        # The sessions' flows (tasks/browser.py) and the periodic work (tasks/lifecycle.py).
        self.stops_under_way = StopsUnderWay()
        #: Set when the worker is told to shut down: a flow waiting for Redis to answer gives up then.
        self.shutting_down = threading.Event()
        #: Sessions whose browser had already ended by itself when the worker was told to stop (SIGNAL_SPREAD before
        #: its handler ran, or earlier): they end, never move.
        self.closed_before_stop: set[str] = set()
        self._holding: threading.Thread | None = None
        self.housekeeping = Housekeeping(self)
        self.mover = Mover(self)
        self.checkpoints = Checkpoints(self)

    # -- start and stop ------------------------------------------------------------
    def start(self) -> None:
        """Before any task arrives; the order is the module's docstring's."""
        log.info("isolation: browsers' users %(users)s; network through each browser's own %(network)s, "
                 "%(egress)s; projects %(projects)s", self.isolation())
        self._connect_signals()
        self.app.amqp.queues.select_add(self.queue)
        self.pool.clean_leftovers()
        self._until_redis_answers("settling an earlier life of this worker", self._settle_earlier_life)
        self.gateway.start()
        if urlsplit(self.config.snapshots.url).scheme == "file":
            log.warning("BROKER_SNAPSHOT_URL is %s: file:// snapshots do not move between hosts (only workers that "
                        "mount this folder see them); with workers on several hosts set an s3:// store",
                        self.config.snapshots.url)
        self.housekeeping.start()
        self.checkpoints.start()
        self.warm.start()

    def _settle_earlier_life(self) -> None:
        """The name is stable across restarts (Procfile, compose), so an earlier life's sessions end as
        ``worker_lost`` at once, without waiting for a TTL, or move from their checkpoints (core/recovery.py), and
        its warm offers are withdrawn."""
        self.store.warm.forget(self.name)
        for session_id in self.store.sessions.on_worker(self.queue):
            if record := recover_or_lose(self.machine, self.snapshots, session_id):
                log.warning("session %s: left running by an earlier life of this worker; %s", session_id,
                            "moving from its checkpoint" if record.get("moving") else "ended as worker_lost",
                            extra={"session": session_id})

    def _until_redis_answers(self, what: str, call: Callable[[], None]) -> None:
        """Redis down at start: the worker waits for it (as Celery's consumer does), until told to shut down."""
        while True:
            try:
                call()
                return
            except RedisError as error:
                if self.shutting_down.is_set():
                    raise
                log.warning("Redis did not answer %s (%s); trying again", what, error)
                self.shutting_down.wait(1)

    def stop(self) -> None:
        """SIGTERM (a redeploy): every session goes through the normal stop flow, in parallel, within the grace period.

        Warm browsers end beside them, their offers withdrawn first. Ending a browser needs no Redis: a stop whose
        store calls fail (Redis down or unreachable at exit) ends its browser without them, and whatever browser is
        still held when the grace runs out is ended the same way, so no Chromium outlives its worker.
        """
        self.shutting_down.set()
        if self._holding is None:  # stopped without Celery's signal (an in-process test)
            self._hold_for_stop(time.monotonic())
        else:
            self._holding.join(5)
        self.housekeeping.stop()
        self.checkpoints.stop()
        stoppers = [threading.Thread(target=self._end_at_exit, args=(session_id,), daemon=True)
                    for session_id in self.pool.session_ids()]
        stoppers.append(threading.Thread(target=self.warm.close, args=(self.config.worker.shutdown_grace,), daemon=True))
        for thread in stoppers:
            thread.start()
        deadline = time.monotonic() + self.config.worker.shutdown_grace
        for thread in stoppers:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.mover.cut_short()
        for key in self.pool.keys():
            log.warning("%s: its browser is still up at exit; ending it without its stop flow", key,
                        extra={"session": key})
            self._end_browser(key)
        # Ending each browser ended its forwarder; this catches one whose launch was cut short.
        self.forwarders.stop_all()
        self.gateway.stop()
        self._disconnect_signals()
        try:
            self.store.workers.forget(self.name)
        except Exception as error:  # Redis down at exit: the heartbeat runs out and reapers do the rest
            log.warning("could not remove this worker from the store at exit (%s)", error)

    def _end_at_exit(self, session_id: str) -> None:
        """A movable session moves to another worker (tasks/moving.py); any other ends as ``shutdown``."""
        try:
            if self.mover.leave(session_id):
                return
            end_session(self, session_id, StopReason.SHUTDOWN)
        except Exception:
            log.exception("session %s: its stop failed at exit (Redis unreachable?); ending its browser without it",
                          session_id, extra={"session": session_id})
            self._end_browser(session_id)

    def _end_browser(self, key: str) -> None:
        """The browser ended and its folders deleted with no store call; a failing release hook is logged, not
        raised (the browser has ended before any hook runs)."""
        try:
            self.pool.release(key)
        except Exception:
            log.exception("%s: a step after ending its browser failed", key, extra={"session": key})

    # -- what Celery tells the worker, on its consumer's thread --------------------
    def _connect_signals(self) -> None:
        task_received.connect(self._on_task_received, weak=False)
        task_revoked.connect(self._on_task_revoked, weak=False)
        worker_shutting_down.connect(self._on_shutting_down, weak=False)

    def _disconnect_signals(self) -> None:
        task_received.disconnect(self._on_task_received)
        task_revoked.disconnect(self._on_task_revoked)
        worker_shutting_down.disconnect(self._on_shutting_down)

    def _on_task_received(self, sender: Consumer, request: Request, **_: object) -> None:
        """Before the consumer reads another message: see :mod:`tasks.intake`. A launch for one of this worker's
        warm browsers reserves nothing: that browser holds its slot. Either is demand the warm keeper follows."""
        if request.name == LAUNCH_TASK:
            self.warm.saw_create()
            if not request.kwargs.get("warm"):
                self.intake.received(sender, request.args[0])

    def _on_task_revoked(self, sender: Task, request: Request, **_: object) -> None:
        """A launch can expire between its receipt (slot reserved) and its start; the slot comes back, and what its
        create held if that create could not write its give-up."""
        if sender.name == LAUNCH_TASK:
            self.intake.give_back(request.args[0])
            drop(self, request.args[0])

    def _on_shutting_down(self, **_: object) -> None:
        """At the signal, before the stop above begins: a browser that ends by itself from here on (a platform that
        signals every process of the container reaches the browsers too) is the stop's to handle, not housekeeping's,
        and a move opens again the tabs open now (tasks/moving.py). On a thread: this runs in the signal handler, on
        the main thread, which may hold the locks it takes."""
        self.shutting_down.set()
        if self._holding is None:
            self._holding = threading.Thread(target=self._hold_for_stop, args=(time.monotonic(),),
                                             name="shutdown-hold", daemon=True)
            self._holding.start()

    def _hold_for_stop(self, signalled_at: float) -> None:
        """The platform's SIGTERM may have reached the browsers first (SIGNAL_SPREAD): what they did within it, closing
        their tabs and exiting, was the signal's doing, not the sessions'."""
        since = signalled_at - SIGNAL_SPREAD
        self.session_watches.hold_all(since)
        self.closed_before_stop.update(
            key for key in self.pool.session_ids()
            if (browser := self.pool.get(key)) is not None and browser.gone_before(since))

    # -- what the parts share ----------------------------------------------------------
    def prepare_browser(self, key: str, browser: RunningBrowser) -> None:
        """Before any client reaches a browser: its downloads already land in its folder (tasks/downloads.py), and
        Chromium's /json/protocol is stored, once per browser version, for clients that discover it
        (app/relay_info.py). ``key``: the session's id, or a warm browser's key (its guard follows it to the
        session through the pool's rekey hooks)."""
        try:
            self.download_guards.start(key, browser)
        except Exception:  # the browser answered a moment ago; without a guard the profile's folder still holds
            log.exception("%s: the download guard could not connect", key)
        self.session_watches.start(key, browser)
        if self.store.cdp_protocol.version() == browser.version:
            return
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{browser.port}/json/protocol", timeout=5) as answer:
                self.store.cdp_protocol.save(browser.version, answer.read().decode())
        except OSError as error:
            log.warning("could not read Chromium's /json/protocol: %s", error)

    def _prepare_spare(self, key: str, browser: RunningBrowser) -> None:
        """A warm browser, before it is offered: what every browser gets, and the connection that holds a session's
        browser options, opened with none (a create with none keeps it: tasks/browser_options.py)."""
        self.prepare_browser(key, browser)
        self.browser_options.prepare(key, browser)

    def isolation(self) -> dict[str, str]:
        """How this worker keeps its browsers apart, for its heartbeat (so /readyz and /metrics) and its start log.

        ``users``: ``per-browser`` (a root worker runs each browser as a user of its own) or ``shared`` (all as the
        worker's user: one tenant's pages could read another's profile through a ``file`` input). ``network``:
        ``forwarder``, each browser's own (tasks/forwarder.py), under ``egress``. ``projects``: ``one at a time``
        where the users are shared (tasks/project_gate.py), else ``any``.
        """
        return {"users": "per-browser" if self.users.switching else "shared", "network": "forwarder",
                "egress": self.forwarders.policy.describe(),
                "projects": "one at a time" if self.project_gate.enforced else "any"}

    def _warm_flags(self, key: str) -> list[str]:
        """A warm browser's flags, made for its key: its own forwarder, no upstream proxy."""
        return browser_flags(self.config, self.forwarders.start(key))

    def _report_download_error(self, session_id: str, message: str) -> None:
        self.store.sessions.update_running(session_id, {"downloadError": message})


def _browser_users(config: Config) -> BrowserUsers:
    try:
        return BrowserUsers(config.chromium.browser_user)
    except NoBrowserUser as error:
        raise ConfinementError(str(error)) from error
