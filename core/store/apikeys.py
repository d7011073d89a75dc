"""API key records, kept under the key's SHA-256: the key itself is never stored."""
from __future__ import annotations

from collections.abc import Iterable

from core.ids import sha256_hex, utcnow_iso
from core.store import keys
from core.store.base import RecordKind, dump

ALL_SCOPES = (
    "sessions:read", "sessions:write",
    "contexts:read", "contexts:write",
    "proxies:read", "proxies:write",
)


class ApiKeyRecords(RecordKind):
    def put(self, api_key: str, *, name: str, project: str, scopes: Iterable[str]) -> dict:
        record = {"name": name, "project": project, "scopes": sorted(set(scopes)), "createdAt": utcnow_iso()}
        self.redis.set(keys.api_key(sha256_hex(api_key)), dump(record))
        return record

    def get(self, api_key: str) -> dict | None:
        return self._load(keys.api_key(sha256_hex(api_key)))

    def ensure(self, api_key: str, *, name: str, project: str, scopes: Iterable[str]) -> None:
        """Idempotent: the bootstrap key is ensured at every process start."""
        existing = self.get(api_key)
        if existing is None or set(existing["scopes"]) != set(scopes) or existing["project"] != project:
            self.put(api_key, name=name, project=project, scopes=scopes)
