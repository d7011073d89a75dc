"""Prints what moving a session costs (docs/API.md, "Moving"): the time from SIGTERM to its worker until the session
answers CDP again on another worker, for an idle profile and one holding a few MB of storage; and how many sessions
one worker moves within a 30 s grace.

    PYTHONPATH=. .venv/bin/python bench/moving.py [--n 4] [--sessions 6]

Two workers share the deployment; each round SIGTERMs the one holding the session and starts it again under its
name, so two are up at every SIGTERM. The probe is a raw CDP client connected before the signal: once the move has
closed it (1012), it connects to the same cdpUrl again (the relay holds a connect while the session moves) and asks
Browser.getVersion; the figure is from the signal to that answer.
"""
from __future__ import annotations

import argparse
import json
import signal
import threading
import time

import websocket

from bench.common import running_broker, summary
from tests.support.browsing import visit
from tests.support.pages import PageServer
from tests.support.processes import wait_until

#: About 4 MB of localStorage (2 M UTF-16 characters) on the page's origin, plus the state page's own marker.
FILL = "localStorage.setItem('bulk', 'x'.repeat(2000000)); state('filled')"


def answers_cdp(cdp_url: str, deadline: float) -> float:
    """When the session answered Browser.getVersion again (time.monotonic); refused connects are tried again."""
    while time.monotonic() < deadline:
        try:
            ws = websocket.create_connection(cdp_url, timeout=max(1.0, deadline - time.monotonic()))
            try:
                ws.send(json.dumps({"id": 1, "method": "Browser.getVersion"}))
                while json.loads(ws.recv()).get("id") != 1:
                    pass
                return time.monotonic()
            finally:
                ws.close()
        except (OSError, websocket.WebSocketException):
            time.sleep(0.1)
    raise TimeoutError("the session did not answer CDP again")


def one_move(broker, api, pages: PageServer, fill: bool) -> float:
    session = api.create_session(movable=True)
    visit(session["cdpUrl"], f"{pages.base}/state", FILL if fill else "state('idle')")
    worker = session["worker"].removeprefix("browsers.worker.")
    name = worker.split("@")[0]
    answered: list[float] = []
    client = websocket.create_connection(session["cdpUrl"], timeout=120)

    def probe() -> None:
        """Once the move has closed the client (1012), the same URL again until it answers."""
        try:
            while client.recv_frame().opcode != websocket.ABNF.OPCODE_CLOSE:
                pass
        except (OSError, websocket.WebSocketException):
            pass
        answered.append(answers_cdp(session["cdpUrl"], sent + 120))

    sent = time.monotonic()
    broker.workers[worker].send_signal(signal.SIGTERM)
    probe = threading.Thread(target=probe)
    probe.start()
    broker.workers.pop(worker).wait(90)  # a second SIGTERM would make Celery's shutdown a cold one
    probe.join()
    broker.start_worker(name)
    api.stop_session(session["id"], timeout=60)
    return answered[0] - sent


def moved_within_grace(broker, api, count: int) -> tuple[int, int]:
    """``count`` sessions on one worker, SIGTERMed with the other up: how many moved, how many ended."""
    holders = list(broker.workers)
    for nodename in holders[1:]:
        broker.stop_worker(nodename)
    sessions = [api.create_session(movable=True) for _ in range(count)]
    spare = broker.start_worker("spare")
    broker.stop_worker(holders[0])
    for session in sessions:
        wait_until(lambda: not api.get(f"/v1/sessions/{session['id']}").json()["moving"], 180,
                   message="the moved sessions running again")
    states = [api.get(f"/v1/sessions/{s['id']}").json() for s in sessions]
    moved = sum(1 for s in states if s["status"] == "running" and s["worker"].endswith(spare))
    for session in sessions:
        api.stop_session(session["id"], timeout=120)
    broker.stop_worker(spare)
    return moved, count - moved


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--sessions", type=int, default=6, help="for the grace figure; 0 skips it")
    args = parser.parse_args()
    pages = PageServer()
    with running_broker(BROKER_POOL_SIZE=str(max(2, args.sessions)), BROKER_WARM_BROWSERS="0",
                        BROKER_SHUTDOWN_GRACE="30", BROKER_MOVE_WAIT="90") as (broker, api):
        broker.start_worker("other")
        idle = [one_move(broker, api, pages, fill=False) for _ in range(args.n)]
        filled = [one_move(broker, api, pages, fill=True) for _ in range(args.n)]
        moved, ended = moved_within_grace(broker, api, args.sessions) if args.sessions else (0, 0)
    pages.close()
    print(f"SIGTERM → CDP answers again, idle profile:       {summary(idle, 's', 1)}")
    print(f"SIGTERM → CDP answers again, ~4 MB localStorage: {summary(filled, 's', 1)}")
    if args.sessions:
        print(f"{args.sessions} sessions on one worker, 30 s grace: {moved} moved, {ended} ended")


if __name__ == "__main__":
    main()
