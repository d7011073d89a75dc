"""Warm browsers: launched ahead of need, so a create that needs nothing special answers without a launch.

Each is an ordinary browser (the same flags, a fresh profile and temp folder of
its own, CDP answering) that the pool holds as a *spare*: it takes a slot, so
warm browsers count against the worker's capacity, and memory, like running
ones. A ready one is offered in Redis (core.store.warm); a create that takes the
offer sends its launch to this worker's own queue, and the launch task hands the
browser to the session. A warm browser serves one session and ends with it: it
is never returned to the pool, so no session sees another's cookies, storage,
history or tabs.

A background keeper refills after each take (once the session just handed
out has had a moment to itself), one launch at a time, up to a target that
follows the creates this worker sees (tasks.warm_demand): BROKER_WARM_BROWSERS
when quiet, more under a stream or after a burst, never more than the free
slots and memory allow, and never taking the last free slot while a create
waits in line for a cold launch. Spares beyond the target (a quiet spell) end. A new spare is
offered as soon as CDP answers when no other is on offer; beside one that is,
it is offered once it has settled, or as soon as a create takes a spare. Every
few seconds the keeper asks each spare for a CDP answer: one that crashed or
stopped answering is ended and replaced. A take asks again first, so a dead browser is
never handed out. Warm launches run at a lower CPU priority than the sessions
beside them; a browser handed to a session gets the normal priority back.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from websocket import WebSocketException

from core.capacity import browsers_memory_allows, cores
from core.cdp import CdpConnection, CdpError
from core.ids import new_id
from core.store import Store
from tasks.running_browser import RunningBrowser
from tasks.pool import ChromiumPool, PoolFull
from tasks.warm_demand import WarmDemand

log = logging.getLogger(__name__)

#: Seconds between health checks of the spares (and refill attempts nothing woke up for).
CHECK_INTERVAL = 2.0
#: A spare that does not answer ``Browser.getVersion`` within this long is ended, never handed out.
PING_TIMEOUT = 2.0
#: After a failed launch, wait this long before the next try (Chromium missing or broken must not spin).
FAILURE_BACKOFF = 5.0
#: Prefix of a spare's key (and so of its profile folder's name).
KEY_PREFIX = "warm"
#: Warm browsers start at this niceness (the keeper thread's, which their processes inherit): a launch
#: ahead of need must not slow the sessions running beside it. A session's browser is set back to 0.
LAUNCH_NICENESS = 10
#: A refill waits this long after the last hand-over: the session just handed out is at its busiest (its
#: client connects and loads its first pages), and a launch beside it, even niced, made those loads ~50 ms
#: slower on two cores (A/B against cold sessions, alternating). Not while fewer than half a target of two or
#: more are ready: under creates a second apart the wait would postpone every refill, and a create that finds no
#: spare waits a whole launch, far longer than those 50 ms.
REFILL_SETTLE = 1.0
#: A spare launched while another is on offer is offered this long after CDP answers: its start-up goes on for
#: ~300 ms of CPU after that, and a session handed it then ran its first loads beside it (bench lifecycle, warm
#: browsers 2, interleaved: p50 219 ms offered at once, 201 ms a second later). The only spare is never held back,
#: nor one whose wait a take cuts short, nor one while fewer than half a target of two or more are ready (as for
#: REFILL_SETTLE): the pool then needs it. Held back under creates a second apart, each new spare waited for the
#: next take and the stock barely grew: 74 % of Poisson creates (mean 1 s apart, held 1 s) answered within 50 ms,
#: 91 % once a short stock is not held back (bench/arrivals.py, load average 2-7).
OFFER_SETTLE = 1.0
#: A create that cannot use a warm browser ends one for its slot only after waiting in line this long:
#: a worker with a free slot should take it first, and keep the warm browsers where they are.
EVICT_AFTER = 1.0


class Spare:
    """A ready warm browser and a CDP connection kept open to it, so asking whether it answers is one round trip.

    A crashed browser fails the call at once; a hung one lets it time out.
    """

    def __init__(self, browser: RunningBrowser) -> None:
        self.browser = browser
        self._lock = threading.Lock()
        self._conn: CdpConnection | None = CdpConnection(browser.ws_url(), timeout=PING_TIMEOUT)

    def answers(self) -> bool:
        with self._lock:
            if self._conn is None or self.browser.exited():
                return False
            try:
                self._conn.call("Browser.getVersion")
                return True
            except (OSError, CdpError, WebSocketException):
                return False

    def close(self) -> None:
        """Before a session gets the browser: its clients should find only their own connections."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.abort()


def set_priority(browser: RunningBrowser, niceness: int) -> None:
    """Every thread of every process of the browser, in one call: Linux keeps a niceness per thread, and
    ``PRIO_PGRP`` reaches each thread of the process group the launcher started the browser's tree in. Walking
    the tree's threads one by one instead took ~5 ms of the worker's CPU and GIL right in the hand-over (a warm
    create's p50 27.6 -> ~25 ms in a 25-create probe). Chromium's crash handler leaves the group; it only waits
    for crashes."""
    try:
        os.setpriority(os.PRIO_PGRP, browser.pgid, niceness)
    except (ProcessLookupError, PermissionError):
        pass


class WarmBrowsers:
    """Thread-safe: launch tasks take spares while the keeper thread refills and checks them."""

    def __init__(
        self, pool: ChromiumPool, store: Store, worker: Callable[[], str], floor: int, window: float,
        flags: Callable[[str], list[str]], launch_timeout: float, on_ready: Callable[[], None],
        prepare: Callable[[str, RunningBrowser], None],
    ) -> None:
        """``floor``: spares kept however quiet (0: none at all); ``window``: seconds of creates the target follows.
        ``flags``: a spare's launch flags, made for its key (its own forwarder). ``prepare``: what every browser gets
        before a client may reach it (its download guard), done for a spare before it is offered, so not during a
        create's hand-over."""
        self.pool = pool
        self.store = store
        self.worker = worker
        self.demand = WarmDemand(floor, window, settle=REFILL_SETTLE + OFFER_SETTLE)
        #: The spares wanted as of the keeper's last look (the heartbeat reports it).
        self.target = floor
        self.flags = flags
        self.launch_timeout = launch_timeout
        self.on_ready = on_ready
        self.prepare = prepare
        self._lock = threading.Lock()
        #: Ready spares, by key; their offers are in Redis unless a create took one.
        self._ready: dict[str, Spare] = {}
        #: Since when a ready spare's offer has been missing from Redis (taken by a create not arrived yet).
        self._unoffered_since: dict[str, float] = {}
        self._last_hand_over = 0.0
        self._wake = threading.Event()
        #: Set by each take (and by close): a spare waiting to settle is offered at once.
        self._taken = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        #: A spare whose offer was taken but whose launch never came (the create's web process died)
        #: is replaced after this long: the launch task would have expired by then.
        self.orphan_after = 2 * launch_timeout

    # -- what launch tasks call ------------------------------------------------
    def take(self, key: str, session_id: str) -> RunningBrowser | None:
        """The spare ``key`` (whose offer the create took), now the session's; None if it is gone or dead. The
        launch calls :meth:`handed_over` once the session has its answer (tasks/browser.py). With every session
        slot taken, the spare stays, offered again, and the create joins the line like any other."""
        if not self.pool.session_room(session_id):
            with self._lock:
                still_ready = key in self._ready
            if still_ready:
                self.store.warm.offer(self.worker(), key)
            return None
        return self._hand_over(key, self._pop(key), session_id)

    def take_any(self, session_id: str) -> RunningBrowser | None:
        """Any ready spare still on offer, for a create that came through the cold queue."""
        with self._lock:
            keys = list(self._ready)
        for key in keys:
            if not self.store.warm.withdraw(self.worker(), key):
                continue  # a create took this offer: its launch is on the way here
            spare = self._pop(key)
            if spare is not None:
                return self._hand_over(key, spare, session_id)
        return None

    def make_room(self, session_id: str) -> bool:
        """End a ready spare for the session's launch to take its slot; False if none, too early (``EVICT_AFTER``),
        or of no use (every session slot is taken: a spare's end frees none)."""
        if not self.pool.session_room(session_id) or self.store.sessions.waited_in_line(session_id) < EVICT_AFTER:
            return False
        with self._lock:
            keys = list(self._ready)
        for key in keys:
            if self.store.warm.withdraw(self.worker(), key):
                spare = self._pop(key)
                if spare is not None:
                    log.info("%s: ended to make room for a launch that needs its slot", key)
                    spare.close()
                    self.pool.release(key)
                    return True
        return False

    def ready_count(self) -> int:
        with self._lock:
            return len(self._ready)

    def room(self) -> int:
        """Spares a create from the cold queue could use: a plain one takes it, another ends it for its slot.

        Counted only once a create has waited in line ``EVICT_AFTER``, so a worker
        with only warm browsers to give leaves a new launch to workers with a free slot.
        """
        count = self.ready_count()
        if not count or not self.pool.session_room():
            return 0
        return count if self.store.sessions.waited_in_line() >= EVICT_AFTER else 0

    def offer_again(self) -> list[str]:
        """Offer every ready spare whose offer is not in the store; the keys offered.

        For when the store forgot this worker (tasks.lifecycle): Redis lost its data, offers included, or a
        reaper declared the worker lost and withdrew them. Without this a spare with no offer counts as taken by a
        create whose launch is on its way, and sits unused until ``orphan_after`` ends it. If such a launch does
        come, ``take`` hands the browser to one of the two creates and the other launches cold, as for any spare
        gone by the time its launch arrives.
        """
        offered = self.store.warm.offered_by(self.worker())
        again = []
        with self._lock:
            keys = [key for key in self._ready if key not in offered]
        for key in keys:
            with self._lock:
                if key not in self._ready:
                    continue  # taken meanwhile
                self._unoffered_since.pop(key, None)
            self.store.warm.offer(self.worker(), key)
            again.append(key)
        return again

    def saw_create(self) -> None:
        """A launch reached this worker (warm or cold): demand the target follows."""
        self.demand.saw_create(time.monotonic())
        self._wake.set()

    def wake(self) -> None:
        """Something changed (a take, a slot freed): the keeper looks at once rather than at its next check."""
        self._wake.set()

    # -- the keeper ---------------------------------------------------------------
    def start(self) -> None:
        if self.demand.floor <= 0:
            return
        self._thread = threading.Thread(target=self._keep, name="warm-browsers", daemon=True)
        self._thread.start()

    def close(self, timeout: float) -> None:
        """No more launches; every offer withdrawn, every spare ended (one still launching too, once it is up)."""
        self._closed.set()
        self._wake.set()
        self._taken.set()
        self._withdraw_offers()
        if self._thread is not None:
            self._thread.join(timeout)
            # A spare the keeper was making ready offered itself after the first withdrawal.
            self._withdraw_offers()
        with self._lock:
            spares = dict(self._ready)
            self._ready.clear()
        for key, spare in spares.items():
            spare.close()
            self.pool.release(key)

    def _withdraw_offers(self) -> None:
        try:
            self.store.warm.forget(self.worker())
        except Exception:  # Redis down at shutdown: the offers point at a worker that stops heartbeating
            log.exception("could not withdraw the warm browsers' offers")

    def _keep(self) -> None:
        if os.geteuid() == 0:  # only a privileged worker can set a session's browser back to 0
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LAUNCH_NICENESS)
        next_check = 0.0
        while not self._closed.is_set():
            backoff = 0.0
            try:
                if time.monotonic() >= next_check:
                    self._check()
                    self._shrink()
                    next_check = time.monotonic() + CHECK_INTERVAL
                if not self._refill():
                    backoff = FAILURE_BACKOFF
            except Exception:
                log.exception("warm browsers: check or refill failed (Redis unreachable?); retrying")
                backoff = FAILURE_BACKOFF
            wake_at = next_check
            if (settled_at := self._last_hand_over + REFILL_SETTLE) > time.monotonic():
                wake_at = min(wake_at, settled_at)
            self._wake.wait(max(backoff, wake_at - time.monotonic(), 0.0))
            self._wake.clear()

    def _refill(self) -> bool:
        """Launch spares up to the target; False after a failed launch.

        A stock short of half its target (creates came faster than before: a stream began, a burst) is refilled by
        as many launches at once as the worker has cores (``cores``), each a core's work for ~0.3 s: one at a time,
        the stock came back one launch time per spare. Creates that arrive before it is back still launch cold: a
        stream of one create a second that follows a quiet spell launched 3-4 of its first 23 cold either way
        (bench/arrivals.py's pattern, load 7-10)."""
        while not self._closed.is_set():
            target, ready = self._update_target(), self.ready_count()
            if target - ready <= 0:
                return True
            if time.monotonic() < self._last_hand_over + REFILL_SETTLE and ready >= target // 2:
                return True
            together = 1 if ready >= target // 2 else min(target - ready, cores())
            outcomes: list[bool | None] = []
            helpers = [threading.Thread(target=lambda: outcomes.append(self._launch_spare(target)), daemon=True,
                                        name="warm-launch") for _ in range(together - 1)]
            for helper in helpers:
                helper.start()
            outcomes.append(self._launch_spare(target))
            for helper in helpers:
                helper.join()
            if False in outcomes:
                return False
            if None in outcomes:
                return True
        return True

    def _launch_spare(self, target: int) -> bool | None:
        """One spare launched, settled and offered: True; False if its launch failed; None with no slot for it (or
        the keeper closing). Run on the keeper's thread or one it started, whose niceness it inherits."""
        key = new_id(KEY_PREFIX)
        try:
            self.pool.reserve(key, spare=True)
        except PoolFull:
            return None
        started = time.monotonic()
        try:
            browser = self.pool.acquire(key, self.flags(key), self.launch_timeout, spare=True)
        except Exception:
            self.pool.unreserve(key)
            log.exception("%s: a warm browser failed to start", key)
            return False
        self.demand.saw_launch(time.monotonic() - started)
        self._settle(key, target)
        if self._closed.is_set():
            self.pool.release(key)
            return None
        try:
            spare = Spare(browser)
        except (OSError, WebSocketException):
            log.exception("%s: a warm browser stopped answering as soon as it started", key)
            self.pool.release(key)
            return False
        self._make_ready(key, spare)
        return True

    def _update_target(self) -> int:
        """The ceiling is the slots spares hold or could take (a free session slot, or one of BROKER_WARM_MAX; less
        one per create in line for a cold launch) and what memory allows beside the browsers already up."""
        ready = self.ready_count()
        room = min(self.pool.free_for_spares() - self.store.sessions.waiting_for_launch(), browsers_memory_allows())
        self.target = self.demand.target(time.monotonic(), ceiling=ready + max(0, room))
        return self.target

    def _shrink(self) -> None:
        """Spares beyond the target (creates slowed down, or slots are needed) end, the longest ready first."""
        extra = self.ready_count() - self._update_target()
        with self._lock:
            keys = list(self._ready)[:max(0, extra)]
        for key in keys:
            if self.store.warm.withdraw(self.worker(), key):
                spare = self._pop(key)
                if spare is not None:
                    log.info("%s: ended, beyond the %d warm browsers wanted now", key, self.target)
                    spare.close()
                    self.pool.release(key)

    def _settle(self, key: str, target: int) -> None:
        """Holds a new spare back for OFFER_SETTLE while at least half the target (and one) is on offer; a take
        ends the wait."""
        self._taken.clear()
        ready = self.ready_count()
        if self._closed.is_set() or not ready or ready < target // 2:
            return
        log.info("%s: started; offered in %.1f s unless a spare is taken first", key, OFFER_SETTLE)
        if self._taken.wait(OFFER_SETTLE) and not self._closed.is_set():
            log.info("%s: a spare was taken while this one settled; offered now", key)

    def _make_ready(self, key: str, spare: Spare) -> None:
        """Held as ready first: if Redis fails from here on, the checks end it as an offer never made."""
        with self._lock:
            self._ready[key] = spare
        self.prepare(key, spare.browser)
        self.store.warm.offer(self.worker(), key)
        log.info("%s: warm browser ready", key)
        self.on_ready()

    def _check(self) -> None:
        """End spares that stopped answering, and those whose offer a create took but never used."""
        with self._lock:
            ready = dict(self._ready)
        offered = self.store.warm.offered_by(self.worker())
        now = time.monotonic()
        for key, spare in ready.items():
            with self._lock:
                if key in offered:
                    self._unoffered_since.pop(key, None)
                    orphaned = False
                else:
                    orphaned = now - self._unoffered_since.setdefault(key, now) > self.orphan_after
            if orphaned or not spare.answers():
                self._end(key, "its offer was taken but its launch never came" if orphaned else "it stopped answering")

    def _end(self, key: str, why: str) -> None:
        self.store.warm.withdraw(self.worker(), key)
        spare = self._pop(key)
        if spare is not None:
            log.warning("%s: warm browser ended and replaced: %s", key, why)
            spare.close()
            self.pool.release(key)

    def _pop(self, key: str) -> Spare | None:
        with self._lock:
            self._unoffered_since.pop(key, None)
            return self._ready.pop(key, None)

    def handed_over(self) -> None:
        """Called by the launch once the create that took a spare has its answer: the keeper refills (after
        ``REFILL_SETTLE``) and a spare settling beside this one is offered. Not at the take itself: the keeper's
        look at the pool and Redis then ran beside the hand-over's own write, on the worker's GIL and cores, and
        the create waited for both."""
        self._taken.set()
        self._wake.set()

    def _hand_over(self, key: str, spare: Spare | None, session_id: str) -> RunningBrowser | None:
        """The hand-over's time is recorded before the keeper is woken (:meth:`handed_over`): woken before, it would
        see the last one's time and launch a spare right away, beside the session's first page loads (measured: a
        first same-site load 75-100 ms instead of 55-70, a cross-site one ~300 ms instead of ~200).

        The browser leaves its launch niceness before it is asked whether it answers: niced, its answer waited
        behind everything else on the host's cores (the ping's p50 ~2.0 -> ~1.7 ms).
        """
        if spare is None:
            self._wake.set()
            return None
        set_priority(spare.browser, 0)
        answered = spare.answers()
        spare.close()
        if not answered:
            log.warning("%s: warm browser did not answer; ended, not handed out", key)
            threading.Thread(target=self.pool.release, args=(key,), daemon=True).start()
            self._wake.set()
            return None
        self._last_hand_over = time.monotonic()
        try:
            return self.pool.rekey(key, session_id)
        except PoolFull:
            log.info("%s: the last session slot was taken meanwhile; ended, not handed out", key)
            threading.Thread(target=self.pool.release, args=(key,), daemon=True).start()
            self._wake.set()
            return None
