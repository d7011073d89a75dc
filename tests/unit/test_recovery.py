"""A lost worker's session and its checkpoint (core/recovery.py), and moves no worker takes up, over a real Redis:
which sessions move from a checkpoint, which end and why, and that their saved states go with them."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from core.recovery import MOVE_LIMIT, end_stuck_moves, moves_folder, recover_or_lose
from core.session_machine import SessionMachine
from core.snapshots import LocalSnapshotStore
from core.states import StopReason
from core.store import Store, keys
from tests.support.records import running_session
from tests.support.settings import config_with

SAVED_AT = "2026-01-01T00:00:00.250Z"


@pytest.fixture
def snapshots(tmp_path) -> LocalSnapshotStore:
    return LocalSnapshotStore(tmp_path)


def checkpointed(machine: SessionMachine, snapshots: LocalSnapshotStore, tmp_path: Path, **fields) -> tuple[str, str]:
    """A running session with a checkpoint in the store: its id and the checkpoint's key."""
    session_id = running_session(machine, **fields)
    state = f"{moves_folder(session_id)}/v1"
    blob = tmp_path / "blob"
    blob.write_bytes(b"x")
    snapshots.put_blob(f"{state}/state.json", blob)
    assert machine.store.moves.commit_checkpoint(session_id, machine.store.sessions.get(session_id)["worker"], state,
                                                 SAVED_AT) == (True, None)
    return session_id, state


def test_a_lost_session_with_a_checkpoint_moves_from_it(machine, snapshots, dispatcher, tmp_path):
    session_id, state = checkpointed(machine, snapshots, tmp_path)
    moved = recover_or_lose(machine, snapshots, session_id)
    assert moved["status"] == "running" and moved["moving"] is True
    assert moved["moveState"] == state and moved["restoredFrom"] == SAVED_AT and moved["checkpointState"] is None
    assert dispatcher.relaunches == [(session_id, state)]
    assert machine.store.redis.zscore(keys.MOVES_UNDER_WAY, session_id) is not None
    assert session_id not in machine.store.sessions.on_worker(moved["worker"])
    assert (snapshots.root / state).exists()


def test_a_lost_session_without_a_checkpoint_ends_as_worker_lost(machine, snapshots, dispatcher):
    session_id = running_session(machine)
    assert recover_or_lose(machine, snapshots, session_id)["stopReason"] == StopReason.WORKER_LOST
    assert dispatcher.relaunches == []


def test_a_lost_session_moved_too_often_ends_as_move_limit_and_its_checkpoint_is_deleted(machine, snapshots,
                                                                                           dispatcher, tmp_path):
    session_id, state = checkpointed(machine, snapshots, tmp_path, moveEpochs=[time.time()] * MOVE_LIMIT)
    assert recover_or_lose(machine, snapshots, session_id)["stopReason"] == StopReason.MOVE_LIMIT
    assert dispatcher.relaunches == [] and not (snapshots.root / moves_folder(session_id)).exists()


def test_a_checkpoint_is_refused_once_its_session_moves_or_stops(machine, snapshots, tmp_path):
    session_id, _ = checkpointed(machine, snapshots, tmp_path)
    worker = machine.store.sessions.get(session_id)["worker"]
    assert machine.store.moves.commit_checkpoint(session_id, "browsers.worker.other@x", "moves/x/v2", SAVED_AT) == \
        (False, None)
    machine.begin_move(session_id, [time.time()])
    assert machine.store.moves.commit_checkpoint(session_id, worker, "moves/x/v3", SAVED_AT) == (False, None)


def test_a_move_no_worker_takes_up_ends_as_move_timeout_and_its_state_is_deleted(store, machine, snapshots,
                                                                                  tmp_path):
    session_id, _ = checkpointed(machine, snapshots, tmp_path)
    recover_or_lose(machine, snapshots, session_id)
    deleted_id, _ = checkpointed(machine, snapshots, tmp_path)
    recover_or_lose(machine, snapshots, deleted_id)
    machine.stop(deleted_id, StopReason.DELETED)
    patient = SessionMachine(Store(config_with(REDIS_URL=store.config.redis_url, BROKER_MOVE_TIMEOUT=60),
                                   store.redis), machine.dispatcher)
    assert end_stuck_moves(patient, snapshots) == []
    impatient = SessionMachine(Store(config_with(REDIS_URL=store.config.redis_url, BROKER_MOVE_TIMEOUT=0),
                                     store.redis), machine.dispatcher)
    assert sorted(end_stuck_moves(impatient, snapshots)) == sorted([session_id, deleted_id])
    assert store.sessions.get(session_id)["stopReason"] == StopReason.MOVE_TIMEOUT
    assert store.sessions.get(deleted_id)["stopReason"] == StopReason.DELETED
    assert not (snapshots.root / "moves" / session_id).exists() and (snapshots.root / "moves").exists()
    assert end_stuck_moves(impatient, snapshots) == []
