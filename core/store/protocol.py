"""Chromium's protocol description (/json/protocol), kept for CDP clients that discover it (app/relay_info.py).

A worker stores it once per browser version it launches; the newest one's wins.
It is Chromium's public description of CDP, no secret, and the same for every
session of one Chromium version.
"""
from __future__ import annotations

from core.store import keys
from core.store.base import RecordKind


class CdpProtocol(RecordKind):
    """A hash of two fields, so a launch can ask for the version alone: the description is ~1.7 MB."""

    def save(self, version: str, protocol: str) -> None:
        self.redis.hset(keys.CDP_PROTOCOL, mapping={"version": version, "protocol": protocol})

    def version(self) -> str | None:
        """The stored description's browser version (every launch checks it: reading the whole took ~8.5 ms)."""
        return self.redis.hget(keys.CDP_PROTOCOL, "version")

    def get(self) -> dict | None:
        """``{"version", "protocol"}`` (the JSON text as Chromium gave it), or None before any browser ran."""
        return self.redis.hgetall(keys.CDP_PROTOCOL) or None
