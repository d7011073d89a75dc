"""A session's browser options, held for every target of its browser, from the worker.

One CDP connection per session's browser, open for the browser's life, auto-attaches
browser-wide with ``waitForDebuggerOnStart``: every new target (the first tab, tabs
and popups a page opens, pages of contexts a client creates, their out-of-process
iframes and workers) stops before its first script, gets the session's overrides
on its own flat session, and only then runs (``Runtime.runIfWaitingForDebugger``).
So no page of the session ever runs a script under Chromium's defaults, and no
client has to repeat the options per tab. The overrides belong to this connection's
sessions: they hold while the browser runs, and a client's own override of the same
setting on its own session takes over (viewport, user agent, headers).

Time zone and locale are launch settings, not overrides: Chromium takes one time zone
and one locale override per renderer and refuses a second, so a session's own would
make a client's fail (Playwright's ``new_context(locale=..., timezone_id=...)`` on
every page it opens). Chromium's process gets ``TZ`` and ``LANGUAGE`` (its UI locale,
which is ``Intl``'s default, from the chromium-l10n package's locale files) and
``--lang``/``--accept-lang`` (``navigator.language(s)``, ``Accept-Language``), which
hold in every target, workers included, and leave a client free to override them.

A target a client creates with its URL (``Target.createTarget {url}``, a popup)
starts its navigation in the browser process before the target is attached, so its
first document request would leave with Chromium's own user agent and without the
extra headers. For a session with either, the connection therefore also intercepts
document requests browser-wide (``Fetch`` on the browser's own session) and gives
such a request what its target's overrides would have: it is recognised by the
browser's own user agent or a missing extra header, so a client's own user agent is
left alone.

Every session gets this connection, with options or without: the default user agent
says ``Chrome`` where headless Chromium's says ``HeadlessChrome``, with client hints
that match (BROKER_HEADLESS_USER_AGENT=keep leaves Chromium's own). Extensions are
applied at launch too: unpacked from the snapshot store into the browser's own temp
folder, named by ``--load-extension`` (tasks/chromium_flags.py).
"""
from __future__ import annotations

import logging
import os
import platform
import threading
from dataclasses import dataclass, field
from pathlib import Path

from websocket import WebSocketException

from core.browser_options import RESOURCE_TYPES, opened
from core.cdp import CdpConnection
from core.config import Config
from core.crypto import SecretBox
from core.extension_files import unpack
from core.snapshots import SnapshotError, SnapshotStore
from tasks.chromium_flags import extension_flags, locale_flags
from tasks.pool import ProfileStep
from tasks.running_browser import RunningBrowser, session_temp_dir
from tasks.warm import KEY_PREFIX as WARM_PREFIX

log = logging.getLogger(__name__)

#: Targets whose pages render: every override applies to them.
PAGES = ("page", "iframe")
#: Targets that run scripts without a page: only what their network and user agent see applies.
WORKERS = ("worker", "shared_worker", "service_worker")
#: Browser-wide auto-attach: CDP's default filter, and the omnibox popups headless Chromium builds as hidden pages.
TARGET_FILTER = [{"type": "browser", "exclude": True}, {"type": "tab", "exclude": True},
                 {"type": "browser_ui", "exclude": True}, {}]
#: Seconds the worker waits for the browser's answers while it sets a session up.
SETUP_TIMEOUT = 10.0
#: Chromium's GREASE brand (components/embedder_support/user_agent_utils.cc), seeded by the major version.
GREASE_CHARS = (" ", "(", ":", "-", ".", "/", ")", ";", "=", "?", "_")
GREASE_VERSIONS = ("8", "99", "24")
#: Where each browser's extensions are unpacked, inside its temp folder (its user's, deleted with it).
EXTENSIONS_FOLDER = "extensions"
ARCHITECTURES = {"x86_64": ("x86", "64"), "amd64": ("x86", "64"), "aarch64": ("arm", "64"), "arm64": ("arm", "64")}


def user_agent_metadata(full_version: str, mobile: bool) -> dict:
    """Client hints (``navigator.userAgentData``, ``Sec-CH-UA*``) as Chromium itself gives them, which an override
    without metadata would drop: its brand, the GREASE brand and their order from the major version."""
    major = int(full_version.split(".")[0] or 0)
    grease = {"brand": f"Not{GREASE_CHARS[major % 11]}A{GREASE_CHARS[(major + 1) % 11]}Brand",
              "version": GREASE_VERSIONS[major % 3]}
    chromium = {"brand": "Chromium", "version": str(major)}
    brands = [grease, chromium] if major % 2 == 0 else [chromium, grease]
    full = [{"brand": b["brand"], "version": full_version if b is chromium else f"{grease['version']}.0.0.0"}
            for b in brands]
    architecture, bitness = ARCHITECTURES.get(platform.machine().lower(), ("", ""))
    return {"brands": brands, "fullVersionList": full, "fullVersion": full_version, "platform": "Linux",
            "platformVersion": "", "architecture": architecture, "model": "", "mobile": mobile, "bitness": bitness,
            "wow64": False}


def user_agent_override(config: Config, browser: RunningBrowser, options: dict) -> dict | None:
    """``Emulation.setUserAgentOverride``'s parameters, or None to leave Chromium's user agent alone. No
    ``acceptLanguage``: the launch's ``--accept-lang`` says it (tasks/chromium_flags.py locale_flags)."""
    if options.get("userAgent"):
        return {"userAgent": options["userAgent"]}
    if config.sessions.headless_user_agent == "keep":
        return None
    mobile = bool((options.get("viewport") or {}).get("mobile"))
    full_version = browser.version.split("/")[-1]
    return {"userAgent": browser.user_agent.replace("HeadlessChrome/", "Chrome/"),
            "userAgentMetadata": user_agent_metadata(full_version, mobile)}


@dataclass(frozen=True)
class LaunchParts:
    """What a session's options add to its browser's launch: flags, environment and the profile's step before it."""

    flags: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    prepare: ProfileStep | None = None


class SessionOptions:
    """One browser's connection and the commands each new target of it gets."""

    def __init__(self, config: Config, browser: RunningBrowser, options: dict) -> None:
        self.options = options
        self.user_agent = user_agent_override(config, browser, options)
        self._chromium_agent = browser.user_agent
        self._lock = threading.Lock()
        self._contexts: set[str] = set()
        self._page_sessions: list[str] = []
        self.cdp = CdpConnection(browser.ws_url(), timeout=SETUP_TIMEOUT)
        try:
            self.cdp.subscribe(self._attached, "Target.attachedToTarget")
            self.cdp.subscribe(self._paused, "Fetch.requestPaused")
            # The default user agent is the launch's own (tasks/chromium_flags.py), so a first request carries it.
            if options.get("userAgent") or options.get("extraHTTPHeaders"):
                self.cdp.call("Fetch.enable", {"patterns": [{"resourceType": "Document", "requestStage": "Request"}]})
            # Every other event (the network's, with extra headers) is read and let go, never kept.
            self.cdp.subscribe(lambda _: None)
            # Targets already open (the first tab) are attached now, not stopped: their overrides are confirmed
            # below, before the session is handed out.
            self.cdp.auto_attach(wait_for_debugger=True, filter=TARGET_FILTER)
            with self._lock:
                existing = list(self._page_sessions)
            # A renderer runs a session's commands in order: its answer to this one means the overrides hold. (Not
            # Runtime.evaluate: on a fresh tab it builds the page's script context first, ~160 ms.)
            for session in existing:
                self.cdp.call("Runtime.getIsolateId", None, session)
        except BaseException:
            self.cdp.abort()
            raise
        self._thread = threading.Thread(target=self._listen, name="browser-options", daemon=True)
        self._thread.start()

    def open(self) -> bool:
        """Whether the connection still holds the options (its reader ends with it)."""
        return self._thread.is_alive()

    def close(self) -> None:
        self.cdp.abort()

    def _listen(self) -> None:
        """At the worker's own priority: a warm browser's connection is opened by the warm keeper, whose niceness a
        new thread inherits, and every new target of the session waits for this thread to let it run."""
        try:
            os.setpriority(os.PRIO_PROCESS, 0, os.getpriority(os.PRIO_PROCESS, os.getpid()))
        except OSError:
            pass
        self.cdp.listen()

    def _attached(self, event: dict) -> None:
        """On the reading thread: only sends (a session's commands run in order, the last one lets the target run)."""
        params = event["params"]
        session, info = params["sessionId"], params["targetInfo"]
        kind, context = info.get("type"), info.get("browserContextId")
        try:
            if context and self.options.get("geolocation"):
                with self._lock:
                    new_context = context not in self._contexts
                    self._contexts.add(context)
                if new_context:
                    self.cdp.send("Browser.grantPermissions",
                                  {"permissions": ["geolocation"], "browserContextId": context})
            if kind in PAGES:
                self._page(session, top=kind == "page" and "sessionId" not in event)
            elif kind in WORKERS:
                self._network(session)
            if params.get("waitingForDebugger"):
                self.cdp.send("Runtime.runIfWaitingForDebugger", None, session)
        except (WebSocketException, OSError):
            return

    def _page(self, session: str, top: bool) -> None:
        options, send = self.options, self.cdp.send
        viewport = options.get("viewport")
        if viewport and top:
            send("Emulation.setDeviceMetricsOverride", {
                "width": viewport["width"], "height": viewport["height"],
                "deviceScaleFactor": viewport.get("deviceScaleFactor", 1), "mobile": viewport.get("mobile", False),
                "screenWidth": viewport["width"], "screenHeight": viewport["height"]}, session)
            if viewport.get("mobile"):
                send("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 5}, session)
        if self.user_agent:
            send("Emulation.setUserAgentOverride", self.user_agent, session)
        if options.get("geolocation"):
            where = options["geolocation"]
            send("Emulation.setGeolocationOverride", {"latitude": where["latitude"], "longitude": where["longitude"],
                                                      "accuracy": where.get("accuracy", 100)}, session)
        self._network(session)
        # This target's own children (out-of-process iframes, workers) stop for their overrides too.
        send("Target.setAutoAttach", {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": True}, session)
        if top:
            with self._lock:
                self._page_sessions.append(session)

    def _network(self, session: str) -> None:
        """Headers and blocked types live in the network domains, which pages and workers both have."""
        options, send = self.options, self.cdp.send
        if options.get("extraHTTPHeaders"):
            # Chromium adds extra headers only for a session with the network domain on (checked on 156).
            send("Network.enable", {"maxTotalBufferSize": 0, "maxResourceBufferSize": 0}, session)
            send("Network.setExtraHTTPHeaders", {"headers": options["extraHTTPHeaders"]}, session)
        if options.get("blockResources"):
            send("Fetch.enable", {"patterns": [{"resourceType": RESOURCE_TYPES[name], "requestStage": "Request"}
                                               for name in options["blockResources"]]}, session)

    def _paused(self, event: dict) -> None:
        """On a target's session only blocked types are paused (Fetch.enable's patterns): each fails before a byte
        is sent. On the browser's, every document request: continued, with the session's options if it left
        without them."""
        request_id, session = event["params"]["requestId"], event.get("sessionId")
        try:
            if session:
                self.cdp.send("Fetch.failRequest", {"requestId": request_id, "errorReason": "BlockedByClient"},
                              session)
                return
            headers = self._first_request_headers(event["params"]["request"]["headers"])
            self.cdp.send("Fetch.continueRequest", {"requestId": request_id, **(
                {"headers": [{"name": name, "value": value} for name, value in headers.items()]} if headers else {})})
        except (WebSocketException, OSError):
            return

    def _first_request_headers(self, headers: dict[str, str]) -> dict[str, str] | None:
        """The headers a request sent before its target's overrides should have had; None when it has them."""
        changed = dict(headers)
        named = {name.lower(): name for name in headers}
        if self.user_agent and headers.get(named.get("user-agent", "")) == self._chromium_agent:
            changed[named["user-agent"]] = self.user_agent["userAgent"]
            if "userAgentMetadata" not in self.user_agent:
                # An override without client hints: Chromium then sends none, and neither does this request.
                changed = {name: value for name, value in changed.items() if not name.lower().startswith("sec-ch-ua")}
        for name, value in (self.options.get("extraHTTPHeaders") or {}).items():
            if name.lower() not in named:
                changed[name] = value
        return changed if changed != headers else None


class BrowserOptions:
    """The worker's: each session's options by session id, from hand-over (or launch) until its browser ends."""

    def __init__(self, config: Config, snapshots: SnapshotStore, box: SecretBox) -> None:
        self.config = config
        self.snapshots = snapshots
        self.box = box
        self._lock = threading.Lock()
        self._sessions: dict[str, SessionOptions] = {}

    def prepare(self, key: str, browser: RunningBrowser) -> None:
        """A warm browser's connection, opened before it is offered, with no options of a session's own (only the
        default user agent): a create with none keeps it as it is (:meth:`start`), so its hand-over opens no
        connection, attaches nothing and waits for no answer. Follows the browser to its session through the
        pool's rekey hooks, as its session watch does."""
        if self.config.sessions.headless_user_agent == "keep":
            return
        try:
            applied = SessionOptions(self.config, browser, {})
        except Exception:  # the hand-over opens one then, as for any browser
            log.exception("%s: the browser options' connection could not be opened", key)
            return
        self._keep(key, applied)

    def rekey(self, old: str, new: str) -> None:
        with self._lock:
            applied = self._sessions.pop(old, None)
            if applied is not None:
                self._sessions[new] = applied

    def start(self, session_id: str, browser: RunningBrowser, record: dict) -> dict:
        """Before the session is handed out (and before its first page): the record's fields that say what it got.

        A warm browser whose connection was opened with the same options (none) keeps it; one opened with other
        options is closed first, so that only the session's own overrides hold. A browser that does not take the
        connection runs without its options, said in the log: it answered CDP a moment ago, and a create is
        better answered than held for it. A warm browser keeps the profile folder it was launched with, named
        after its warm key."""
        options = opened(record.get("browserOptions") or {}, self.box)
        launch = {"launch": "warm" if browser.profile_dir.name.startswith(WARM_PREFIX) else "cold"}
        with self._lock:
            prepared = self._sessions.get(session_id)
        if prepared is not None and prepared.options == options and prepared.open():
            return launch
        self.stop(session_id)
        if not options and self.config.sessions.headless_user_agent == "keep":
            return launch  # nothing to hold: no connection at all
        try:
            applied = SessionOptions(self.config, browser, options)
        except Exception:
            log.exception("session %s: its browser options could not be applied", session_id,
                          extra={"session": session_id})
        else:
            self._keep(session_id, applied)
        return launch

    def _keep(self, key: str, applied: SessionOptions) -> None:
        with self._lock:
            old = self._sessions.pop(key, None)
            self._sessions[key] = applied
        if old is not None:
            old.close()

    def stop(self, session_id: str) -> None:
        with self._lock:
            applied = self._sessions.pop(session_id, None)
        if applied is not None:
            applied.close()

    def launch_parts(self, record: dict, profile_dir: Path, prepare: ProfileStep | None) -> LaunchParts:
        """A cold launch's extra flags and environment (time zone, locale), and ``prepare`` (the profile's step before
        launch) followed by unpacking the session's extensions into the browser's temp folder, which its user is
        given with everything in it."""
        options = record.get("browserOptions") or {}
        env = {"TZ": options["timezoneId"]} if options.get("timezoneId") else {}
        flags: list[str] = []
        if options.get("locale"):
            # glibc's form of the tag: Chromium picks its UI locale (and Intl's default) from it.
            env["LANGUAGE"] = options["locale"].replace("-", "_")
            flags += locale_flags(options["locale"])
        ids = options.get("extensionIds") or []
        if not ids:
            return LaunchParts(flags, env, prepare)
        folders = [session_temp_dir(profile_dir) / EXTENSIONS_FOLDER / extension_id for extension_id in ids]

        def unpack_all(profile: Path) -> None:
            if prepare is not None:
                prepare(profile)
            for extension_id, folder in zip(ids, folders):
                try:
                    unpack(self.snapshots, extension_id, folder)
                except SnapshotError as error:
                    raise RuntimeError(f"extension {extension_id} cannot be read from the snapshot store "
                                       f"({error}); deleted meanwhile?") from error

        return LaunchParts(flags + extension_flags(folders), env, unpack_all)
