"""Uploading, listing and deleting a project's extensions: the record in Redis, the files in the snapshot store."""
from __future__ import annotations

from flask_smorest import abort

from app.auth import owned
from core.extension_files import ExtensionInvalid, check, delete as delete_files, save
from core.ids import new_id, now_ms, utcnow_iso
from core.snapshots import SnapshotStore
from core.store import Store

PUBLIC = ("id", "name", "version", "fileName", "bytes", "files", "createdAt")


def public(record: dict) -> dict:
    return {name: record.get(name) for name in PUBLIC}


def create(store: Store, blobs: SnapshotStore, project: str, file_name: str | None, data: bytes) -> dict:
    """Checked whole before anything is stored; the files are written before the record, so a record always has
    them (a failure between the two leaves files no record names, which a delete of nothing never reaches)."""
    try:
        checked = check(data)
    except ExtensionInvalid as error:
        abort(422, message=str(error), errors={"files": {"file": [str(error)]}})
    extension_id = new_id("ext")
    save(blobs, extension_id, checked.archive)
    record = {"id": extension_id, "project": project, "name": checked.name, "version": checked.version,
              "fileName": file_name, "bytes": checked.unpacked_bytes, "files": checked.files,
              "createdAt": utcnow_iso(), "createdMs": now_ms()}
    store.extensions.create(record)
    return record


def get_visible(store: Store, project: str, extension_id: str) -> dict:
    return owned(store.extensions.get(extension_id), project, "extension", extension_id)


def delete(store: Store, blobs: SnapshotStore, project: str, extension_id: str) -> None:
    """Sessions already running keep their unpacked copy; a create naming it from now on is a 404."""
    get_visible(store, project, extension_id)
    store.extensions.delete(extension_id, project)
    delete_files(blobs, extension_id)
