"""Contexts: records in the store, archives in the snapshot store, one running session at a time."""
from __future__ import annotations

import logging

from flask_smorest import abort

from app.auth import owned
from core.config import Config
from core.ids import new_id, utcnow_iso
from core.store import Store
from core.cookies import matches_domain, sort_key
from core.snapshots import open_snapshot_store

log = logging.getLogger(__name__)


def create(store: Store, project: str, name: str | None) -> dict:
    now = utcnow_iso()
    record = {
        "id": new_id("ctx"), "project": project, "name": name, "createdAt": now, "updatedAt": now,
        "cookieCount": 0, "snapshotBytes": 0, "lastSessionId": None,
        "snapshotVersion": None, "snapshotVersions": [],
    }
    store.contexts.create(record)
    return record


def get_owned(store: Store, project: str, context_id: str) -> dict:
    """Another project's context is as unknown as a made-up id."""
    return owned(store.contexts.get(context_id), project, "context", context_id)


def cookies(store: Store, project: str, context_id: str, domain: str | None) -> dict:
    get_owned(store, project, context_id)
    found = [c for c in store.contexts.cookies(context_id) if not domain or matches_domain(c["domain"], domain)]
    found.sort(key=sort_key)
    return {"contextId": context_id, "exportedAt": utcnow_iso(), "count": len(found), "cookies": found}


def delete(store: Store, config: Config, project: str, context_id: str) -> None:
    """Held for the whole delete, so no session can start on a context that is half gone."""
    record = get_owned(store, project, context_id)
    deleter = new_id("del")
    holder = store.contexts.claim(context_id, deleter)
    if holder is not None:
        abort(409, message=f"Context {context_id} is in use by {holder}; stop it first.")
    try:
        snapshots = open_snapshot_store(config)
        for version in snapshots.versions(context_id):
            snapshots.delete(context_id, version)
        store.contexts.delete(context_id, record["project"])
    finally:
        store.contexts.release(context_id, deleter)
    log.info("context %s deleted", context_id)
