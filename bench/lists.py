"""Prints how long a list takes with a long history: the default page of GET /v1/sessions with N stopped sessions.

    PYTHONPATH=. .venv/bin/python bench/lists.py [--stopped 10000] [--n 50]

Stopped sessions are written through the state machine (create, claim, ready,
finish_stop), as a real history would be, into a real Redis behind a real web process.
"""
from __future__ import annotations

import argparse
import time

from bench.common import running_broker, summary
from core.ids import new_id, now_ms, utcnow_iso
from core.session_machine import SessionMachine
from core.states import Status, StopReason

WORKER = "browsers.worker.bench@lists"


def fill(machine: SessionMachine, count: int) -> None:
    for _ in range(count):
        session_id = new_id("ses")
        machine.store.sessions.create({
            "id": session_id, "project": "default", "status": Status.PENDING.value, "contextId": None,
            "proxyId": None, "url": None, "timeout": 60, "idleTimeout": None, "createdAt": utcnow_iso(),
            "createdMs": now_ms(), "expiresAt": None, "stoppedAt": None, "stopReason": None,
        })
        machine.claim(session_id, WORKER)
        machine.ready(session_id, expiresEpoch=time.time() + 60)
        machine.finish_stop(session_id, StopReason.DELETED, None)


def timed_gets(api, params: dict, n: int) -> list[float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        answer = api.get("/v1/sessions", params=params)
        times.append(time.perf_counter() - started)
        assert answer.status_code == 200
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stopped", type=int, default=10_000)
    parser.add_argument("--n", type=int, default=50)
    args = parser.parse_args()
    with running_broker() as (broker, api):
        machine = SessionMachine(broker.store())
        fill(machine, 10)
        small = timed_gets(api, {}, args.n)
        fill(machine, args.stopped - 10)
        print(f"GET /v1/sessions, default page, 10 stopped sessions:      {summary(small)}")
        print(f"GET /v1/sessions, default page, {args.stopped} stopped sessions: {summary(timed_gets(api, {}, args.n))}")
        print(f"GET /v1/sessions?status=stopped, {args.stopped} stopped:         "
              f"{summary(timed_gets(api, {'status': 'stopped'}, args.n))}")
        print(f"GET /v1/sessions?status=running, {args.stopped} stopped:         "
              f"{summary(timed_gets(api, {'status': 'running'}, args.n))}")


if __name__ == "__main__":
    main()
