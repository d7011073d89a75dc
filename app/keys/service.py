"""Creating, showing, revoking and rotating API keys; the CLI and the /v1/keys resource both call these.

A key is ``bb_`` and 256 random bits, shown once at creation; the store keeps
its SHA-256 only. What is shown afterwards (``public``) never includes it.
"""
from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterable

from core.ids import iso_at
from core.store import Store

log = logging.getLogger(__name__)

KEY_PREFIX = "bb_"
PUBLIC_FIELDS = ("id", "name", "scopes", "createdAt", "lastUsedAt", "expiresAt")


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def create(store: Store, *, name: str, project: str, scopes: Iterable[str], expires_epoch: float | None) -> tuple[str, dict]:
    """The new key (to show once) and its record."""
    api_key = new_key()
    expires_at = iso_at(expires_epoch) if expires_epoch is not None else None
    record = store.api_keys.put(api_key, name=name, project=project, scopes=scopes,
                                expires_at=expires_at, expires_epoch=expires_epoch)
    log.info("api key %s (%s) created in project %s", record["id"], name, project)
    return api_key, {**record, "lastUsedAt": None}


def public(record: dict, with_project: bool = False) -> dict:
    shown = {name: record.get(name) for name in PUBLIC_FIELDS}
    return {**shown, "project": record["project"]} if with_project else shown


def get_owned(store: Store, project: str, key_id: str) -> dict | None:
    """Another project's key is as unknown as a made-up id."""
    record = store.api_keys.by_id(key_id)
    if record is None or record["project"] != project:
        return None
    return {**record, "lastUsedAt": store.api_keys.last_used(key_id)}


def revoke(store: Store, key_id: str) -> dict | None:
    record = store.api_keys.revoke(key_id)
    if record is not None:
        log.info("api key %s (%s) of project %s revoked", key_id, record["name"], record["project"])
    return record


def rotate(store: Store, key_id: str) -> tuple[str, dict] | None:
    """A new key with the old one's name, project, scopes and expiry; the old one is revoked at once."""
    old = store.api_keys.by_id(key_id)
    if old is None:
        return None
    api_key, record = create(store, name=old["name"], project=old["project"], scopes=old["scopes"],
                             expires_epoch=old.get("expiresEpoch"))
    revoke(store, key_id)
    return api_key, record


def outlives(expires_epoch: float | None, creator: dict) -> bool:
    """Whether a key expiring at ``expires_epoch`` (None: never) would outlive the key ``creator`` that makes it."""
    limit = creator.get("expiresEpoch")
    return limit is not None and (expires_epoch is None or expires_epoch > limit)


def expired(record: dict) -> bool:
    return record.get("expiresEpoch") is not None and record["expiresEpoch"] <= time.time()
