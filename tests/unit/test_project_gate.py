"""A worker whose browsers share one OS user holds one project's sessions at a time (tasks/project_gate.py)."""
from __future__ import annotations

from tasks.project_gate import ProjectGate


def test_a_shared_user_worker_admits_one_project_until_its_last_session_is_released():
    gate = ProjectGate(enforced=True)
    assert gate.admit("ses_a1", "alpha") and gate.admit("ses_a2", "alpha")
    assert not gate.admit("ses_b1", "beta")
    assert gate.project() == "alpha"
    gate.release("ses_a1")
    assert not gate.admit("ses_b1", "beta")
    gate.release("ses_a2")
    assert gate.project() is None
    assert gate.admit("ses_b1", "beta")
    assert not gate.admit("ses_a3", "alpha")


def test_admitting_the_same_session_again_is_not_a_second_project():
    gate = ProjectGate(enforced=True)
    assert gate.admit("ses_a1", "alpha")
    assert gate.admit("ses_a1", "alpha")
    gate.release("ses_a1")
    assert gate.project() is None


def test_a_worker_with_a_user_per_browser_mixes_projects():
    gate = ProjectGate(enforced=False)
    assert gate.admit("ses_a1", "alpha") and gate.admit("ses_b1", "beta")
