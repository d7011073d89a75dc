"""A create's ``movable`` and ``checkpointInterval`` with the deployment's defaults (app/sessions/service.py)."""
from __future__ import annotations

import pytest

from app.sessions.service import movability
from tests.support.settings import config_with


@pytest.mark.parametrize("env, body, expected", [
    ({}, {}, {"movable": False, "checkpointInterval": 0}),
    ({}, {"checkpointInterval": 30}, {"movable": True, "checkpointInterval": 30}),
    ({}, {"movable": True}, {"movable": True, "checkpointInterval": 0}),
    ({"BROKER_CHECKPOINT_INTERVAL": "60"}, {}, {"movable": False, "checkpointInterval": 0}),
    ({"BROKER_CHECKPOINT_INTERVAL": "60"}, {"movable": True}, {"movable": True, "checkpointInterval": 60}),
    ({"BROKER_CHECKPOINT_INTERVAL": "60", "BROKER_MOVABLE": "1"}, {}, {"movable": True, "checkpointInterval": 60}),
    ({"BROKER_CHECKPOINT_INTERVAL": "60", "BROKER_MOVABLE": "1"}, {"checkpointInterval": 0},
     {"movable": True, "checkpointInterval": 0}),
    ({"BROKER_CHECKPOINT_INTERVAL": "60", "BROKER_MOVABLE": "1"}, {"movable": False},
     {"movable": False, "checkpointInterval": 0}),
])
def test_checkpoints_default_for_movable_sessions_only_and_asking_for_them_makes_a_session_movable(env, body, expected):
    assert movability(config_with(**env), {"movable": None, "checkpointInterval": None, **body}) == expected
