"""Prints what a context costs: create-with-restore and stop-with-snapshot latency, archive size.

    PYTHONPATH=. .venv/bin/python bench/contexts.py [--n 15]

Each cycle visits a few local pages (cookies, localStorage, IndexedDB) so the
profile is realistic, then stops; the same cycle without a context is the baseline.
"""
from __future__ import annotations

import argparse
import time

from bench.common import running_broker, summary
from tests.support.pages import PageServer
from tests.test_contexts import visit


def cycle(api, pages: PageServer, context_id: str | None, n: int) -> tuple[list[float], list[float]]:
    creates, stops = [], []
    body = {"contextId": context_id} if context_id else {}
    for i in range(n):
        start = time.perf_counter()
        session = api.create_session(**body)
        creates.append(time.perf_counter() - start)
        visit(session["cdpUrl"], f"{pages.base}/set-cookie?name=c{i % 5}&value=v{i}&persistent=1")
        visit(session["cdpUrl"], f"{pages.base}/state", f"state('run-{i}')")
        visit(session["cdpUrl"], f"{pages.base}/tall?height=600")
        start = time.perf_counter()
        api.stop_session(session["id"])
        stops.append(time.perf_counter() - start)
    return creates, stops


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=15)
    args = parser.parse_args()
    pages = PageServer()
    with running_broker(BROKER_LAUNCHER="selenium") as (broker, api):
        api.delete(f"/v1/sessions/{api.create_session()['id']}")
        plain_creates, plain_stops = cycle(api, pages, None, args.n)
        context = api.post("/v1/contexts", json={}).json()
        ctx_creates, ctx_stops = cycle(api, pages, context["id"], args.n)
        record = api.get(f"/v1/contexts/{context['id']}").json()
    pages.close()
    print(f"create, no context:           {summary(plain_creates)}")
    print(f"create, restoring a context:  {summary(ctx_creates)}")
    print(f"stop (DELETE → stopped), no context:          {summary(plain_stops)}")
    print(f"stop with cookie sync + snapshot:             {summary(ctx_stops)}")
    print(f"archive size after {args.n} visits of 3 local pages: {record['snapshotBytes'] / 1024:.0f} KiB "
          f"({record['cookieCount']} cookies)")


if __name__ == "__main__":
    main()
