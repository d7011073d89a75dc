"""Every move of the session state machine, allowed and refused, and what each does to the indexes."""
from __future__ import annotations

import time

import pytest

from core.ids import new_id, now_ms
from core.session_machine import SessionMachine
from core.states import CLAIM, MOVES, Deadline, Effect, Status, StopReason
from core.store import Store, keys
from tests.support.announcements import announcements
from tests.support.processes import wait_until
from tests.support.records import PROJECT, WORKER, new_session, running_session, status_of
from tests.support.settings import config_with


# -- the table ------------------------------------------------------------------
@pytest.mark.parametrize("move", MOVES, ids=lambda m: m.name)
@pytest.mark.parametrize("start", list(Status), ids=str)
def test_every_move_happens_from_its_sources_and_nowhere_else(store, move, start):
    """From a create that still waits; or, for a move that needs it, one whose deadline has passed.

    The stop is announced by the move that takes a session out of running, and by no other: a stopping session's
    clients heard it when it left running, and no move that did not happen announces anything.
    """
    session_id = new_session(store)
    if move.deadline is Deadline.PASSED:
        store.redis.delete(keys.create_deadline(session_id))
    store.redis.set(keys.session(session_id), store.redis.get(keys.session(session_id)).replace(
        '"status": "pending"', f'"status": "{start.value}"'))
    before = store.sessions.get(session_id)
    with announcements(store) as heard:
        result = store.sessions.move(session_id, move, {"worker": WORKER, "createdMs": before["createdMs"],
                                                        "stopReason": "deleted"})
    if start in move.sources:
        assert result is not None and result["status"] == move.target
        assert status_of(store, session_id) == move.target
    else:
        assert result is None
        assert store.sessions.get(session_id) == before
    leaves_running = start == Status.RUNNING and start in move.sources and move.target != Status.RUNNING
    moves_away = start in move.sources and Effect.ANNOUNCE_MOVE in move.effects
    assert heard == ([{"sessionId": session_id, "reason": "deleted"}] if leaves_running else
                     [{"sessionId": session_id, "reason": "moving", "code": 1012}] if moves_away else [])


def test_a_move_on_a_session_that_does_not_exist_writes_nothing(store):
    assert store.sessions.move("ses_missing", CLAIM, {"worker": WORKER}) is None
    assert not store.redis.exists(keys.session("ses_missing"))


# -- what each move does ------------------------------------------------------------
def test_a_pending_record_expires_on_its_own_and_a_running_one_does_not(store, machine):
    session_id = new_session(store)
    assert 0 < store.redis.ttl(keys.session(session_id)) <= store.config.create_lifetime
    machine.claim(session_id, WORKER)
    assert store.redis.ttl(keys.session(session_id)) > 0
    machine.ready(session_id, expiresEpoch=time.time() + 60)
    assert store.redis.ttl(keys.session(session_id)) == -1


def test_ready_indexes_the_session_for_lists_its_worker_and_its_expiry(store, machine):
    session_id = running_session(machine, idleTimeout=30)
    assert store.sessions.on_worker(WORKER) == [session_id]
    assert store.redis.zscore(keys.SESSION_EXPIRIES, session_id) is not None
    assert store.redis.zscore(keys.SESSION_IDLE, session_id) is not None
    page, total = store.sessions.page(PROJECT, "running", 0, 10)
    assert [r["id"] for r in page] == [session_id] and total == 1


def test_request_stop_records_the_reason_and_sends_the_stop_to_the_owning_worker(store, machine, dispatcher):
    session_id = running_session(machine)
    record = machine.stop(session_id, StopReason.DELETED)
    assert record["status"] == Status.STOPPING and record["stopReason"] == "deleted"
    assert dispatcher.stops == [(WORKER, session_id, "deleted")]


def test_a_second_stop_request_sends_no_second_task(store, machine, dispatcher):
    session_id = running_session(machine)
    machine.stop(session_id, StopReason.DELETED)
    assert machine.stop(session_id, StopReason.TIMEOUT) is None
    assert len(dispatcher.stops) == 1
    assert store.sessions.get(session_id)["stopReason"] == "deleted"


def test_finish_stop_frees_every_hold_and_keeps_the_record_for_the_retention(store, machine):
    context_id, proxy_id = new_id("ctx"), new_id("prx")
    store.contexts.create({"id": context_id, "project": PROJECT})
    store.proxies.create({"id": proxy_id, "project": PROJECT, "createdMs": now_ms()})
    session_id = new_session(store, contextId=context_id, proxyId=proxy_id, idleTimeout=30)
    assert store.contexts.claim(context_id, session_id) is None
    assert store.proxies.claim(proxy_id, PROJECT, session_id)
    assert store.projects.claim_slot(PROJECT, session_id, limit=5)
    machine.claim(session_id, WORKER)
    machine.ready(session_id, expiresEpoch=time.time() + 60)
    store.sessions.client_connected(session_id, "c1", lease=30)

    record = machine.finish_stop(session_id, StopReason.DELETED, None)

    assert record["status"] == Status.STOPPED and record["stoppedAt"] and record["stopReason"] == "deleted"
    assert store.sessions.on_worker(WORKER) == []
    assert store.redis.zscore(keys.SESSION_EXPIRIES, session_id) is None
    assert store.redis.zscore(keys.SESSION_IDLE, session_id) is None
    assert not store.redis.exists(keys.session_clients(session_id))
    assert not store.redis.exists(keys.context_holder(context_id))
    assert store.proxies.delete(proxy_id) == []
    assert store.redis.zcard(keys.project_live(PROJECT)) == 0
    assert 0 < store.redis.ttl(keys.session(session_id)) <= store.config.sessions.retention
    stopped, _ = store.sessions.page(PROJECT, "stopped", 0, 10)
    assert [r["id"] for r in stopped] == [session_id]
    assert store.sessions.page(PROJECT, "running", 0, 10) == ([], 0)


def test_finish_stop_never_releases_a_context_hold_that_is_not_its_own(store, machine):
    context_id = new_id("ctx")
    store.contexts.create({"id": context_id, "project": PROJECT})
    session_id = running_session(machine, contextId=context_id)
    store.redis.set(keys.context_holder(context_id), '{"holder": "ses_other", "since": %f}' % time.time())
    machine.finish_stop(session_id, StopReason.DELETED, None)
    assert store.redis.exists(keys.context_holder(context_id))


def test_abandon_gives_back_the_context_proxy_and_project_slot(store, machine):
    context_id, proxy_id = new_id("ctx"), new_id("prx")
    store.contexts.create({"id": context_id, "project": PROJECT})
    store.proxies.create({"id": proxy_id, "project": PROJECT, "createdMs": now_ms()})
    session_id = new_session(store, contextId=context_id, proxyId=proxy_id)
    store.contexts.claim(context_id, session_id)
    store.proxies.claim(proxy_id, PROJECT, session_id)
    store.projects.claim_slot(PROJECT, session_id, limit=1)
    assert machine.abandon(session_id)["status"] == Status.ABANDONED
    assert store.contexts.claim(context_id, "ses_next") is None
    assert store.projects.claim_slot(PROJECT, "ses_next", limit=1)
    assert store.proxies.delete(proxy_id) == []


def test_a_lost_session_is_stopped_as_worker_lost_and_its_clients_are_told(store, machine):
    session_id = running_session(machine)
    pubsub = store.redis.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(keys.STOP_CHANNEL)
    pubsub.get_message(timeout=1)
    record = machine.lose(session_id)
    assert record["status"] == Status.STOPPED and record["stopReason"] == "worker_lost"
    message = pubsub.get_message(timeout=2)
    assert message and session_id in message["data"]
    assert machine.lose(session_id) is None


def test_the_create_and_its_give_up_race_and_exactly_one_wins(store, machine):
    session_id = new_session(store)
    assert machine.claim(session_id, WORKER) is not None
    assert machine.abandon(session_id) is not None
    assert machine.ready(session_id, expiresEpoch=time.time() + 60) is None
    assert status_of(store, session_id) == Status.ABANDONED


# -- the create's deadline (issue 25 item 1: a create that answered an error never launches later) -----------------
def short_lived(store: Store, create_wait: float = 0.3, launch_timeout: float = 0.3) -> SessionMachine:
    """The same Redis, with deadlines a test can outlast."""
    config = config_with(REDIS_URL=store.config.redis_url, BROKER_CREATE_WAIT=create_wait, BROKER_LAUNCH_TIMEOUT=launch_timeout)
    return SessionMachine(Store(config, client=store.redis))


def holding_session(store: Store) -> tuple[str, str, str]:
    """A pending session holding a context, a proxy and the project's one slot, as a create leaves it."""
    context_id, proxy_id = new_id("ctx"), new_id("prx")
    store.contexts.create({"id": context_id, "project": PROJECT})
    store.proxies.create({"id": proxy_id, "project": PROJECT, "createdMs": now_ms()})
    session_id = new_session(store, contextId=context_id, proxyId=proxy_id)
    assert store.contexts.claim(context_id, session_id) is None
    assert store.proxies.claim(proxy_id, PROJECT, session_id)
    assert store.projects.claim_slot(PROJECT, session_id, limit=1)
    return session_id, context_id, proxy_id


def test_past_its_create_s_deadline_a_session_is_never_claimed_nor_handed_over_and_a_launch_drops_it(store):
    """The create could not write its give-up (Redis down): the deadline written with the record stands for it."""
    short = short_lived(store)
    session_id, context_id, proxy_id = holding_session(short.store)
    assert short.drop(session_id) is None, "a create still waiting is not dropped"
    wait_until(lambda: not short.store.sessions.create_waits(session_id), 5, message="the create's deadline")

    assert short.claim(session_id, WORKER) is None
    assert short.hand_over(session_id, WORKER, expiresEpoch=time.time() + 60, browserWsUrl="ws://x") is None
    assert status_of(store, session_id) == Status.PENDING

    assert short.drop(session_id)["status"] == Status.ABANDONED
    assert store.contexts.claim(context_id, "ses_next") is None
    assert store.projects.claim_slot(PROJECT, "ses_next", limit=1)
    assert store.proxies.delete(proxy_id) == []
    assert store.sessions.waiting_for_launch() == 0
    assert short.drop(session_id) is None


def test_a_claim_gives_the_launch_a_launch_timeout_and_no_ready_passes_it(store):
    short = short_lived(store, create_wait=30, launch_timeout=0.3)
    session_id = new_session(short.store)
    assert 25_000 < store.redis.pttl(keys.create_deadline(session_id)) <= 30_000
    assert short.claim(session_id, WORKER)["status"] == Status.LAUNCHING
    assert 0 < store.redis.pttl(keys.create_deadline(session_id)) <= 300
    wait_until(lambda: not short.store.sessions.create_waits(session_id), 5, message="the launch's deadline")

    assert short.ready(session_id, expiresEpoch=time.time() + 60, browserWsUrl="ws://x") is None
    assert status_of(store, session_id) == Status.LAUNCHING
    assert short.store.sessions.next_launch_event(session_id, timeout=1) is None, "the create heard of no ready"
    assert short.drop(session_id)["status"] == Status.ABANDONED


def test_a_move_whose_commit_comes_after_the_deadline_is_refused_by_redis(store, monkeypatch):
    """Read before the deadline, committed after it (Redis stalled, or the mover paused, between the two): Redis
    fails the EXEC on the expired WATCHed deadline, and the move, judged again, is refused."""
    short = short_lived(store, create_wait=0.3)
    session_id = new_session(short.store)
    effect = short.store.sessions._effect
    paused = []

    def held_up(*args):
        if not paused:
            paused.append(store.redis.pttl(keys.create_deadline(session_id)))
            time.sleep(0.5)
        return effect(*args)

    monkeypatch.setattr(short.store.sessions, "_effect", held_up)
    assert short.claim(session_id, WORKER) is None
    assert paused and paused[0] > 0, "the claim read its session before the deadline"
    assert status_of(store, session_id) == Status.PENDING


def test_the_create_s_own_give_up_ends_its_deadline(store, machine):
    abandoned, running = new_session(store), running_session(machine)
    machine.abandon(abandoned)
    assert not store.sessions.create_waits(abandoned) and not store.sessions.create_waits(running)
    assert machine.drop(abandoned) is None


# -- holds ----------------------------------------------------------------------
def test_a_context_held_by_a_delete_in_progress_cannot_be_claimed(store):
    context_id = new_id("ctx")
    assert store.contexts.claim(context_id, "del_123") is None
    assert store.contexts.claim(context_id, "ses_new") == "del_123"


def test_a_context_claimed_by_a_create_not_yet_stored_cannot_be_claimed(store):
    context_id = new_id("ctx")
    assert store.contexts.claim(context_id, "ses_first") is None
    assert store.contexts.claim(context_id, "ses_second") == "ses_first"


def test_a_hold_without_a_record_lapses_after_a_create_lifetime(store):
    context_id = new_id("ctx")
    stale = time.time() - store.config.create_lifetime - 1
    store.redis.set(keys.context_holder(context_id), '{"holder": "ses_crashed", "since": %f}' % stale)
    assert store.contexts.claim(context_id, "ses_new") is None


def test_a_hold_of_a_stopped_session_is_free(store, machine):
    context_id = new_id("ctx")
    session_id = running_session(machine, contextId=context_id)
    store.redis.set(keys.context_holder(context_id), '{"holder": "%s", "since": %f}' % (session_id, time.time()))
    machine.lose(session_id)
    assert store.contexts.claim(context_id, "ses_new") is None


# -- idle clients ------------------------------------------------------------------
def test_clients_whose_lease_ran_out_no_longer_count(store, machine):
    session_id = running_session(machine, idleTimeout=1)
    store.sessions.client_connected(session_id, "dead-web-process", lease=0.2)
    assert store.sessions.connected_clients(session_id) == 1
    wait_until(lambda: store.sessions.connected_clients(session_id) == 0, 5, message="the lease to run out")


def test_an_idle_session_is_taken_once_only_when_no_client_holds_it(store, machine):
    session_id = running_session(machine, idleTimeout=1)
    store.sessions.client_connected(session_id, "c1", lease=30)
    store.redis.zadd(keys.SESSION_IDLE, {session_id: time.time() - 1})
    assert store.sessions.take_idle() == []
    assert store.redis.zscore(keys.SESSION_IDLE, session_id) > time.time()
    store.sessions.client_disconnected(session_id, "c1", idle_timeout=1)
    store.redis.zadd(keys.SESSION_IDLE, {session_id: time.time() - 1})
    assert store.sessions.take_idle() == [session_id]
    assert store.sessions.take_idle() == []


def test_renewed_leases_keep_clients_counted(store, machine):
    session_id = running_session(machine)
    store.sessions.client_connected(session_id, "renewed", lease=0.3)
    store.sessions.client_connected(session_id, "not-renewed", lease=0.3)
    store.sessions.renew_clients([(session_id, "renewed")], lease=30)
    wait_until(lambda: store.sessions.connected_clients(session_id) < 2, 5, message="the unrenewed lease to run out")
    assert store.redis.zrange(keys.session_clients(session_id), 0, -1) == ["renewed"]


# -- lists ---------------------------------------------------------------------
def test_lists_page_newest_first_with_the_total(store, machine):
    """Lists order by creation time in ms; sessions made in the same ms keep Redis's order by id (stable across
    pages, but not their creation order), so these are made a few ms apart: made back to back, two sometimes
    shared a ms and the test failed about half the time on a loaded machine."""
    ids = []
    for _ in range(5):
        ids.append(running_session(machine))
        time.sleep(0.003)
    page, total = store.sessions.page(PROJECT, None, 0, 2)
    assert total == 5 and [r["id"] for r in page] == ids[::-1][:2]
    page, _ = store.sessions.page(PROJECT, None, 4, 2)
    assert [r["id"] for r in page] == [ids[0]]


def test_a_list_prunes_ids_whose_record_expired(store, machine):
    session_id = running_session(machine)
    store.redis.delete(keys.session(session_id))
    assert store.sessions.page(PROJECT, None, 0, 10) == ([], 0)


# -- warm browsers: the hand-over move, the line of cold creates, offers --------------------
def test_hand_over_takes_a_pending_session_straight_to_running_and_indexes_it(store, machine):
    session_id = new_session(store, idleTimeout=30)
    record = machine.hand_over(session_id, WORKER, expiresEpoch=time.time() + 60, browserWsUrl="ws://x")
    assert record["status"] == Status.RUNNING and record["worker"] == WORKER
    assert store.redis.ttl(keys.session(session_id)) == -1
    assert store.sessions.on_worker(WORKER) == [session_id]
    assert store.redis.zscore(keys.SESSION_EXPIRIES, session_id) is not None
    assert machine.abandon(session_id) is None


def test_the_waiting_create_hears_a_running_move_from_the_move_itself_and_never_of_one_that_did_not_happen(
        store, machine):
    handed = new_session(store)
    record = machine.hand_over(handed, WORKER, expiresEpoch=time.time() + 60, browserWsUrl="ws://x")
    assert store.sessions.next_launch_event(handed, timeout=1) == {"event": "ready", "session": record}
    launched = new_session(store)
    machine.claim(launched, WORKER)
    record = machine.ready(launched, expiresEpoch=time.time() + 60, browserWsUrl="ws://x")
    assert store.sessions.next_launch_event(launched, timeout=1) == {"event": "ready", "session": record}

    gave_up = new_session(store)
    machine.abandon(gave_up)
    assert machine.hand_over(gave_up, WORKER, expiresEpoch=time.time() + 60) is None
    assert not store.redis.exists(keys.launch_events(gave_up))


def test_a_cold_create_waits_in_line_until_claimed_or_abandoned(store, machine):
    claimed, abandoned, warm = new_session(store), new_session(store), new_id("ses")
    store.sessions.create({"id": warm, "project": PROJECT, "status": Status.PENDING.value, "createdMs": now_ms()},
                          in_line=False)
    assert store.sessions.waiting_for_launch() == 2
    assert store.sessions.waited_in_line(claimed) > 0 and store.sessions.waited_in_line(warm) == 0
    machine.claim(claimed, WORKER)
    machine.abandon(abandoned)
    assert store.sessions.waiting_for_launch() == 0 and store.sessions.waited_in_line() == 0


def test_only_a_pending_session_joins_the_line(store, machine):
    session_id = new_id("ses")
    store.sessions.create({"id": session_id, "project": PROJECT, "status": Status.PENDING.value,
                           "createdMs": now_ms()}, in_line=False)
    assert store.sessions.join_line(session_id)
    machine.claim(session_id, WORKER)
    assert not store.sessions.join_line(session_id)
    assert not store.sessions.join_line("ses_missing")
    assert store.sessions.waiting_for_launch() == 0


def test_a_create_that_crashed_in_line_stops_counting_after_a_create_wait(store):
    session_id = new_session(store)
    store.redis.zadd(keys.LAUNCH_LINE, {session_id: time.time() - store.config.web.create_wait - 1})
    assert store.sessions.waiting_for_launch() == 0


def test_each_warm_offer_goes_to_one_taker_and_never_to_a_silent_worker(store):
    store.workers.heartbeat("live@w", {})
    store.redis.zadd(keys.WORKERS, {"silent@w": time.time() - store.config.worker.ttl - 1})
    store.warm.offer("silent@w", "warm_a")
    store.warm.offer("live@w", "warm_b")
    store.warm.offer("live@w", "warm_c")
    assert store.warm.offered_by("live@w") == {"warm_b", "warm_c"}
    first, second = store.warm.take(), store.warm.take()
    assert {(first.worker, first.key), (second.worker, second.key)} == {("live@w", "warm_b"), ("live@w", "warm_c")}
    assert store.warm.take() is None
    assert store.redis.llen(keys.WARM_OFFERS) == 0


def test_a_withdrawn_offer_cannot_be_taken_and_a_taken_one_cannot_be_withdrawn(store):
    store.workers.heartbeat("w@w", {})
    store.warm.offer("w@w", "warm_a")
    store.warm.offer("w@w", "warm_b")
    assert store.warm.withdraw("w@w", "warm_a")
    assert store.warm.take().key == "warm_b"
    assert not store.warm.withdraw("w@w", "warm_b")
    store.warm.offer("w@w", "warm_c")
    store.warm.forget("w@w")
    assert store.warm.take() is None
