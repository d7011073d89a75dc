"""Recordings in the snapshot store against a real Redis and a file:// store: chunks read back as one gzip stream
in order, the size cap's marker, deletion, and the retention sweep."""
from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

from core.orphan_files import OrphanFiles
from core.recordings import CAPPED_TAG, Recordings
from core.snapshots import LocalSnapshotStore
from core.store import Store, keys
from tasks.session_watch import Recording


def _events(recordings: Recordings, session_id: str) -> list[dict]:
    return json.loads(gzip.decompress(b"".join(recordings.stream(recordings.chunks(session_id)))))


def test_chunks_read_back_as_one_array_in_order(store: Store, tmp_path: Path):
    recordings = Recordings(LocalSnapshotStore(tmp_path), store)
    recording = Recording("ses_" + "1" * 32, recordings, max_bytes=10_000_000, on_capped=lambda: None)
    recording.take("tab-a", json.dumps([{"type": 4, "timestamp": 1}, {"type": 2, "timestamp": 2}]))
    recording.flush()
    recording.take("tab-b", json.dumps([{"type": 3, "timestamp": 3}]))
    recording.take("tab-b", "not json")
    recording.flush()
    recording.flush()
    events = _events(recordings, recording.session_id)
    assert [(e["type"], e["tabId"]) for e in events] == [(4, "tab-a"), (2, "tab-a"), (3, "tab-b")]
    assert len(recordings.chunks(recording.session_id)) == 2, "an empty buffer writes no chunk"


def test_the_cap_ends_the_recording_with_a_marker(store: Store, tmp_path: Path):
    recordings = Recordings(LocalSnapshotStore(tmp_path), store)
    capped: list[bool] = []
    recording = Recording("ses_" + "2" * 32, recordings, max_bytes=200, on_capped=lambda: capped.append(True))
    noise = [{"type": 3, "timestamp": i, "data": {"text": f"{i:x}" * 40}} for i in range(50)]
    recording.take("tab", json.dumps(noise))
    recording.flush()
    recording.take("tab", json.dumps(noise))
    recording.flush()
    events = _events(recordings, recording.session_id)
    assert capped == [True]
    assert events[-1]["type"] == 5 and events[-1]["data"]["tag"] == CAPPED_TAG
    assert len(events) == len(noise) + 1, "nothing after the cap"


def test_delete_and_the_retention_sweep(store: Store, tmp_path: Path):
    recordings = Recordings(LocalSnapshotStore(tmp_path), store)
    kept, expired = "ses_" + "3" * 32, "ses_" + "4" * 32
    for session_id in (kept, expired):
        recordings.write_chunk(session_id, 0, [b'{"type": 4}'])
    recordings.delete(kept)
    assert recordings.chunks(kept) == [] and store.recordings.deleted(kept)
    assert not (tmp_path / "recordings" / kept).exists()
    store.redis.zadd(keys.RECORDING_EXPIRIES, {expired: time.time() - 1})
    assert recordings.sweep() == [expired]
    assert not (tmp_path / "recordings" / expired).exists()


def test_a_recording_whose_record_is_gone_is_swept_after_the_grace(store: Store, tmp_path: Path):
    blobs = LocalSnapshotStore(tmp_path)
    recordings = Recordings(blobs, store)
    session_id = "ses_" + "5" * 32
    recordings.write_chunk(session_id, 0, [b'{"type": 4}'])
    clock = [0.0]
    orphans = OrphanFiles(blobs, store, grace=10, clock=lambda: clock[0])
    assert orphans.sweep() == []
    clock[0] = 11
    assert orphans.sweep() == [f"recordings/{session_id}"]
    assert not (tmp_path / "recordings" / session_id).exists()
