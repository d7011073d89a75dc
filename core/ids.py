"""Identifiers and timestamps in the shapes the API shows them."""
from __future__ import annotations

import hashlib
import secrets
import time
from datetime import datetime, timezone

ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def utcnow_iso() -> str:
    return datetime.now(timezone.utc).strftime(ISO_FORMAT)


def iso_after(seconds: float) -> str:
    return datetime.fromtimestamp(time.time() + seconds, timezone.utc).strftime(ISO_FORMAT)


def iso_at(epoch: float) -> str:
    """Unix seconds as the API shows a moment; before year 1 or past 9999 it is clamped to those years."""
    try:
        moment = datetime.fromtimestamp(epoch, timezone.utc).replace(tzinfo=None, microsecond=0)
    except (OverflowError, ValueError, OSError):
        moment = datetime.max.replace(microsecond=0) if epoch > 0 else datetime.min
    return moment.isoformat() + "Z"


def now_ms() -> int:
    return int(time.time() * 1000)


def new_id(prefix: str) -> str:
    """A prefix and 128 bits of randomness: ids are names, unguessable but never credentials on their own."""
    return f"{prefix}_{secrets.token_hex(16)}"


def sha256_hex(text: str) -> str:
    """How secrets that are only ever compared (API keys, connect tokens) are kept at rest."""
    return hashlib.sha256(text.encode()).hexdigest()
