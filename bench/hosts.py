"""Prints what the worker gateway costs: CDP through the relay on the browser's host and from another host.

    .venv/bin/python -m bench.hosts [--evals 2000] [--creates 20]      (as root: it builds network namespaces)

The deployment of tests/hosts (tests/support/hosts.py): host ``web`` runs Redis,
S3, the web process and a worker of its own; host ``w1`` a second worker. One
run, interleaved rounds, and for each path the ``Runtime.evaluate('1+1')``
round trip (p50 / p95) and an 8 MB frame's throughput (best of a few):

- ``direct``: a client on the browser's own host, on Chromium's loopback socket;
- ``same-host relay``: ``cdpUrl`` → web process → loopback → Chromium (what a browser on the web's host gets);
- ``same-host via gateway``: the same, forced through the worker's gateway
  (a second web process with BROKER_GATEWAY_ALWAYS=1): why loopback is kept for the web's own host;
- ``cross-host relay``: ``cdpUrl`` → web process → w1's gateway → Chromium.

Then create latency (POST → 201) on the remote worker and on the web's host.
Nothing is asserted; the machine is shared and noisy: compare ratios.
"""
from __future__ import annotations

import argparse
import secrets
import shutil
import tempfile
import time
from pathlib import Path

import boto3

from bench.common import evaluate_round_trips, pct
from tests.support.api import Api
from tests.support.cdp import RawCdp
from tests.support.hosts import BUCKET, WEB_PORT, Deployment
from tests.support.netns import Network, why_unavailable
from tests.support.processes import wait_until

BIG_BYTES = 8 * 1024 * 1024
BIG_REPEATS = 4
ROUNDS = 5
GATEWAY_WEB_PORT = WEB_PORT + 1


def round_trips(url: str, n: int) -> list[float]:
    cdp = RawCdp(url)
    page = cdp.attach_new_page()
    times = evaluate_round_trips(cdp, page, n)
    cdp.call("Target.closeTarget", {"targetId": cdp.call("Target.getTargetInfo", session_id=page)["targetInfo"]["targetId"]})
    cdp.close()
    return times


def throughput(url: str) -> float:
    """MB/s for an 8 MB Runtime.evaluate answer, best of a few (the noise is all on the slow side)."""
    cdp = RawCdp(url)
    page = cdp.attach_new_page()
    cdp.call("Runtime.evaluate", {"expression": f"globalThis.big = 'q'.repeat({BIG_BYTES})"}, page)
    best = 0.0
    for _ in range(BIG_REPEATS):
        start = time.perf_counter()
        value = cdp.evaluate("big", page)
        best = max(best, len(value) / (time.perf_counter() - start) / 1e6)
    cdp.close()
    return best


def creates(deployment: Deployment, api: Api, host, n: int) -> list[float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        session = deployment.create_on(api, host)
        times.append(time.perf_counter() - start)
        api.stop_session(session["id"])
    return times


def start(deployment: Deployment) -> None:
    net, web = deployment.net, deployment.web_host
    with net.inside(web):
        deployment.start_services()
        s3 = boto3.client("s3", endpoint_url=deployment.s3_url, aws_access_key_id="test",
                          aws_secret_access_key="test", region_name="us-east-1")
        wait_until(lambda: _ok(lambda: s3.list_buckets()), 60, message="S3")
        s3.create_bucket(Bucket=BUCKET)
        deployment.start_web()
        deployment.start_web("web-gateway", GATEWAY_WEB_PORT, BROKER_GATEWAY_ALWAYS="1")
        for port in (WEB_PORT, GATEWAY_WEB_PORT):
            wait_until(lambda: _ok(lambda: Api(f"http://{web.address}:{port}", None).get("/healthz", timeout=2).raise_for_status()),
                       60, message=f"web process on {port}")
        deployment.start_worker(web)
        deployment.start_worker(deployment.worker_hosts[0])


def _ok(call) -> bool:
    try:
        call()
        return True
    except Exception:
        return False


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--evals", type=int, default=2000)
    parser.add_argument("--creates", type=int, default=20)
    args = parser.parse_args()
    reason = why_unavailable()
    if reason:
        raise SystemExit(f"bench/hosts.py needs network namespaces: {reason}")
    workdir = Path(tempfile.mkdtemp(prefix="bb-bench-hosts-"))
    net = Network()
    deployment = Deployment(net, workdir, "bb_" + secrets.token_urlsafe(24))
    web, remote = deployment.web_host, deployment.worker_hosts[0]
    try:
        start(deployment)
        with net.inside(web):
            api = Api(deployment.url, deployment.api_key)
            local = deployment.create_on(api, web)
            far = deployment.create_on(api, remote)
            gateway_url = local["cdpUrl"].replace(f":{WEB_PORT}/", f":{GATEWAY_WEB_PORT}/")
            local_direct = deployment.store().sessions.get(local["id"])["browserWsUrl"]
            far_direct = deployment.store().sessions.get(far["id"])["browserWsUrl"]
        paths = {
            "direct (browser on web host)": (web, local_direct),
            "same-host relay": (web, local["cdpUrl"]),
            "same-host via gateway": (web, gateway_url),
            "direct (browser on w1)": (remote, far_direct),
            "cross-host relay (gateway)": (web, far["cdpUrl"]),
        }
        rtt: dict[str, list[float]] = {name: [] for name in paths}
        mbps: dict[str, float] = {name: 0.0 for name in paths}
        per_round = args.evals // ROUNDS
        for name, (host, url) in paths.items():
            with net.inside(host):
                round_trips(url, 200)
        for _ in range(ROUNDS):
            for name, (host, url) in paths.items():
                with net.inside(host):
                    rtt[name] += round_trips(url, per_round)
                    mbps[name] = max(mbps[name], throughput(url))
        print(f"\n== Runtime.evaluate round trip ({args.evals} per path, {ROUNDS} interleaved rounds) and 8 MB frame")
        base_local, base_far = pct(rtt["direct (browser on web host)"], 50), pct(rtt["direct (browser on w1)"], 50)
        for name, times in rtt.items():
            base = base_far if "w1" in name or "cross" in name else base_local
            thr_base = mbps["direct (browser on w1)"] if "w1" in name or "cross" in name else mbps["direct (browser on web host)"]
            print(f"{name:30s} p50 {pct(times, 50) * 1e6:6.0f} us  p95 {pct(times, 95) * 1e6:6.0f} us  "
                  f"({pct(times, 50) / base:.2f}x direct)   8 MB: {mbps[name]:5.0f} MB/s ({mbps[name] / thr_base:.2f}x direct)")
        with net.inside(web):
            api.stop_session(local["id"])
            api.stop_session(far["id"])
            far_creates = creates(deployment, api, remote, args.creates)
            near_creates = creates(deployment, api, web, args.creates)
        print(f"\n== POST /v1/sessions → 201 ({args.creates} each, direct launcher)")
        print(f"worker on the web's host:  p50 {pct(near_creates, 50) * 1000:.0f} ms  p95 {pct(near_creates, 95) * 1000:.0f} ms")
        print(f"worker on another host:    p50 {pct(far_creates, 50) * 1000:.0f} ms  p95 {pct(far_creates, 95) * 1000:.0f} ms"
              f"  ({pct(far_creates, 50) / pct(near_creates, 50):.2f}x)")
    finally:
        deployment.stop()
        deployment.remove_profiles()
        net.remove()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
