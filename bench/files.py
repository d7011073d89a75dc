"""Download and upload throughput through the API, against a local copy of the same file.

    .venv/bin/python -m bench.files [--mb 64] [--rounds 5]

Starts its own redis-server, web process and worker (the test harness's, tests/support; direct
launcher), one session, and a test page server that serves a file of ``--mb`` MB as a download.
Prints MB/s (p50 and min over ``--rounds``) for:

- ``local copy``: ``shutil.copyfile`` of the downloaded file on the same disk (the floor of any copy);
- ``GET downloads/:name (running)``: API → web process → worker's gateway (file door, sendfile) → client;
- ``GET downloads.zip (running)``: the same bytes zipped on the fly by the web process;
- ``POST uploads``: a multipart body streamed by the client, parsed by the web process, streamed to the
  worker's file door, written to the session's folder;
- ``GET downloads/:name (stopped)``: after the stop, from the snapshot store (file://, this host).
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import requests

from bench.common import pct, running_broker
from tests.support.cdp import RawCdp
from tests.support.pages import PageServer
from tests.support.processes import wait_until


def rate(size: int, seconds: list[float]) -> str:
    speeds = [size / 2**20 / s for s in seconds]
    return f"p50 {pct(speeds, 50):7.1f} MB/s, min {min(speeds):7.1f} MB/s"


def timed(action, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    size = args.mb * 2**20
    pages = PageServer()
    with running_broker(BROKER_LAUNCHER="direct", BROKER_WARM_BROWSERS="0",
                        BROKER_UPLOAD_MAX_BYTES=str(2 * size), BROKER_DOWNLOAD_MAX_BYTES=str(4 * size)) as (broker, api):
        session = api.create_session()
        sid = session["id"]
        with RawCdp(session["cdpUrl"]) as cdp:
            _, page = cdp.open_tab(f"{pages.base}/page")
            cdp.call("Page.navigate", {"url": f"{pages.base}/download?size={size}&name=big.bin"}, page)

            def done() -> bool:
                listed = api.get(f"/v1/sessions/{sid}/downloads").json()["downloads"]
                return any(d["name"] == "big.bin" and d["state"] == "complete" for d in listed)

            wait_until(done, 120, interval=0.2, message="the download")
        source = Path(broker.store().sessions.get(sid)["downloadsPath"]) / "big.bin"
        scratch = Path(tempfile.mkdtemp(prefix="bb-bench-files-"))
        headers = {"X-API-Key": broker.api_key}

        def get(path: str) -> None:
            with requests.get(f"{broker.url}/v1/sessions/{sid}/{path}", headers=headers, stream=True) as answer:
                answer.raise_for_status()
                for _ in answer.iter_content(1024 * 1024):
                    pass

        def multipart():
            """Streamed as curl -F does (requests' ``files=`` would first build the whole body in memory)."""
            yield b'--bench\r\nContent-Disposition: form-data; name="file"; filename="up.bin"\r\n\r\n'
            with open(source, "rb") as body:
                while chunk := body.read(1024 * 1024):
                    yield chunk
            yield b"\r\n--bench--\r\n"

        def upload() -> None:
            answer = requests.post(f"{broker.url}/v1/sessions/{sid}/uploads", data=multipart(),
                                   headers={**headers, "Content-Type": "multipart/form-data; boundary=bench"})
            answer.raise_for_status()

        try:
            print(f"file of {args.mb} MiB, {args.rounds} rounds each")
            print(f"  local copy                        {rate(size, timed(lambda: shutil.copyfile(source, scratch / 'c'), args.rounds))}")
            print(f"  GET downloads/:name (running)     {rate(size, timed(lambda: get('downloads/big.bin'), args.rounds))}")
            print(f"  GET downloads.zip (running)       {rate(size, timed(lambda: get('downloads.zip'), args.rounds))}")
            print(f"  POST uploads                      {rate(size, timed(upload, args.rounds))}")
            api.stop_session(sid)
            print(f"  GET downloads/:name (stopped)     {rate(size, timed(lambda: get('downloads/big.bin'), args.rounds))}")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            pages.close()


if __name__ == "__main__":
    main()
