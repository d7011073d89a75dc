"""Session recordings in the snapshot store (file:// or s3://), beside the sessions' downloads.

A recording is a run of chunks, ``recordings/<session id>/<n>.ndjson.gz``: each the rrweb events one worker
buffered for 5 s (tasks/session_watch.py), one JSON object a line, gzipped, written whole before the store's list
of chunks names it (core.store.recordings). So a worker that is killed loses what it had not written yet, at most
one chunk, and a reader, while the session runs or after, sees only whole chunks.

A reader gets one JSON array, gzipped as one stream (:meth:`Recordings.stream`), built chunk by chunk as it is
sent: the chunks' own gzip members are not passed on as they are, because a multi-member gzip body is not
decoded whole by every HTTP client.
"""
from __future__ import annotations

import gzip
import logging
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from core.snapshots import SnapshotStore
from core.store import Store

log = logging.getLogger(__name__)
PREFIX = "recordings"
#: rrweb and rrweb-player as scripts/setup.sh installs them from assets/rrweb/package-lock.json: the worker injects
#: rrweb's record bundle (@rrweb/record: the recorder without the replayer), the web process serves the player
#: (/replay).
RRWEB_DIR = Path(__file__).resolve().parent.parent / "assets" / "rrweb" / "node_modules"
RECORDER_BUNDLE = RRWEB_DIR / "@rrweb" / "record" / "dist" / "record.umd.min.cjs"
#: Seconds between two sweeps of recordings whose retention ran out.
SWEEP_INTERVAL = 5.0
#: The rrweb event type of a custom event (rrweb's EventType.Custom): how the broker marks a recording it cut.
RRWEB_CUSTOM = 5
CAPPED_TAG = "broker.recording-capped"


def capped_marker(max_bytes: int) -> dict:
    """The last event of a recording that reached BROKER_RECORDING_MAX_BYTES; replayers show custom events."""
    return {"type": RRWEB_CUSTOM, "timestamp": int(time.time() * 1000),
            "data": {"tag": CAPPED_TAG, "payload": {"maxBytes": max_bytes,
                                                     "message": "The recording reached its size cap; nothing after "
                                                                "this was recorded (BROKER_RECORDING_MAX_BYTES)."}}}


class Recordings:
    def __init__(self, blobs: SnapshotStore, store: Store) -> None:
        self.blobs = blobs
        self.store = store

    @staticmethod
    def _folder(session_id: str) -> str:
        return f"{PREFIX}/{session_id}"

    def write_chunk(self, session_id: str, number: int, lines: list[bytes], capped: bool = False) -> int:
        """One chunk, whole, then named in the list; its size in the store (gzipped)."""
        blob = f"{self._folder(session_id)}/{number:06d}.ndjson.gz"
        with tempfile.NamedTemporaryFile(prefix="bb-recording-", suffix=".gz") as scratch:
            with gzip.GzipFile(fileobj=scratch, mode="wb", compresslevel=6, mtime=0) as packed:
                for line in lines:
                    packed.write(line)
                    packed.write(b"\n")
            scratch.flush()
            size = scratch.tell()
            self.blobs.put_blob(blob, Path(scratch.name))
        self.store.recordings.add_chunk(session_id, blob, size, len(lines), capped)
        return size

    def chunks(self, session_id: str) -> list[dict]:
        return self.store.recordings.chunks(session_id)

    def stream(self, chunks: list[dict]) -> Iterator[bytes]:
        """The events of ``chunks`` as one gzipped JSON array. The first chunk is opened before the first byte, so a
        store that cannot serve it raises before the answer starts (core.snapshots.SnapshotError)."""
        first = self.blobs.open_blob(chunks[0]["blob"]) if chunks else None
        return self._array(chunks, first)

    def _array(self, chunks: list[dict], first: object) -> Iterator[bytes]:
        packer = zlib.compressobj(6, zlib.DEFLATED, 31)
        yield packer.compress(b"[")
        separator = b""
        for index, chunk in enumerate(chunks):
            source = first if index == 0 else self.blobs.open_blob(chunk["blob"])
            with source, gzip.GzipFile(fileobj=source, mode="rb") as lines:  # type: ignore[arg-type]
                for line in lines:
                    line = line.rstrip(b"\n")
                    if line:
                        out = packer.compress(separator + line)
                        separator = b","
                        if out:
                            yield out
        yield packer.compress(b"]") + packer.flush()

    def delete(self, session_id: str) -> None:
        """The list first: a reader that lists after this finds nothing, one already streaming may fail mid-way."""
        self.store.recordings.forget(session_id)
        self.blobs.delete_blobs(self._folder(session_id))

    def sweep(self) -> list[str]:
        swept = self.store.recordings.take_expired(time.time())
        for session_id in swept:
            self.blobs.delete_blobs(self._folder(session_id))
            log.info("session %s: recording deleted (BROKER_DOWNLOAD_RETENTION)", session_id)
        return swept


def sweep_forever(recordings: Recordings, sleep: Callable[[float], object] = time.sleep) -> None:
    """The web process's loop (on a greenlet, with gevent's sleep); it survives Redis and store outages."""
    while True:
        try:
            recordings.sweep()
        except Exception as error:
            log.warning("sweeping recordings failed (%s); retrying", error)
        sleep(SWEEP_INTERVAL)
