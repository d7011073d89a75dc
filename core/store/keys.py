"""Every Redis key the broker uses, in one place: a record kind's module asks here rather than spelling keys."""
from __future__ import annotations

PREFIX = "bb"
STOP_CHANNEL = f"{PREFIX}:session-stops"
SESSION_EXPIRIES = f"{PREFIX}:session-expiries"
SESSION_IDLE = f"{PREFIX}:session-idle"
WORKERS = f"{PREFIX}:workers"
API_KEYS = f"{PREFIX}:apikeys"
API_KEYS_LAST_USED = f"{PREFIX}:apikeys:last-used"
#: How many workers have been declared lost so far: a create whose launch may have gone to one sends it again.
WORKERS_LOST = f"{PREFIX}:workers-lost"
#: Offers of warm browsers, one entry per browser ready to be handed to a create (core.store.warm).
WARM_OFFERS = f"{PREFIX}:warm-offers"
#: Stopped sessions' archived downloads (score: when they are to be deleted), swept by core/download_archive.py.
DOWNLOAD_EXPIRIES = f"{PREFIX}:download-expiries"
#: Chromium's CDP protocol description (/json/protocol) as the newest worker's browser gave it: a hash, {version, protocol}.
CDP_PROTOCOL = f"{PREFIX}:cdp-protocol-hash"
#: Sessions moving (score: when their move began), until a worker runs them again or they stop (core/reaping.py ends
#: those past BROKER_MOVE_TIMEOUT).
MOVES_UNDER_WAY = f"{PREFIX}:moves-under-way"
#: Creates waiting for a cold launch (score: when they joined), so a refill leaves them the last slot.
LAUNCH_LINE = f"{PREFIX}:launch-line"


def session(session_id: str) -> str:
    return f"{PREFIX}:session:{session_id}"


def create_deadline(session_id: str) -> str:
    """Exists while the session's create still waits for it: its TTL is the create's deadline (core.states)."""
    return f"{PREFIX}:session:{session_id}:create-deadline"


def session_clients(session_id: str) -> str:
    return f"{PREFIX}:session:{session_id}:clients"


def session_events(session_id: str) -> str:
    """A session's event log (a stream: core.store.session_events)."""
    return f"{PREFIX}:session:{session_id}:events"


def recording_chunks(session_id: str) -> str:
    """A session's recording: its chunks in the snapshot store, in order (a list: core.store.recordings)."""
    return f"{PREFIX}:session:{session_id}:recording"


def recording_deleted(session_id: str) -> str:
    """Exists once a session's recording was deleted (DELETE …/recording): its replay link is dead too."""
    return f"{PREFIX}:session:{session_id}:recording-deleted"


#: Stopped sessions' recordings (score: when they are to be deleted), swept by core/recordings.py.
RECORDING_EXPIRIES = f"{PREFIX}:recording-expiries"


def launch_events(session_id: str) -> str:
    return f"{PREFIX}:launch-events:{session_id}"


def project_sessions(project: str) -> str:
    return f"{PREFIX}:project:{project}:sessions"


def project_live(project: str) -> str:
    return f"{PREFIX}:project:{project}:live"


def project_settings(project: str) -> str:
    return f"{PREFIX}:project:{project}:settings"


def project_contexts(project: str) -> str:
    return f"{PREFIX}:project:{project}:contexts"


def project_proxies(project: str) -> str:
    return f"{PREFIX}:project:{project}:proxies"


def project_extensions(project: str) -> str:
    return f"{PREFIX}:project:{project}:extensions"


def extension(extension_id: str) -> str:
    return f"{PREFIX}:extension:{extension_id}"


def context(context_id: str) -> str:
    return f"{PREFIX}:context:{context_id}"


def context_cookies(context_id: str) -> str:
    return f"{PREFIX}:context:{context_id}:cookies"


def context_holder(context_id: str) -> str:
    return f"{PREFIX}:context:{context_id}:holder"


def proxy(proxy_id: str) -> str:
    return f"{PREFIX}:proxy:{proxy_id}"


def proxy_sessions(proxy_id: str) -> str:
    return f"{PREFIX}:proxy:{proxy_id}:sessions"


def api_key(key_hash: str) -> str:
    return f"{PREFIX}:apikey:{key_hash}"


def api_key_id(key_id: str) -> str:
    """A key's id → the hash its record is stored under."""
    return f"{PREFIX}:apikey-id:{key_id}"


def api_key_revoked(key_hash: str) -> str:
    return f"{PREFIX}:apikey-revoked:{key_hash}"


def project_api_keys(project: str) -> str:
    return f"{PREFIX}:project:{project}:apikeys"


def recent_creates(key_id: str) -> str:
    """When one API key's session creates of the last minute happened (a sorted set of times)."""
    return f"{PREFIX}:apikey-creates:{key_id}"


def worker(name: str) -> str:
    return f"{PREFIX}:worker:{name}"


def worker_sessions(queue: str) -> str:
    return f"{PREFIX}:worker-sessions:{queue}"


def project_running(project: str) -> str:
    return f"{PREFIX}:project:{project}:running"


def project_stopped(project: str) -> str:
    return f"{PREFIX}:project:{project}:stopped"


#: Sessions that entered / left each status (hashes: status → count); /metrics reads them (core.store.metrics).
SESSION_STATUS_ENTERED = f"{PREFIX}:metrics:session-status-entered"
SESSION_STATUS_LEFT = f"{PREFIX}:metrics:session-status-left"


def metric_counter(name: str) -> str:
    """One counter's values by label value (a hash)."""
    return f"{PREFIX}:metrics:counter:{name}"


def metric_histogram(name: str, label: str) -> str:
    """One histogram series (a hash: cumulative bucket counts by upper bound, ``sum`` and ``count``)."""
    return f"{PREFIX}:metrics:histogram:{name}:{label}"
