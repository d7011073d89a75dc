"""Reaping lost workers from any process: one reaper per lost worker, never right after an outage, never a live one."""
from __future__ import annotations

import time

import pytest
from redis.exceptions import RedisError

from core.reaping import LostWorkerReaper
from core.session_machine import SessionMachine
from core.store import Store
from tests.support.processes import free_port
from tests.support.records import WORKER, running_session, status_of
from tests.support.settings import config_with

TTL = 0.3
NAME = WORKER.removeprefix("browsers.worker.")


@pytest.fixture
def fast(store) -> Store:
    return Store(config_with(REDIS_URL=store.config.redis_url, BROKER_WORKER_TTL=TTL), store.redis)


def silent_worker(store: Store) -> None:
    store.workers.heartbeat(NAME, {})
    time.sleep(TTL * 1.5)


def test_a_reaper_judges_only_after_a_whole_ttl_of_answers_from_redis(fast):
    machine = SessionMachine(fast)
    session_id = running_session(machine)
    silent_worker(fast)
    reaper = LostWorkerReaper(machine)
    assert reaper.tick() == []
    assert status_of(fast, session_id) == "running"
    time.sleep(TTL * 1.2)
    assert reaper.tick() == [NAME]
    record = fast.sessions.get(session_id)
    assert (record["status"], record["stopReason"]) == ("stopped", "worker_lost")
    assert fast.workers.lost_count() == 1 and fast.workers.info(NAME) is None


def test_each_lost_worker_is_taken_by_exactly_one_of_many_reapers(fast):
    machine = SessionMachine(fast)
    running_session(machine)
    silent_worker(fast)
    assert [LostWorkerReaper(machine).reap(NAME) for _ in range(3)] == [True, False, False]
    assert fast.workers.lost_count() == 1


def test_a_worker_that_heartbeats_again_after_the_look_is_not_taken(fast):
    machine = SessionMachine(fast)
    session_id = running_session(machine)
    silent_worker(fast)
    assert fast.workers.silent() == [NAME]
    fast.workers.heartbeat(NAME, {})
    assert LostWorkerReaper(machine).reap(NAME) is False
    assert status_of(fast, session_id) == "running"


def test_a_worker_never_reaps_itself(fast):
    machine = SessionMachine(fast)
    silent_worker(fast)
    reaper = LostWorkerReaper(machine, own_name=NAME)
    reaper.tick()
    time.sleep(TTL * 1.2)
    assert reaper.tick() == []


def test_an_unreachable_redis_restarts_the_healthy_clock(fast):
    machine = SessionMachine(fast)
    running_session(machine)
    silent_worker(fast)
    reaper = LostWorkerReaper(machine)
    reaper.tick()
    time.sleep(TTL * 1.2)
    reaper.store = Store(config_with(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", BROKER_WORKER_TTL=TTL))
    with pytest.raises(RedisError):
        reaper.tick()
    reaper.store = fast
    assert reaper.tick() == [], "just back from an outage: workers get a TTL to heartbeat first"
    time.sleep(TTL * 1.2)
    assert reaper.tick() == [NAME]
