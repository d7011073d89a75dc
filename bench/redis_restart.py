"""Redis restarted, with its data or empty: how long from Redis answering again until the deployment is whole.

    PYTHONPATH=. .venv/bin/python bench/redis_restart.py [--rounds 5] [--heartbeat 1] [--grace 5]

Each round, on a deployment of its own Redis (persistence on; "empty" deletes it before the start), two running
sessions and a context with a snapshot, then Redis SIGKILLed and started again. Times are from the moment Redis
answers PING again:

- empty: the first ``POST /v1/sessions`` answered 201 (the bootstrap key's first request, which stores it again),
  the lost sessions' browsers ended (their PID files gone: the worker's reconciliation), the snapshot with no
  record deleted (``BROKER_ORPHAN_FILES_GRACE`` plus up to one look); then again empty, ``/readyz`` polled alone
  until it answers 200 (it stores the bootstrap key before it does);
- with its data: the first 201, and the two sessions' browsers answering over their cdpUrl;
- once: a worker SIGTERMed with Redis down, until none of its Chromium or ChromeDriver processes is left.

Figures only; nothing is asserted. ``--heartbeat`` is BROKER_HEARTBEAT_INTERVAL (the test harness's 1 s; the
default deployment's is 5 s): the worker's reconciliation waits for it.
"""
from __future__ import annotations

import argparse
import secrets
import signal
import tempfile
import threading
import time
from pathlib import Path

import requests

from bench.common import summary
from tests.support.api import Api
from tests.support.cdp import evaluate
from tests.support.processes import Broker, Redis, end_process

POLL = 0.02


def until(predicate, timeout: float = 120) -> float:
    """Seconds (monotonic clock) at which ``predicate`` first held."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(predicate)
        time.sleep(POLL)
    return time.monotonic()


def created(api: Api) -> bool:
    try:
        answer = api.post("/v1/sessions", json={}, timeout=60)
    except requests.RequestException:
        return False
    if answer.status_code == 201:
        api.delete(f"/v1/sessions/{answer.json()['id']}")
        return True
    assert answer.status_code == 503, (answer.status_code, answer.text[:200])
    return False


def ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/readyz", timeout=10).status_code == 200
    except requests.RequestException:
        return False


def restart(redis: Redis, empty: bool) -> float:
    end_process(redis.proc, signal.SIGKILL)
    redis.start(empty=empty)
    return time.monotonic()


def in_threads(**jobs) -> dict[str, float]:
    found: dict[str, float] = {}
    threads = [threading.Thread(target=lambda n=name, j=job: found.__setitem__(n, j()), daemon=True)
               for name, job in jobs.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--heartbeat", type=float, default=1)
    parser.add_argument("--grace", type=float, default=5)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bb-bench-"))
    redis = Redis(workdir, persist=True)
    broker = Broker(redis, workdir, "bb_" + secrets.token_urlsafe(24), BROKER_HEARTBEAT_INTERVAL=str(args.heartbeat),
                    BROKER_ORPHAN_FILES_GRACE=str(args.grace))
    figures: dict[str, list[float]] = {k: [] for k in ("empty: first 201", "empty: lost browsers ended",
                                                         "empty: snapshot with no record deleted",
                                                         "empty: /readyz 200 (key stored)", "data: first 201",
                                                         "data: sessions answer", "exit with Redis down: browsers gone")}
    try:
        broker.start_web()
        node = broker.start_worker("bench")
        api = Api(broker.url, broker.api_key)
        for _ in range(args.rounds):
            context = api.post("/v1/contexts", json={}).json()
            api.stop_session(api.create_session(contextId=context["id"])["id"], timeout=60)
            folder = broker.state_dir / "snapshots" / context["id"]
            sessions = {api.create_session()["id"], api.create_session()["id"]}
            back = restart(redis, empty=True)
            found = in_threads(
                created=lambda: until(lambda: created(api)),
                ended=lambda: until(lambda: not sessions & set(broker.session_profiles())),
                swept=lambda: until(lambda: not folder.exists()),
            )
            figures["empty: first 201"].append(found["created"] - back)
            figures["empty: lost browsers ended"].append(found["ended"] - back)
            figures["empty: snapshot with no record deleted"].append(found["swept"] - back)
            back = restart(redis, empty=True)
            figures["empty: /readyz 200 (key stored)"].append(until(lambda: ready(broker.url)) - back)
            assert broker.store().api_keys.get(broker.api_key) is not None

            running = [api.create_session(), api.create_session()]
            back = restart(redis, empty=False)
            figures["data: first 201"].append(until(lambda: created(api)) - back)
            for session in running:
                assert evaluate(session, "1 + 1") == 2
            figures["data: sessions answer"].append(time.monotonic() - back)
            for session in running:
                api.stop_session(session["id"], timeout=60)
        for session in (api.create_session(), api.create_session()):
            assert evaluate(session, "1 + 1") == 2
        end_process(redis.proc, signal.SIGKILL)
        stopping = time.monotonic()
        threading.Thread(target=broker.stop_worker, args=(node,), daemon=True).start()
        figures["exit with Redis down: browsers gone"].append(until(lambda: not broker.browser_processes()) - stopping)
        redis.start()
    finally:
        if redis.proc.poll() is not None:
            redis.start()
        broker.stop()
        redis.stop()
        broker.remove_profiles_root()
    print(f"{args.rounds} rounds, BROKER_HEARTBEAT_INTERVAL={args.heartbeat:g}, BROKER_ORPHAN_FILES_GRACE={args.grace:g}")
    for name, values in figures.items():
        print(f"{name}: {summary(values)}")


if __name__ == "__main__":
    main()
