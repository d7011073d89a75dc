"""The OpenAPI document against the real stack: schemathesis (pinned in constraints.txt) must find nothing.

Every check schemathesis has, every phase (coverage, fuzzing, and the stateful
phase that follows the document's links from each create to its get and delete),
a fixed seed and a bounded number of examples per operation. It runs as its own
project with at most two sessions at once, so it holds at most two of the
pool's browsers, and every session it started is stopped afterwards.
tests/schemathesis.toml says what is configured and why; the hooks module keeps
its traffic on this machine. Its run time and case count are printed, not asserted.
"""
from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

from core.store import ALL_SCOPES
from tests.support.api import Api
from tests.support.processes import ROOT

PROJECT = "schemathesis"
SEED = 20261130
MAX_EXAMPLES = 5
RUN_TIMEOUT = 600
#: A create answers once its browser is up (and its first page loaded): seconds on a busy machine, not 10.
REQUEST_TIMEOUT = 90


def stop_every_session(owner: Api) -> list[str]:
    """Stops what the project still runs and waits for it; the ids of every session it ever had."""
    sessions = owner.get("/v1/sessions", params={"page_size": 500}).json()
    for session in sessions:
        if session["status"] != "stopped":
            owner.delete(f"/v1/sessions/{session['id']}")
    for session in sessions:
        owner.wait_status(session["id"], "stopped", timeout=60)
    return [s["id"] for s in sessions]


def test_schemathesis_finds_nothing_against_the_real_stack(broker, tmp_path, capsys):
    key = "bb_" + secrets.token_urlsafe(24)
    store = broker.store()
    key_id = store.api_keys.put(key, name="schemathesis", project=PROJECT, scopes=ALL_SCOPES)["id"]
    store.projects.set_settings(PROJECT, maxSessions=2)
    owner = Api(broker.url, key)
    command = [
        str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(ROOT / "tests" / "schemathesis.toml"),
        "run", f"{broker.url}/openapi.json", "-H", f"X-API-Key: {key}", "--seed", str(SEED),
        "--max-examples", str(MAX_EXAMPLES), "--workers", "1", "--generation-database", "none", "--no-color",
        "--request-timeout", str(REQUEST_TIMEOUT),
        "--report", "junit", "--report-dir", str(tmp_path),
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.support.schemathesis_hooks", "BB_SCHEMATHESIS_KEY_ID": key_id}
    started = time.monotonic()
    try:
        run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    finally:
        sessions = stop_every_session(owner)
    elapsed = time.monotonic() - started
    cases = re.search(r"^\s*(\d+) generated.*$", run.stdout, re.MULTILINE)
    with capsys.disabled():
        print(f"\nschemathesis: {elapsed:.0f} s, {cases.group(0).strip() if cases else 'no summary'}, "
              f"{len(sessions)} sessions started and stopped")
    assert run.returncode == 0, run.stdout[-12000:] + run.stderr[-2000:]
    assert cases, run.stdout[-2000:]
    assert all(s["status"] == "stopped" for s in owner.get("/v1/sessions", params={"page_size": 500}).json())
