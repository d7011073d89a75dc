"""A session's recording over HTTP: read (one gzipped JSON array, streamed) and delete.

The chunks live in the snapshot store (core/recordings.py), so a recording is readable from any web process,
while the session runs (whole chunks so far) and after, until BROKER_DOWNLOAD_RETENTION passes; its record's
``recordingSalt`` is what opens the replay page (core/replay_links.py), until the recording is deleted.
"""
from __future__ import annotations

from collections.abc import Iterator

from flask import current_app
from flask_smorest import abort

from app.extensions import config, store
from app.sessions.service import get_visible
from core.recordings import Recordings
from core.replay_links import SALT_FIELD, ReplayLinks
from core.snapshots import SnapshotError, open_snapshot_store
from core.states import Status

NOT_RECORDED = "Session {} was not recorded (create it with `recording: true`), or its recording was deleted."


def recordings() -> Recordings:
    found = current_app.extensions.get("broker.recordings")
    if found is None:
        found = current_app.extensions["broker.recordings"] = Recordings(open_snapshot_store(config()), store())
    return found


def replay_links() -> ReplayLinks:
    found = current_app.extensions.get("broker.replay_links")
    if found is None:
        found = current_app.extensions["broker.replay_links"] = ReplayLinks.from_config(config())
    return found


def events_of(record: dict) -> Iterator[bytes]:
    """The recording as the API and the replay page send it; 404 when there is none, 503 when the store fails."""
    if not recorded(record):
        abort(404, message=NOT_RECORDED.format(record["id"]))
    try:
        return recordings().stream(recordings().chunks(record["id"]))
    except SnapshotError as error:
        abort(503, message=f"The recording cannot be read from the snapshot store: {error}",
              headers={"Retry-After": str(config().web.retry_after)})


def recorded(record: dict) -> bool:
    """Created with ``recording: true`` and not deleted since."""
    return bool(record.get(SALT_FIELD)) and not store().recordings.deleted(record["id"])


def read(project: str, session_id: str) -> Iterator[bytes]:
    return events_of(get_visible(store(), project, session_id))


def delete(project: str, session_id: str) -> None:
    """Only once the session has stopped: a running browser would go on writing chunks."""
    record = get_visible(store(), project, session_id)
    if not recorded(record):
        abort(404, message=NOT_RECORDED.format(session_id))
    if record["status"] != Status.STOPPED:
        abort(409, message=f"Session {session_id} is still {record['status']}: stop it, then delete its recording.")
    recordings().delete(session_id)
