"""Chromium's protocol description (/json/protocol), kept for CDP clients that discover it (app/relay_info.py).

A worker stores it once per browser version it launches; the newest one's wins.
It is Chromium's public description of CDP, no secret, and the same for every
session of one Chromium version.
"""
from __future__ import annotations

import json

from core.store import keys
from core.store.base import RecordKind


class CdpProtocol(RecordKind):
    def save(self, version: str, protocol: str) -> None:
        self.redis.set(keys.CDP_PROTOCOL, json.dumps({"version": version, "protocol": protocol}))

    def get(self) -> dict | None:
        """``{"version", "protocol"}`` (the JSON text as Chromium gave it), or None before any browser ran."""
        raw = self.redis.get(keys.CDP_PROTOCOL)
        return json.loads(raw) if raw else None
