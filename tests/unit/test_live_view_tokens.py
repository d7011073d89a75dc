"""Live-view credentials (core.tokens.LiveViewTokens) against a real Redis: what opens what, and for how long."""
from __future__ import annotations

import time

import pytest

from core.session_machine import SessionMachine
from core.states import StopReason
from core.tokens import ConnectTokens, LiveViewTokens, live_view_access
from tests.support.records import running_session

SECRET = "unit-test-secret"
TTL = 60.0


@pytest.fixture
def machine(store) -> SessionMachine:
    return SessionMachine(store)


@pytest.fixture
def live() -> LiveViewTokens:
    return LiveViewTokens(SECRET, TTL)


def with_credentials(machine: SessionMachine, live: LiveViewTokens, now: float | None = None) -> dict:
    session_id = running_session(machine)
    return machine.store.sessions.update_running(session_id, live.issue(session_id, now or time.time()))


def test_each_link_opens_its_own_session_in_its_own_mode_and_nothing_else(machine, live):
    record, other = with_credentials(machine, live), with_credentials(machine, live)
    control, watch = live.token_for(record, read_only=False), live.token_for(record, read_only=True)
    assert control != watch
    assert live_view_access(record, control, time.time()) == "control"
    assert live_view_access(record, watch, time.time()) == "watch"
    assert live_view_access(other, control, time.time()) is None
    connect = ConnectTokens(SECRET)
    assert live_view_access(record, connect.token_for({"id": record["id"], "connectSalt": "x"}), time.time()) is None
    assert live_view_access(record, control[:-1], time.time()) is None
    assert live_view_access(record, None, time.time()) is None
    # Only the hashes are stored, never a credential.
    assert control not in str(record) and watch not in str(record)


def test_a_link_expires_and_answers_renew_it_once_half_its_life_is_gone(machine, live):
    issued = time.time()
    record = with_credentials(machine, live, issued)
    control = live.token_for(record, read_only=False)
    assert not live.needs_renewal(record, issued + TTL / 2 - 1)
    assert live.needs_renewal(record, issued + TTL / 2 + 1)
    assert live_view_access(record, control, issued + TTL - 1) == "control"
    assert live_view_access(record, control, issued + TTL + 1) is None


def test_new_credentials_revoke_the_old_and_a_stop_kills_them(machine, live):
    record = with_credentials(machine, live)
    old = live.token_for(record, read_only=False)
    renewed = machine.store.sessions.update_running(record["id"], live.issue(record["id"], time.time()))
    assert live_view_access(renewed, old, time.time()) is None
    new = live.token_for(renewed, read_only=False)
    assert live_view_access(renewed, new, time.time()) == "control"
    machine.stop(renewed["id"], StopReason.DELETED)
    stopped = machine.finish_stop(renewed["id"], StopReason.DELETED, None)
    assert live_view_access(stopped, new, time.time()) is None
    assert live.token_for(stopped, read_only=False) is None
    # A stopped session gets no new credentials either.
    assert machine.store.sessions.update_running(stopped["id"], live.issue(stopped["id"], time.time())) is None
