"""API key records, kept under the key's SHA-256: the key itself is never stored.

Every request reads its key's record from Redis; no process caches it, so a
revoke (which deletes the record) refuses the key's very next request on every
web process. A key has an id (``key_…``) so that operators and the API can list
and revoke it without handling the key again. A revoked key's hash is kept as a
tombstone, so the bootstrap key an environment variable names is not brought
back by the next restart.
"""
from __future__ import annotations

import time
from collections.abc import Iterable

from core.ids import new_id, now_ms, sha256_hex, utcnow_iso
from core.store import keys
from core.store.base import Pipeline, RecordKind, dump, load

ALL_SCOPES = (
    "sessions:read", "sessions:write",
    "contexts:read", "contexts:write",
    "proxies:read", "proxies:write",
    "keys:admin",
)
#: Seconds between two writes of one key's lastUsedAt by one process: a request costs no extra write.
LAST_USED_EVERY = 60.0


class ApiKeyRecords(RecordKind):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._last_written: dict[str, float] = {}

    def put(self, api_key: str, *, name: str, project: str, scopes: Iterable[str],
            expires_at: str | None = None, expires_epoch: float | None = None) -> dict:
        """Store a new key's record (the key only as its hash), in its project's index and the global one.

        Written only if no record has that hash, so processes ensuring one bootstrap key at once agree.
        """
        key_hash = sha256_hex(api_key)
        record = {
            "id": new_id("key"), "name": name, "project": project, "scopes": sorted(set(scopes)),
            "createdAt": utcnow_iso(), "createdMs": now_ms(), "expiresAt": expires_at, "expiresEpoch": expires_epoch,
        }
        if not self.redis.set(keys.api_key(key_hash), dump(record), nx=True):
            return self.get(api_key) or record
        self._index(key_hash, record)
        return record

    def get(self, api_key: str) -> dict | None:
        """The record of a live (not revoked) key, by the key itself: what every request does."""
        key_hash = sha256_hex(api_key)
        record = self._load(keys.api_key(key_hash))
        if record is not None and "id" not in record:
            record = self._adopt(key_hash, record)
        return record

    def by_id(self, key_id: str) -> dict | None:
        key_hash = self.redis.get(keys.api_key_id(key_id))
        return self._load(keys.api_key(key_hash)) if key_hash else None

    def page(self, project: str | None, start: int, count: int) -> tuple[list[dict], int]:
        """One page of a project's keys (every project's if None), newest first, with lastUsedAt."""
        index = keys.project_api_keys(project) if project else keys.API_KEYS
        total = self.redis.zcard(index)
        if start >= total:
            return [], total
        ids = self.redis.zrevrange(index, start, start + count - 1)
        hashes = self.redis.mget([keys.api_key_id(i) for i in ids]) if ids else []
        raws = self.redis.mget([keys.api_key(h) for h in hashes if h]) if any(hashes) else []
        records = [load(raw) for raw in raws if raw]
        last_used = self.redis.hmget(keys.API_KEYS_LAST_USED, [r["id"] for r in records]) if records else []
        for record, used in zip(records, last_used):
            record["lastUsedAt"] = used
        return records, total

    def last_used(self, key_id: str) -> str | None:
        return self.redis.hget(keys.API_KEYS_LAST_USED, key_id)

    def touch(self, key_id: str) -> None:
        """Note that the key was used; written at most once a minute per key by each process."""
        now = time.monotonic()
        if now - self._last_written.get(key_id, -LAST_USED_EVERY) < LAST_USED_EVERY:
            return
        self._last_written[key_id] = now
        self.redis.hset(keys.API_KEYS_LAST_USED, key_id, utcnow_iso())

    def revoke(self, key_id: str) -> dict | None:
        """Delete the key's record at once (its next request is refused); None if no such key."""
        id_key = keys.api_key_id(key_id)

        def revoke(pipe: Pipeline) -> dict | None:
            key_hash = pipe.get(id_key)
            record = load(pipe.get(keys.api_key(key_hash))) if key_hash else None
            if record is None:
                return None
            pipe.multi()
            pipe.delete(keys.api_key(key_hash), id_key)
            pipe.zrem(keys.project_api_keys(record["project"]), key_id)
            pipe.zrem(keys.API_KEYS, key_id)
            pipe.hdel(keys.API_KEYS_LAST_USED, key_id)
            pipe.set(keys.api_key_revoked(key_hash), utcnow_iso())
            return record

        return self.redis.transaction(revoke, id_key, value_from_callable=True)

    def ensure(self, api_key: str, *, name: str, project: str, scopes: Iterable[str]) -> bool:
        """Idempotent, for the bootstrap key at every process start; False (nothing written) if it was revoked."""
        key_hash = sha256_hex(api_key)
        if self.redis.exists(keys.api_key_revoked(key_hash)):
            return False
        existing = self.get(api_key)
        if existing is None:
            self.put(api_key, name=name, project=project, scopes=scopes)
        elif set(existing["scopes"]) != set(scopes) or existing["project"] != project:
            pipe = self.redis.pipeline()
            pipe.zrem(keys.project_api_keys(existing["project"]), existing["id"])
            pipe.set(keys.api_key(key_hash), dump({**existing, "project": project, "scopes": sorted(set(scopes))}), xx=True)
            pipe.zadd(keys.project_api_keys(project), {existing["id"]: existing["createdMs"]})
            pipe.execute()
        return True

    def _adopt(self, key_hash: str, record: dict) -> dict:
        """Give a key stored before keys had ids its id (derived from the hash, so racing adopters agree)."""
        record = {**record, "id": f"key_{key_hash[:32]}", "createdMs": record.get("createdMs", now_ms()),
                  "expiresAt": record.get("expiresAt"), "expiresEpoch": record.get("expiresEpoch")}
        self.redis.set(keys.api_key(key_hash), dump(record), xx=True)
        self._index(key_hash, record)
        return record

    def _index(self, key_hash: str, record: dict) -> None:
        pipe = self.redis.pipeline()
        pipe.set(keys.api_key_id(record["id"]), key_hash)
        pipe.zadd(keys.project_api_keys(record["project"]), {record["id"]: record["createdMs"]})
        pipe.zadd(keys.API_KEYS, {record["id"]: record["createdMs"]})
        pipe.execute()
