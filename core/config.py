"""Every setting of every process, read once from the environment.

Settings are grouped by the concern that reads them (``config.worker.pool_size``,
``config.web.port``), so a module takes the one section it needs and a reader finds
a setting beside its neighbours. Each field names its variable and default; the
README's configuration table is this file in prose. Nothing else in the code reads
``os.environ``, but for the hooks only tests set (core/test_hooks.py).
"""
from __future__ import annotations

import os
import re
import shlex
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from core.capacity import auto_pool_size


def _str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def _pool_size(value: str) -> int:
    return auto_pool_size() if value.strip().lower() == "auto" else int(value)


def _auto_or_int(name: str) -> int | None:
    """None for ``auto`` (the default), else the number."""
    value = _str(name, "auto")
    return None if value.strip().lower() == "auto" else int(value)


def _bool(name: str, default: bool) -> bool:
    return os.environ.get(name, "1" if default else "0").strip().lower() in ("1", "true", "yes", "on")


def _default_state_dir() -> str:
    return str(Path(tempfile.gettempdir()) / "browser-broker")


def _default_profiles_dir() -> str:
    """Apart from the state folder, so browsers' users can reach their profiles without reaching the state."""
    return str(Path(tempfile.gettempdir()) / "browser-broker-profiles")


@dataclass(frozen=True)
class WebSettings:
    """The web process: the API, the CDP relay and the live view's socket."""

    #: PORT: the web process (API + CDP relay) listens here.
    port: int = field(default_factory=lambda: _int("PORT", 8000))
    #: BROKER_BIND: address the web process binds.
    bind: str = field(default_factory=lambda: _str("BROKER_BIND", "0.0.0.0"))
    #: BROKER_PUBLIC_URL: base URL clients see; cdpUrl is built from it (http→ws, https→wss).
    public_url: str = field(default_factory=lambda: _str("BROKER_PUBLIC_URL", "http://127.0.0.1:8000"))
    #: BROKER_MAX_BODY_BYTES: larger request bodies are answered 413 unread (a PUT of 1000 maximal cookies is ~5.5 MB).
    max_body_bytes: int = field(default_factory=lambda: _int("BROKER_MAX_BODY_BYTES", 8 * 1024 * 1024))
    #: BROKER_SESSION_CREATES_PER_MINUTE: session creates one API key may make in any 60 s (429 beyond); 0: no cap.
    session_creates_per_minute: int = field(default_factory=lambda: _int("BROKER_SESSION_CREATES_PER_MINUTE", 0))
    #: BROKER_METRICS_KEY: if set, GET /metrics needs ``Authorization: Bearer <this>``; empty: open (keep it on a private bind).
    metrics_key: str = field(default_factory=lambda: _str("BROKER_METRICS_KEY", ""), repr=False)
    #: BROKER_RETRY_AFTER: seconds suggested in Retry-After when there is no capacity.
    retry_after: int = field(default_factory=lambda: _int("BROKER_RETRY_AFTER", 5))
    #: BROKER_CREATE_WAIT: seconds a create waits for a worker to take the launch.
    create_wait: float = field(default_factory=lambda: _float("BROKER_CREATE_WAIT", 30))
    #: BROKER_WARM_HANDOFF: seconds a create that took a warm browser's offer waits for that worker to claim the
    #: launch before it also joins the line for a cold launch (the warm worker died a moment ago, or its browser did).
    warm_handoff: float = field(default_factory=lambda: _float("BROKER_WARM_HANDOFF", 3))
    #: BROKER_RELAY_PING_INTERVAL: seconds of client silence before the relay pings it.
    relay_ping_interval: float = field(default_factory=lambda: _float("BROKER_RELAY_PING_INTERVAL", 20))
    #: BROKER_CLIENT_LEASE: seconds a CDP client counts as connected unless its web process renews it (a third of it).
    client_lease: float = field(default_factory=lambda: _float("BROKER_CLIENT_LEASE", 30))
    #: BROKER_MOVE_WAIT: seconds a CDP client connecting to a moving session waits for it to run again.
    move_wait: float = field(default_factory=lambda: _float("BROKER_MOVE_WAIT", 30))


@dataclass(frozen=True)
class SessionSettings:
    """What a session gets when its create says nothing, and how long its record stays."""

    #: BROKER_SESSION_RETENTION: seconds a stopped session's record stays readable.
    retention: int = field(default_factory=lambda: _int("BROKER_SESSION_RETENTION", 7 * 86400))
    #: BROKER_COOKIE_MAX_COUNT: most cookies one PUT /v1/sessions/:id/cookies may carry.
    cookie_max_count: int = field(default_factory=lambda: _int("BROKER_COOKIE_MAX_COUNT", 1000))
    #: BROKER_COOKIE_MAX_BYTES: most UTF-8 bytes of a cookie's name plus value (Chromium refuses over 4096).
    cookie_max_bytes: int = field(default_factory=lambda: _int("BROKER_COOKIE_MAX_BYTES", 4096))
    #: BROKER_MOVABLE: whether a create that says nothing about ``movable`` may move to another worker when its own
    #: stops (SIGTERM) instead of ending as ``shutdown``.
    movable: bool = field(default_factory=lambda: _bool("BROKER_MOVABLE", False))
    #: BROKER_CHECKPOINT_INTERVAL: seconds between checkpoints of a movable session whose create says nothing about
    #: ``checkpointInterval`` (its profile saved, if it changed, so a lost worker's session is relaunched); 0: none.
    checkpoint_interval: int = field(default_factory=lambda: _int("BROKER_CHECKPOINT_INTERVAL", 0))
    #: BROKER_RECORDING: whether a create that says nothing about ``recording`` records the session.
    recording: bool = field(default_factory=lambda: _bool("BROKER_RECORDING", False))
    #: BROKER_RECORDING_MAX_BYTES: most bytes (gzipped) one session's recording may hold; past it, a marker and no more.
    recording_max_bytes: int = field(default_factory=lambda: _int("BROKER_RECORDING_MAX_BYTES", 64 * 1024 * 1024))
    #: BROKER_HEADLESS_USER_AGENT: ``hide`` (sessions' default user agent says Chrome where Chromium's says
    #: HeadlessChrome) or ``keep`` (Chromium's own).
    headless_user_agent: str = field(default_factory=lambda: _str("BROKER_HEADLESS_USER_AGENT", "hide"))


@dataclass(frozen=True)
class WorkerSettings:
    """A worker: its pool, warm browsers, launches, heartbeat and shutdown."""

    #: BROKER_POOL_SIZE: sessions one worker runs at once; ``auto``: min(cores x 3, available memory / 300 MB)
    #: (core/capacity.py).
    pool_size: int = field(default_factory=lambda: _pool_size(_str("BROKER_POOL_SIZE", "auto")))
    #: BROKER_WARM_BROWSERS: the fewest browsers each worker keeps launched ahead of need (0 turns warm browsers
    #: off); more while creates come (BROKER_WARM_WINDOW). Four: a burst of four after a quiet spell meets a warm
    #: browser each (with one, three launched cold at once: 1.2-1.8 s on 2 cores); idle, the four cost ~700 MiB
    #: and under 1 % of a core each (docs/BENCHMARKS.md, "Arrivals").
    warm_browsers: int = field(default_factory=lambda: _int("BROKER_WARM_BROWSERS", 4))
    #: BROKER_WARM_MAX: warm browsers a worker may keep beyond its session slots (idle, they cost memory, not CPU;
    #: memory still bounds them when they launch); ``auto``: as many as BROKER_POOL_SIZE; 0: spares only in free
    #: session slots.
    warm_max: int | None = field(default_factory=lambda: _auto_or_int("BROKER_WARM_MAX"))
    #: BROKER_WARM_WINDOW: seconds of recent creates a worker sizes its warm browsers on (tasks/warm_demand.py);
    #: after that long without one it is back to BROKER_WARM_BROWSERS. 0: always BROKER_WARM_BROWSERS, whatever comes.
    warm_window: float = field(default_factory=lambda: _float("BROKER_WARM_WINDOW", 60))
    #: BROKER_LAUNCH_TIMEOUT: seconds a taken launch (browser start + first navigation) may last.
    launch_timeout: float = field(default_factory=lambda: _float("BROKER_LAUNCH_TIMEOUT", 45))
    #: BROKER_NAVIGATE_TIMEOUT: seconds the first navigation (``url``) may wait for its load event.
    navigate_timeout: float = field(default_factory=lambda: _float("BROKER_NAVIGATE_TIMEOUT", 20))
    #: BROKER_HEARTBEAT_INTERVAL: seconds between a worker's heartbeats.
    heartbeat_interval: float = field(default_factory=lambda: _float("BROKER_HEARTBEAT_INTERVAL", 5))
    #: BROKER_WORKER_TTL: a worker silent this long counts as gone; its sessions end as worker_lost within 3× this.
    ttl: float = field(default_factory=lambda: _float("BROKER_WORKER_TTL", 20))
    #: BROKER_SHUTDOWN_GRACE: seconds a worker told to stop (SIGTERM) has to stop its sessions, contexts saved.
    shutdown_grace: float = field(default_factory=lambda: _float("BROKER_SHUTDOWN_GRACE", 25))
    #: BROKER_MOVE_TIMEOUT: seconds a moving session may wait for a worker to run it again (none takes it: no room,
    #: no worker up, its saved state unreadable); then it ends as ``move_timeout`` and its saved state is deleted.
    move_timeout: float = field(default_factory=lambda: _float("BROKER_MOVE_TIMEOUT", 300))
    #: BROKER_STOP_NEVER_SENT_AFTER: seconds after a stop was requested past which a session still stopping, with no
    #: stop under way on its worker, is taken to have had its stop task never sent (the web process died, or Redis
    #: failed, between the move and the send): its worker then stops it itself. A stop task normally starts within
    #: milliseconds; one that comes later finds the work done.
    stop_never_sent_after: float = field(default_factory=lambda: _float("BROKER_STOP_NEVER_SENT_AFTER", 10))
    #: BROKER_STATE_DIR: the worker's private folder (snapshot scratch, local snapshots); kept 0700, never reachable by a browser.
    state_dir: Path = field(default_factory=lambda: Path(_str("BROKER_STATE_DIR", _default_state_dir())))
    #: BROKER_SHARED_USER_PROJECTS: ``one`` (a worker whose browsers share its OS user, not being root, holds sessions
    #: of one project at a time: their pages could read each other's files) or ``any`` (mix projects anyway).
    shared_user_projects: str = field(default_factory=lambda: _str("BROKER_SHARED_USER_PROJECTS", "one"))

    @property
    def spare_room(self) -> int:
        """Slots beyond the session slots that only warm browsers may take (BROKER_WARM_MAX)."""
        if self.warm_browsers <= 0:
            return 0
        return self.pool_size if self.warm_max is None else max(0, self.warm_max)


@dataclass(frozen=True)
class ChromiumSettings:
    """How a worker starts Chromium, and as whom."""

    #: BROKER_LAUNCHER: ``direct`` (the worker starts Chromium) or ``selenium`` (ChromeDriver does: a launch ~170 ms
    #: slower, ~31 MiB more per session, docs/BENCHMARKS.md).
    launcher: str = field(default_factory=lambda: _str("BROKER_LAUNCHER", "direct"))
    #: BROKER_CHROMIUM_PATH: the Chromium binary (Debian's wrapper by default).
    path: str = field(default_factory=lambda: _str("BROKER_CHROMIUM_PATH", "/usr/bin/chromium"))
    #: BROKER_CHROMEDRIVER_PATH: the ChromeDriver binary; Selenium Manager is never used.
    chromedriver_path: str = field(
        default_factory=lambda: _str("BROKER_CHROMEDRIVER_PATH", "/usr/bin/chromedriver")
    )
    #: BROKER_CHROMIUM_EXTRA_FLAGS: more Chromium flags, shell-quoted.
    extra_flags: tuple[str, ...] = field(
        default_factory=lambda: tuple(shlex.split(_str("BROKER_CHROMIUM_EXTRA_FLAGS", "")))
    )
    #: BROKER_PROFILES_DIR: browsers' profile folders (one per session, only its browser's user may enter); holds nothing else.
    profiles_dir: Path = field(default_factory=lambda: Path(_str("BROKER_PROFILES_DIR", _default_profiles_dir())))
    #: BROKER_BROWSER_USER: a root worker runs each browser as one of the users <this>-0, <this>-1, … (scripts/setup.sh), one per running browser on the host.
    browser_user: str = field(default_factory=lambda: _str("BROKER_BROWSER_USER", "bb-browser"))
    #: BROKER_CHROMIUM_SANDBOX: ``auto`` (Chromium's sandbox if this host allows it, else --no-sandbox, logged), ``on`` or ``off``.
    sandbox: str = field(default_factory=lambda: _str("BROKER_CHROMIUM_SANDBOX", "auto"))
    #: BROKER_SANDBOX_SETTLE: seconds the worker's start check gives a renderer to put its seccomp filter on
    #: before it counts as unsandboxed (a renderer applies it a moment after it starts; more on a loaded machine).
    sandbox_settle: float = field(default_factory=lambda: _float("BROKER_SANDBOX_SETTLE", 5))
    #: BROKER_CHROMIUM_POLICY_DIR: where Chromium reads managed policy; the worker checks the broker's policy is there.
    policy_dir: Path = field(
        default_factory=lambda: Path(_str("BROKER_CHROMIUM_POLICY_DIR", "/etc/chromium/policies/managed"))
    )


@dataclass(frozen=True)
class GatewaySettings:
    """A worker's gateway, through which a web process on another host reaches its browsers."""

    #: BROKER_WORKER_HOST: address the web process uses to reach this worker's gateway; ``auto``: this host's name resolved.
    worker_host: str = field(default_factory=lambda: _str("BROKER_WORKER_HOST", "127.0.0.1"))
    #: BROKER_GATEWAY_BIND: address the worker's gateway binds; empty: BROKER_WORKER_HOST's address.
    bind: str = field(default_factory=lambda: _str("BROKER_GATEWAY_BIND", ""))
    #: BROKER_GATEWAY_PORT: port of the worker's gateway; 0: a free port, advertised with each session.
    port: int = field(default_factory=lambda: _int("BROKER_GATEWAY_PORT", 0))


@dataclass(frozen=True)
class LiveViewSettings:
    """The live view's links and frames."""

    #: BROKER_LIVE_VIEW_TTL: seconds a live-view link (liveViewUrl) opens a viewer; answers hand out a fresh one once half is gone.
    ttl: float = field(default_factory=lambda: _float("BROKER_LIVE_VIEW_TTL", 3600))
    #: BROKER_LIVE_VIEW_QUALITY: JPEG quality (1-100) of the live view's frames.
    quality: int = field(default_factory=lambda: _int("BROKER_LIVE_VIEW_QUALITY", 60))
    #: BROKER_LIVE_VIEW_MAX_FPS: most frames per second a viewer gets (faster pages have their screencast paused between frames).
    max_fps: float = field(default_factory=lambda: _float("BROKER_LIVE_VIEW_MAX_FPS", 10))
    #: BROKER_LIVE_VIEW_BUSY_FPS: most frames per second while a CDP client is connected and the person has not used
    #: the view for 2 s: each frame costs the browser a capture, which slows the client's calls (bench/live_view.py).
    busy_fps: float = field(default_factory=lambda: _float("BROKER_LIVE_VIEW_BUSY_FPS", 4))


@dataclass(frozen=True)
class FileSettings:
    """Downloads, uploads, and files whose record is gone."""

    #: BROKER_DOWNLOAD_MAX_BYTES: most bytes one session's downloads may hold; a download past it is cancelled and the session shows ``downloadError``.
    download_max_bytes: int = field(default_factory=lambda: _int("BROKER_DOWNLOAD_MAX_BYTES", 1024 * 1024 * 1024))
    #: BROKER_DOWNLOAD_RETENTION: seconds a stopped session's downloads stay readable (in the snapshot store), then deleted.
    download_retention: int = field(default_factory=lambda: _int("BROKER_DOWNLOAD_RETENTION", 86400))
    #: BROKER_ORPHAN_FILES_GRACE: seconds a context's snapshots or a stopped session's downloads are kept once their
    #: record is gone (Redis lost its data), then deleted; a record back within it (Redis restored) keeps them.
    orphan_grace: float = field(default_factory=lambda: _float("BROKER_ORPHAN_FILES_GRACE", 3600))
    #: BROKER_UPLOAD_MAX_BYTES: largest file one POST /v1/sessions/:id/uploads may store (its own limit, not BROKER_MAX_BODY_BYTES).
    upload_max_bytes: int = field(default_factory=lambda: _int("BROKER_UPLOAD_MAX_BYTES", 100 * 1024 * 1024))


@dataclass(frozen=True)
class SnapshotSettings:
    """Where context snapshots (and moves, recordings, extensions) are kept."""

    #: BROKER_SNAPSHOT_URL: where context snapshots live: file:///path (one machine) or s3://bucket/prefix.
    url: str = field(
        default_factory=lambda: _str("BROKER_SNAPSHOT_URL", "file://" + str(Path(_str("BROKER_STATE_DIR", _default_state_dir())) / "snapshots"))
    )
    #: BROKER_S3_ENDPOINT_URL: an S3-compatible endpoint other than AWS (credentials: boto3's usual variables).
    s3_endpoint_url: str = field(default_factory=lambda: _str("BROKER_S3_ENDPOINT_URL", ""))
    #: BROKER_SNAPSHOT_KEEP: snapshot versions kept per context (the newest is the one restored).
    keep: int = field(default_factory=lambda: _int("BROKER_SNAPSHOT_KEEP", 2))
    #: BROKER_SNAPSHOT_MAX_BYTES: a larger profile archive is refused (the previous snapshot stays).
    max_bytes: int = field(default_factory=lambda: _int("BROKER_SNAPSHOT_MAX_BYTES", 200 * 1024 * 1024))


@dataclass(frozen=True)
class NetworkSettings:
    """What sessions' traffic may reach, and how proxies are dialled."""

    #: BROKER_EGRESS_ALLOW: what a session may reach beyond public addresses (core/egress.py): ``CIDR``,
    #: ``CIDR:PORT`` or ``CIDR:LOW-HIGH`` (IPv6 in brackets), comma- or space-separated. Default: nothing more.
    egress_allow: tuple[str, ...] = field(
        default_factory=lambda: tuple(e for e in re.split(r"[,\s]+", _str("BROKER_EGRESS_ALLOW", "")) if e)
    )
    #: BROKER_PROXY_CONNECT_TIMEOUT: seconds to reach an upstream proxy and pass its handshake before a load fails.
    proxy_connect_timeout: float = field(default_factory=lambda: _float("BROKER_PROXY_CONNECT_TIMEOUT", 10))
    #: BROKER_PROXY_CHECK_TARGET: host:port that POST /v1/proxies/:id/check asks the proxy to reach by default.
    proxy_check_target: str = field(default_factory=lambda: _str("BROKER_PROXY_CHECK_TARGET", "example.com:443"))


@dataclass(frozen=True)
class LogSettings:
    """What every process logs, and how."""

    #: BROKER_LOG_FORMAT: ``text`` (one line per event, ``[session=… project=… worker=…]``) or ``json`` (one object a line).
    format: str = field(default_factory=lambda: _str("BROKER_LOG_FORMAT", "text"))
    #: BROKER_LOG_LEVEL: the lowest level logged (DEBUG, INFO, WARNING, ERROR).
    level: str = field(default_factory=lambda: _str("BROKER_LOG_LEVEL", "INFO").upper())


@dataclass(frozen=True)
class Config:
    """Every setting, by concern: ``config.worker.pool_size``, ``config.web.port``, …."""

    #: REDIS_URL: Redis for records, the Celery broker and relay notifications.
    redis_url: str = field(default_factory=lambda: _str("REDIS_URL", "redis://127.0.0.1:6379/0"))
    #: BROKER_ENV: ``production`` or ``development``; only development may run without BROKER_SECRET_KEY or the Chromium policy.
    env: str = field(default_factory=lambda: _str("BROKER_ENV", "production"))
    #: BROKER_SECRET_KEY: encrypts stored proxy passwords and derives connect tokens; web and workers must share it;
    #: required outside development.
    secret_key: str = field(default_factory=lambda: _str("BROKER_SECRET_KEY", ""), repr=False)
    #: BROKER_BOOTSTRAP_API_KEY: if set, this key exists with every scope (project "default").
    bootstrap_api_key: str = field(default_factory=lambda: _str("BROKER_BOOTSTRAP_API_KEY", ""), repr=False)
    web: WebSettings = field(default_factory=WebSettings)
    sessions: SessionSettings = field(default_factory=SessionSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    chromium: ChromiumSettings = field(default_factory=ChromiumSettings)
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    live_view: LiveViewSettings = field(default_factory=LiveViewSettings)
    files: FileSettings = field(default_factory=FileSettings)
    snapshots: SnapshotSettings = field(default_factory=SnapshotSettings)
    network: NetworkSettings = field(default_factory=NetworkSettings)
    logs: LogSettings = field(default_factory=LogSettings)

    @property
    def development(self) -> bool:
        return self.env == "development"

    @property
    def create_lifetime(self) -> float:
        """Longest a create can take from its first write to a running browser, with a minute of slack.

        Records and holds of a create that never finished (a crashed web process)
        count as live this long, then as gone.
        """
        return self.web.create_wait + self.worker.launch_timeout + 60

    @property
    def worker_lost_bound(self) -> float:
        """Longest a vanished worker's sessions stay ``running``: a TTL of silence, then a reaper that was healthy a TTL.

        The second TTL only counts after a reaper's own start or a Redis outage
        (a reaper must first see every live worker heartbeat); the third is slack.
        """
        return 3 * self.worker.ttl

    @property
    def ws_base_url(self) -> str:
        base = self.web.public_url.rstrip("/")
        if base.startswith("https://"):
            return "wss://" + base[len("https://"):]
        if base.startswith("http://"):
            return "ws://" + base[len("http://"):]
        return base

    def cdp_url(self, session_id: str, token: str | None) -> str:
        """The session's CDP socket with its connect token (core.tokens) as ``?token=``."""
        url = f"{self.ws_base_url}/ws/session/{session_id}"
        return f"{url}?token={token}" if token else url

    def live_view_url(self, session_id: str, token: str, read_only: bool) -> str:
        """The session's live-view page with its live-view credential (core.tokens.LiveViewTokens)."""
        url = f"{self.web.public_url.rstrip('/')}/live/{session_id}?token={token}"
        return f"{url}&readOnly=1" if read_only else url


#: Variables a browser never gets: the broker's own settings (secrets among them) and cloud credentials.
_WITHHELD_FROM_BROWSERS = ("BROKER_", "REDIS_", "AWS_")


def browser_environment() -> dict[str, str]:
    """The worker's environment minus what only the broker may know.

    A browser process is what a tenant drives; nothing it could be made to
    reveal should open the broker's Redis or decrypt its secrets.
    """
    return {name: value for name, value in os.environ.items() if not name.startswith(_WITHHELD_FROM_BROWSERS)}


def load() -> Config:
    return Config()
