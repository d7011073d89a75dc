"""Warm browsers on a started worker object with fake browsers (tasks/warm.py through tasks/worker.py): refill, the
hand-over to a create that took an offer, and a dead spare never handed out. tests/e2e/test_warm.py keeps the
same promises with real Chromium."""
from __future__ import annotations

import time

from core.states import Status
from tasks import warm
from tasks.browser import launch_session
from tests.support.records import new_session
from tests.unit.worker_fakes import slow_log_writes


def test_the_keeper_fills_up_to_the_wanted_count_and_offers_each_spare(make_worker):
    worker = make_worker(started=True, BROKER_WARM_BROWSERS=2, BROKER_POOL_SIZE=3)

    _wait(lambda: len(worker.store.warm.offered_by(worker.name)) == 2, "two warm browsers on offer")

    # Spares take no session slot while slots of their own (BROKER_WARM_MAX, as many as the pool's by default) are free.
    assert worker.pool.counts() == {"slots": 3, "spareSlots": 3, "free": 3, "warm": 2, "running": 0, "launching": 0}
    assert set(worker.store.warm.offered_by(worker.name)) == set(worker.pool.keys())
    # Each spare got what every browser gets before a client may reach it: its forwarder and its download guard.
    for key in worker.pool.keys():
        assert worker.forwarders.port(key) is not None and key in worker.download_guards._guards


def test_a_create_that_took_an_offer_gets_that_browser_and_the_keeper_refills(make_worker):
    worker = make_worker(started=True, BROKER_WARM_BROWSERS=1)
    _wait(lambda: worker.store.warm.offered_by(worker.name), "a warm browser on offer")
    offer = worker.store.warm.take()
    assert offer is not None and offer.worker == worker.name
    spare = worker.pool.get(offer.key)
    session_id = new_session(worker.store)

    launch_session(worker, session_id, warm=offer.key)

    record = worker.store.sessions.get(session_id)
    assert (record["status"], record["worker"]) == (Status.RUNNING, worker.queue)
    assert worker.pool.get(session_id) is spare and worker.pool.get(offer.key) is None
    assert record["browserWsUrl"] == spare.ws_url()
    # The browser's forwarder and download guard follow it to the session; its PID file too.
    assert worker.forwarders.port(session_id) is not None and worker.forwarders.port(offer.key) is None
    assert session_id in worker.download_guards._guards
    assert (worker.pool.root / f"{session_id}.pids").exists()
    assert len(worker.pool.launcher.started) == 1, "no launch for the create"
    _wait(lambda: worker.store.warm.offered_by(worker.name), "a new warm browser on offer after the hand-over")
    assert worker.pool.counts()["running"] == 1 and worker.pool.counts()["warm"] == 1


def test_a_warm_hand_over_runs_the_session_only_once_its_log_holds_its_created_event(make_worker, monkeypatch):
    """As tests/unit/test_worker_launch.py checks for a cold launch: every write of the log here takes 0.3 s."""
    worker = make_worker(started=True, BROKER_WARM_BROWSERS=1)
    _wait(lambda: worker.store.warm.offered_by(worker.name), "a warm browser on offer")
    offer = worker.store.warm.take()
    session_id = new_session(worker.store)
    slow_log_writes(worker, monkeypatch)

    launch_session(worker, session_id, warm=offer.key)

    assert worker.store.sessions.get(session_id)["status"] == Status.RUNNING
    logged, _ = worker.store.session_events.page(session_id, None, 10)
    assert [event["type"] for event in logged] == ["created"]


def test_a_spare_that_died_is_never_handed_out_and_is_replaced(make_worker):
    worker = make_worker(started=True, BROKER_WARM_BROWSERS=1)
    _wait(lambda: worker.store.warm.offered_by(worker.name), "a warm browser on offer")
    (dead_key,) = worker.pool.keys()
    dead = worker.pool.get(dead_key)
    dead.handle.kill()
    dead.handle.wait(5)
    session_id = new_session(worker.store)

    launch_session(worker, session_id)  # through the cold queue: it would take any spare on offer

    browser = worker.pool.get(session_id)
    assert browser is not None and browser is not dead, "the session launched a browser of its own"
    assert worker.store.sessions.get(session_id)["status"] == Status.RUNNING
    _wait(lambda: worker.pool.get(dead_key) is None, "the dead spare ended")
    _wait(lambda: worker.store.warm.offered_by(worker.name), "a new warm browser on offer")
    assert dead_key not in worker.store.warm.offered_by(worker.name)


def test_creates_raise_the_spares_up_to_the_free_slots_and_a_quiet_window_brings_them_back_to_the_floor(
        make_worker, monkeypatch):
    monkeypatch.setattr(warm, "OFFER_SETTLE", 0.1)
    monkeypatch.setattr(warm, "CHECK_INTERVAL", 0.2)
    worker = make_worker(started=True, BROKER_WARM_BROWSERS=1, BROKER_POOL_SIZE=2, BROKER_WARM_MAX=2,
                         BROKER_WARM_WINDOW=5)
    _wait(lambda: len(worker.store.warm.offered_by(worker.name)) == 1, "the floor's warm browser on offer")

    for _ in range(6):  # a burst of launches reaching this worker (tasks/worker.py's task_received)
        worker.warm.saw_create()

    # Six creates want six spares; two session slots and two of the spares' own allow four.
    _wait(lambda: len(worker.store.warm.offered_by(worker.name)) == 4 and worker.warm.target == 4,
          "a spare in every slot")
    _wait(lambda: len(worker.store.warm.offered_by(worker.name)) == 1, "back at the floor after a quiet window")
    # An extra spare's offer is withdrawn first, then its browser ended: a busy machine showed the count between.
    _wait(lambda: worker.pool.counts()["warm"] == 1 and len(worker.pool.launcher.stopped) == 3,
          "the three extra spares ended")
    assert worker.warm.target == 1


def test_a_short_stock_is_refilled_by_a_launch_per_core_at_once(make_worker, monkeypatch):
    import threading

    monkeypatch.setattr(warm, "OFFER_SETTLE", 0.1)
    monkeypatch.setattr(warm, "cores", lambda: 2)
    worker = make_worker(started=True, BROKER_WARM_BROWSERS=1, BROKER_POOL_SIZE=4, BROKER_WARM_WINDOW=5)
    _wait(lambda: len(worker.store.warm.offered_by(worker.name)) == 1, "the floor's warm browser on offer")
    launcher, lock = worker.pool.launcher, threading.Lock()
    start, running, most = launcher.start, [0], [0]

    def slow_start(*args, **kwargs):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            time.sleep(0.3)  # a launch's time, so that two at once overlap
            return start(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(launcher, "start", slow_start)
    for _ in range(6):  # a burst: six spares wanted, one ready
        worker.warm.saw_create()
    worker.warm.wake()

    _wait(lambda: len(worker.store.warm.offered_by(worker.name)) >= 4, "the stock refilled")
    assert most[0] == 2, f"{most[0]} launches at once, not one per core"


def test_a_spare_is_not_handed_to_a_create_past_the_session_slots_and_stays_on_offer(make_worker):
    """BROKER_POOL_SIZE holds the sessions, spares or not: with every session slot taken, a create that took an offer
    joins the line (a cold launch it waits for), and the spare is offered again."""
    from core.dispatch import LAUNCH_QUEUE

    worker = make_worker(started=True, BROKER_WARM_BROWSERS=2, BROKER_POOL_SIZE=1, BROKER_WARM_MAX=1)
    _wait(lambda: len(worker.store.warm.offered_by(worker.name)) == 2, "two warm browsers on offer")
    first, second = worker.store.warm.take(), worker.store.warm.take()
    running, waiting = new_session(worker.store), new_session(worker.store)
    launch_session(worker, running, warm=first.key)

    launch_session(worker, waiting, warm=second.key)

    assert worker.store.sessions.get(running)["status"] == Status.RUNNING
    assert worker.store.sessions.get(waiting)["status"] == Status.PENDING
    assert worker.pool.get(waiting) is None and worker.pool.get(second.key) is not None
    assert second.key in worker.store.warm.offered_by(worker.name)
    assert worker.store.sessions.waiting_for_launch() == 1
    assert worker.store.redis.llen(LAUNCH_QUEUE) == 1, "its launch sent to the shared queue"
    assert worker.pool.counts()["free"] == 0


def test_a_create_that_took_a_spare_counts_as_warm_and_a_cold_one_as_cold(make_worker):
    from core.store.metrics import CREATE_PATHS

    worker = make_worker(started=True, BROKER_WARM_BROWSERS=1)
    _wait(lambda: worker.store.warm.offered_by(worker.name), "a warm browser on offer")
    offer = worker.store.warm.take()
    launch_session(worker, new_session(worker.store), warm=offer.key)
    cold = new_session(worker.store)
    worker.intake.received(_NoConsumer(), cold)
    launch_session(worker, cold)  # the keeper has not refilled yet (it lets the hand-over settle first)

    assert worker.store.metrics.counter(CREATE_PATHS) == {"warm": 1, "cold": 1}


def test_a_create_that_waited_in_line_then_took_a_spare_counts_as_queued_with_its_wait(make_worker):
    """Every session slot taken, the create waits in line; when a slot frees, its launch takes a spare. It stood in
    the queue, so it is ``queued`` and its wait is observed, as a cold launch's is."""
    from core.store import keys
    from core.store.metrics import ALL, CREATE_PATHS, LAUNCH_WAIT_SECONDS
    from tasks.intake import QUEUED_AFTER

    worker = make_worker(started=True, BROKER_WARM_BROWSERS=1)
    _wait(lambda: worker.store.warm.offered_by(worker.name), "a warm browser on offer")
    waited = new_session(worker.store)
    worker.store.redis.zadd(keys.LAUNCH_LINE, {waited: time.time() - 2 * QUEUED_AFTER})
    worker.intake.received(_NoConsumer(), waited)

    launch_session(worker, waited)

    assert worker.pool.get(waited) is not None and len(worker.pool.launcher.started) == 1, "the spare, no launch"
    assert worker.store.metrics.counter(CREATE_PATHS) == {"queued": 1}
    assert worker.store.metrics.histogram(LAUNCH_WAIT_SECONDS, ALL, (0.5, 1.0, 2.0)).count == 1


def test_a_create_with_no_browser_options_keeps_the_options_connection_its_warm_browser_opened(make_worker):
    """The hand-over then opens no connection; a create with options of its own gets a connection of its own, and
    the warm one is closed."""
    worker = make_worker(started=True, BROKER_WARM_BROWSERS=1)
    _wait(lambda: worker.store.warm.offered_by(worker.name), "a warm browser on offer")
    offer = worker.store.warm.take()
    prepared = worker.browser_options._sessions[offer.key]
    plain = new_session(worker.store)

    launch_session(worker, plain, warm=offer.key)

    assert worker.browser_options._sessions[plain] is prepared and prepared.open()
    assert offer.key not in worker.browser_options._sessions

    _wait(lambda: worker.store.warm.offered_by(worker.name), "another warm browser on offer")
    offer = worker.store.warm.take()
    prepared = worker.browser_options._sessions[offer.key]
    sized = new_session(worker.store, browserOptions={"viewport": {"width": 800, "height": 600}})

    launch_session(worker, sized, warm=offer.key)

    applied = worker.browser_options._sessions[sized]
    assert applied is not prepared and applied.options["viewport"]["width"] == 800
    _wait(lambda: not prepared.open(), "the warm browser's own options connection closed")


class _NoConsumer:
    def cancel_task_queue(self, queue: str) -> None:
        pass


def _wait(condition, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.05)
