"""A create that answered an error never launches later (issue 25 item 1).

Seen: a full pool, creates waiting in line for a slot, a DELETE frees one and Redis stalls 20 ms later. The
creates answered 503, yet when Redis came back their launches ran: browsers nobody held, each in a slot until its
timeout. Here the deployment has a Redis of its own, stalled (SIGSTOP) until every waiting create has answered,
then let go (SIGCONT): none of their launches may start a browser, what they held is given back, and the next
create gets the freed slot at once.
"""
from __future__ import annotations

import os
import re
import secrets
import signal
import threading
import time

import pytest
import requests

from core.store import keys
from tests.support.api import Api
from tests.support.processes import Broker, Redis, wait_until

POOL = 2
#: Longer than a stall the old code answered in (two 5 s socket timeouts), so the given-up creates' launch tasks
#: had not expired when Redis came back; the creates still give up while Redis is stalled (wait, launch, margin).
WAIT = 20
LAUNCH = 8
WAITING = 3


@pytest.fixture(scope="module")
def stalling(brokers, workdir):
    """One worker, two slots, no warm browser, and a Redis of the deployment's own to stall."""
    redis = Redis(workdir)
    broker = Broker(redis, workdir, "bb_" + secrets.token_urlsafe(24), BROKER_POOL_SIZE=str(POOL),
                    BROKER_WARM_BROWSERS="0", BROKER_CREATE_WAIT=str(WAIT), BROKER_LAUNCH_TIMEOUT=str(LAUNCH))
    brokers.append(broker)
    broker.start_web(wait=False)
    broker.start_worker("stall")
    yield broker
    broker.stop()
    redis.stop()



def launched(broker: Broker, session_id: str) -> bool:
    """Whether the worker ever started a browser for the session (its pool logs each one it starts)."""
    return any(re.search(rf"{session_id}: browser up", path.read_text(errors="replace"))
               for path in broker.worker_logs if path.exists())


def test_creates_that_gave_up_during_a_redis_stall_never_launch_and_free_their_slot(stalling):
    broker = stalling
    api = Api(broker.url, broker.api_key)
    store = broker.store()
    held = [api.create_session() for _ in range(POOL)]
    answers: dict[int, tuple[requests.Response, float]] = {}

    def create(place: int) -> None:
        answer = Api(broker.url, broker.api_key).post("/v1/sessions", json={}, timeout=180)
        answers[place] = (answer, time.monotonic())

    for place in range(1, WAITING + 1):
        threading.Thread(target=create, args=(place,), daemon=True).start()
        wait_until(lambda: broker.waiting_launches() == place, 30, message=f"create {place} to wait in line")
    waiting = store.redis.zrange(keys.LAUNCH_LINE, 0, -1)
    assert len(waiting) == WAITING and not answers

    assert api.delete(f"/v1/sessions/{held[0]['id']}").status_code == 204
    time.sleep(0.02)
    os.kill(broker.redis.proc.pid, signal.SIGSTOP)
    stalled = time.monotonic()
    try:
        wait_until(lambda: len(answers) == WAITING, WAIT + LAUNCH + 60, message="every waiting create to answer")
    finally:
        os.kill(broker.redis.proc.pid, signal.SIGCONT)
    resumed = time.monotonic()
    print(f"\nRedis stalled {resumed - stalled:.1f} s; the creates answered after "
          f"{', '.join(f'{at - stalled:.1f}' for _, at in answers.values())} s of it")
    for answer, _ in answers.values():
        assert answer.status_code == 503, answer.text
        assert answer.headers.get("Retry-After")

    api.wait_status(held[0]["id"], "stopped", timeout=60)
    started = time.monotonic()
    following = api.post("/v1/sessions", json={}, timeout=180)
    took = time.monotonic() - started
    print(f"the following create answered {following.status_code} in {took:.1f} s "
          f"({time.monotonic() - resumed:.1f} s after Redis came back)")

    # The given-up creates' launches were met (the queue is first in, first out) and dropped, what they held given back.
    for session_id in waiting:
        assert not launched(broker, session_id), f"a browser started for {session_id}, whose create answered 503"
        assert session_id not in broker.session_profiles()
        wait_until(lambda: (store.sessions.get(session_id) or {}).get("status") in (None, "abandoned"), 10,
                   message=f"{session_id} to be dropped")
    wait_until(lambda: broker.waiting_launches() == 0, WAIT, message="the given-up launches to leave the queue")
    assert not set(waiting) & set(store.redis.zrange(keys.project_live("default"), 0, -1))
    assert not set(waiting) & set(store.redis.zrange(keys.LAUNCH_LINE, 0, -1))
    assert following.status_code == 201, following.text
    assert took < LAUNCH, "the slot the DELETE freed went to a create nobody was waiting for"
    assert sorted(broker.session_profiles()) == sorted([held[1]["id"], following.json()["id"]])
    for session_id in (held[1]["id"], following.json()["id"]):
        api.stop_session(session_id)
