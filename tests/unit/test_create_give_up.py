"""A create answers an error only once its give-up is written or its deadline has passed for sure (issue 25 item 1).

The web process's side of core.states' create deadline: with Redis unreachable, the give-up (``abandon``) cannot be
written, so the create must not answer until no launch can start its session any more.
"""
from __future__ import annotations

import time

import pytest
from redis.exceptions import RedisError

from app.sessions.service import CLOCK_MARGIN, Patience, _settle
from core.session_machine import SessionMachine
from core.states import Status
from core.store import Store
from tests.support.processes import free_port
from tests.support.records import new_session, running_session, status_of
from tests.support.settings import config_with

WAIT, LAUNCH = 0.3, 0.4


@pytest.fixture
def unreachable(store) -> SessionMachine:
    """A store whose Redis refuses every connection."""
    config = config_with(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", BROKER_CREATE_WAIT=WAIT, BROKER_LAUNCH_TIMEOUT=LAUNCH)
    return SessionMachine(Store(config))


@pytest.mark.parametrize("heard_claim", [False, True], ids=["unclaimed", "claim heard"])
def test_with_redis_unreachable_the_give_up_waits_out_the_deadline(unreachable, heard_claim):
    """Not having heard of a claim, the create must allow for one just before its wait ran out (BROKER_CREATE_WAIT,
    then BROKER_LAUNCH_TIMEOUT); having heard of it, for the launch's timeout from then."""
    started = time.monotonic()
    patience = Patience(unreachable.store.config, written=started)
    if heard_claim:
        patience.claimed = started
    with pytest.raises(RedisError):
        _settle(unreachable, "ses_unreachable", patience)
    took = time.monotonic() - started
    at_least = (0 if heard_claim else WAIT) + LAUNCH + CLOCK_MARGIN
    assert at_least <= took < at_least + 10, took


def test_with_redis_answering_the_give_up_is_written_at_once(store):
    machine = SessionMachine(store)
    session_id = new_session(store)
    started = time.monotonic()
    assert _settle(machine, session_id, Patience(store.config, written=started)) is None
    assert time.monotonic() - started < 1
    assert status_of(store, session_id) == Status.ABANDONED


def test_a_give_up_that_lost_to_the_launch_returns_the_running_session(store):
    machine = SessionMachine(store)
    session_id = running_session(machine)
    record = _settle(machine, session_id, Patience(store.config, written=time.monotonic()))
    assert record["status"] == Status.RUNNING
