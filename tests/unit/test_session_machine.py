"""The stop announcement (what closes a session's CDP clients in every web process) is an effect of the move that
takes the session out of running: heard exactly once per session, and never of a move that lost a race."""
from __future__ import annotations

from collections.abc import Callable

from core.states import Status, StopReason
from core.store import Store
from tests.support.announcements import announcements
from tests.support.records import WORKER, new_session, running_session, status_of


def rival_inside(store: Store, rival: Callable[[], object]) -> list[object]:
    """Makes the next move race ``rival``: its transaction has read the record and is queuing its effects when the
    rival move runs and commits, so Redis fails the first move's EXEC (its WATCHed record changed) and the move is
    judged again on the rival's result. Returns the rival's answer once it has run."""
    effect = store.sessions._effect
    answer: list[object] = []

    def interrupted(*args: object) -> None:
        store.sessions._effect = effect  # the rival's own move, and the first move judged again, run undisturbed
        answer.append(rival())
        effect(*args)

    store.sessions._effect = interrupted
    return answer


# -- exactly once for a move that happened ---------------------------------------
def test_a_requested_stop_is_announced_by_its_move_and_not_again_when_it_finishes(store, machine, dispatcher):
    session_id = running_session(machine)
    with announcements(store) as heard:
        assert machine.stop(session_id, StopReason.DELETED)["status"] == Status.STOPPING
        assert machine.begin_stop(session_id, StopReason.DELETED) is None, "the worker's stop starts: no second move"
        assert machine.finish_stop(session_id, StopReason.DELETED, None)["status"] == Status.STOPPED
    assert heard == [{"sessionId": session_id, "reason": "deleted"}]
    assert dispatcher.stops == [(WORKER, session_id, "deleted")]


def test_a_stop_the_worker_decides_itself_is_announced_once_before_the_browser_ends(store, machine, dispatcher):
    """SIGTERM: no task, no DELETE; the worker's own begin_stop tells the clients, the finish does not again."""
    session_id = running_session(machine)
    with announcements(store) as heard:
        assert machine.begin_stop(session_id, StopReason.WORKER_LOST)["status"] == Status.STOPPING
    assert heard == [{"sessionId": session_id, "reason": "worker_lost"}]
    with announcements(store) as heard:
        machine.finish_stop(session_id, StopReason.WORKER_LOST, None)
    assert heard == []
    assert dispatcher.stops == []


def test_a_stop_straight_from_running_and_a_lost_running_session_are_each_announced_once(store, machine):
    finished, lost = running_session(machine), running_session(machine)
    with announcements(store) as heard:
        machine.finish_stop(finished, StopReason.BROWSER_CLOSED, None)
        machine.lose(lost)
        assert machine.lose(lost) is None and machine.finish_stop(finished, StopReason.DELETED, None) is None
    assert heard == [{"sessionId": finished, "reason": "browser_closed"},
                     {"sessionId": lost, "reason": "worker_lost"}]


def test_a_session_lost_while_stopping_or_launching_is_not_announced_again_or_at_all(store, machine):
    """Stopping: its clients were told when it left running. Launching: it never had a client."""
    stopping, launching = running_session(machine), new_session(store)
    machine.claim(launching, WORKER)
    machine.stop(stopping, StopReason.TIMEOUT)
    with announcements(store) as heard:
        assert machine.lose(stopping)["status"] == Status.STOPPED
        assert machine.lose(launching)["status"] == Status.STOPPED
    assert heard == []


# -- never for a move that lost ----------------------------------------------------
def test_of_a_worker_s_stop_and_a_reaper_s_lose_racing_only_the_winner_announces(store, machine):
    session_id = running_session(machine)
    with announcements(store) as heard:
        rival = rival_inside(store, lambda: machine.lose(session_id))
        assert machine.finish_stop(session_id, StopReason.DELETED, None) is None
        assert rival[0]["status"] == Status.STOPPED
    assert heard == [{"sessionId": session_id, "reason": "worker_lost"}]
    assert store.sessions.get(session_id)["stopReason"] == "worker_lost"


def test_of_two_deletes_racing_one_announces_and_one_task_is_sent(store, machine, dispatcher):
    session_id = running_session(machine)
    with announcements(store) as heard:
        rival = rival_inside(store, lambda: machine.stop(session_id, StopReason.TIMEOUT))
        assert machine.stop(session_id, StopReason.DELETED) is None
        assert rival[0]["status"] == Status.STOPPING
    assert heard == [{"sessionId": session_id, "reason": "timeout"}]
    assert dispatcher.stops == [(WORKER, session_id, "timeout")]


def test_a_stop_that_loses_to_a_lost_worker_is_not_announced_and_sends_no_task(store, machine, dispatcher):
    session_id = running_session(machine)
    with announcements(store) as heard:
        rival_inside(store, lambda: machine.lose(session_id))
        assert machine.stop(session_id, StopReason.DELETED) is None
    assert heard == [{"sessionId": session_id, "reason": "worker_lost"}]
    assert dispatcher.stops == []
    assert status_of(store, session_id) == Status.STOPPED
