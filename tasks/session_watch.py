"""What happens inside a session's browser, for its event log and its recording: one CDP connection per browser.

The watch attaches to every page target (tabs, popups, pages of new browser contexts: ``Target.setAutoAttach``,
browser-wide, each new one paused until the watch has set it up) and turns what the pages report into the
session's events (core.store.session_events): navigations with their status or error, console messages, uncaught
page errors, failed requests (network errors, and answers of 400 or more), tabs opened and closed. Console
messages, page errors and failed requests are capped per session (``PAGE_EVENTS_MAX`` each): past the cap one
``capped`` event says so.

A recorded session (``recording: true``) also gets rrweb's recorder in every page, in an isolated world
(``Page.addScriptToEvaluateOnNewDocument`` with ``worldName``, ``runImmediately`` for documents already open but a
tab's first, empty about:blank, which gets it once a document is written into it):
the page's scripts share the DOM with it but none of its JavaScript, so they can neither find nor stop it. It
reports through a binding that exists only in that world (``Runtime.addBinding`` with ``executionContextName``);
the watch buffers the events and writes them as chunks to the snapshot store every
``CHUNK_SECONDS`` and at the stop (core/recordings.py). A page's recording starts at its first input, once it has
sat quiet after its load, or as it is left (tasks/recorder.js); the rest start when the browser is about to end
(:meth:`SessionWatch.finish_recording`), so a page stopped right after its load still has its full snapshot.
Chromium holds what a page gives the binding outside an input, a frame or a navigation until the page's session is
next sent a command: each chunk's interval starts with one to every recorded page.

A warm browser is watched from the moment it is ready, under its warm key, and its events are dropped until a
session takes it (:meth:`SessionWatch.begin`), so a hand-over waits for no CDP connection. The reader thread only
reads and sends: store writes go through a queue to a writer thread, so a slow Redis never holds a new tab paused.
"""
from __future__ import annotations

import functools
import json
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from core.cdp import CdpConnection
from core.config import Config
from core.recordings import RECORDER_BUNDLE, Recordings, capped_marker
from core.store import Store
from tasks.running_browser import SIGNAL_SPREAD, RunningBrowser

log = logging.getLogger(__name__)
#: The isolated world the recorder runs in, and the binding only that world sees.
WORLD = "__bb_recorder"
BINDING = "__bbRecorderEmit"
RECORDER = Path(__file__).with_name("recorder.js")
#: Longest text kept of one console message or page error.
TEXT_MAX = 2000
#: Store writes waiting for the writer thread; past this, events are dropped (and counted in the log).
QUEUE_MAX = 10000
#: Raw bytes of buffered recording past which a chunk is written before its time.
EARLY_CHUNK_BYTES = 4 * 1024 * 1024
#: Seconds between two chunks of a running session's recording: a lost worker loses at most this much.
CHUNK_SECONDS = 5.0
#: Seconds a closing watch waits for its events to be logged.
CLOSE_WAIT = 5.0
#: Longest a create waits for its log to hold what its browser reported before the session runs.
SETTLE_WAIT = 1.0
#: Seconds the pages of an ending browser get to start their recording and hand it over (a full snapshot of a
#: big page on a loaded machine takes a few hundred ms): a hung page holds its browser's end no longer than this.
FINISH_WAIT = 2.0
#: Console messages, page errors and failed requests each, per session, in its log.
PAGE_EVENTS_MAX = 500


#: rrweb 2.1.6 (@rrweb/record's bundle too) checks that the page has not patched the DOM's prototypes by asking
#: whether ``querySelector`` and ``querySelectorAll`` are native *accessors* of Element.prototype. They are methods,
#: so the check always fails in Chromium, and rrweb then appends a hidden iframe to the page to borrow clean
#: prototypes: a DOM change the page's own MutationObserver sees, and a new frame on every page. In the isolated
#: world the prototypes are clean by construction; the check is corrected to test those two as methods, which they
#: are.
PROTOTYPE_CHECK_FIX = (
    ('Element:["shadowRoot","querySelector","querySelectorAll"]', 'Element:["shadowRoot"]'),
    ('ShadowRoot:["getSelection"],Element:[]',
     'ShadowRoot:["getSelection"],Element:["querySelector","querySelectorAll"]'),
)


#: An isolated world has no custom element registry (``customElements`` is null there), and rrweb asks it about every
#: element inside a try: a TypeError thrown and caught per element, ~1 s for a page of 1500 elements on a loaded
#: machine against ~60 ms for the whole snapshot in the page's own world. Asked of this stand-in instead, rrweb
#: records every element as an ordinary one (a replay does not mark custom elements as defined).
NO_CUSTOM_ELEMENTS = ("if (!globalThis.customElements) Object.defineProperty(globalThis, 'customElements', "
                      "{value: {get() { return undefined; }}});")


@functools.cache
def recorder_source() -> str:
    """rrweb's record bundle (which defines ``rrwebRecord`` in the world it runs in, the top frame's only) followed
    by the broker's recorder. The bundle is wrapped in a function the recorder calls when it starts recording: a new
    document only compiles it, and one whose recording never starts (an empty about:blank) never runs it. The
    record-only bundle (@rrweb/record, 77 KB) and not rrweb's whole (265 KB, its replayer included): every new
    document of a recorded session compiles it."""
    bundle = RECORDER_BUNDLE.read_text()
    for wrong, right in PROTOTYPE_CHECK_FIX:
        if wrong not in bundle:
            raise RuntimeError(f"rrweb's bundle changed: {wrong!r} not found (tasks/session_watch.py)")
        bundle = bundle.replace(wrong, right)
    return (f"if (window.top === window) {{\n{NO_CUSTOM_ELEMENTS}\nconst loadRrweb = () => {{\n{bundle}\n}};\n"
            f"{RECORDER.read_text()}\n}}")


class Recording:
    """One session's recording on its way to the snapshot store: events buffered, written a chunk at a time."""

    def __init__(self, session_id: str, recordings: Recordings, max_bytes: int, on_capped: Callable[[], None]) -> None:
        self.session_id = session_id
        self.recordings = recordings
        self.max_bytes = max_bytes
        self.on_capped = on_capped
        self._lock = threading.Lock()
        self._lines: list[bytes] = []
        self._pending_bytes = 0
        # A session that moved (tasks/moving.py) goes on with the chunks its earlier worker wrote.
        written = recordings.chunks(session_id)
        self._stored = sum(chunk["bytes"] for chunk in written)
        self._number = len(written)
        self.capped = any(chunk["capped"] for chunk in written)
        #: Set when enough is buffered for a chunk before its time.
        self.full = threading.Event()

    def take(self, tab: str, payload: str) -> None:
        try:
            events = json.loads(payload)
        except ValueError:
            return
        with self._lock:
            if self.capped:
                return
            for event in events if isinstance(events, list) else []:
                if isinstance(event, dict):
                    line = json.dumps({**event, "tabId": tab}, separators=(",", ":")).encode()
                    self._lines.append(line)
                    self._pending_bytes += len(line)
            if self._pending_bytes > EARLY_CHUNK_BYTES:
                self.full.set()

    def flush(self) -> None:
        """Writes what is buffered as one chunk; once the store holds BROKER_RECORDING_MAX_BYTES, a marker ends it."""
        with self._lock:
            lines, self._lines, self._pending_bytes = self._lines, [], 0
            self.full.clear()
            if not lines or self.capped:
                return
            number = self._number
            self._number += 1
        try:
            self._stored += self.recordings.write_chunk(self.session_id, number, lines)
        except Exception:
            log.exception("session %s: a chunk of its recording could not be written (%d events lost)",
                          self.session_id, len(lines), extra={"session": self.session_id})
            return
        if self._stored >= self.max_bytes:
            with self._lock:
                self.capped = True
                self._lines = []
                number = self._number
            self.recordings.write_chunk(self.session_id, number, [json.dumps(capped_marker(self.max_bytes)).encode()],
                                        capped=True)
            self.on_capped()


class OpenTabs:
    """A browser's open tabs (page targets) by id, oldest first, with their URLs as Chromium last reported them.

    What a move opens again (tasks/moving.py) are the tabs open when the worker was told to stop. A platform that
    signals every process of the container at once reaches Chromium too, which closes its tabs as it shuts down,
    possibly before the worker's handler runs: a closed tab stays known for SIGNAL_SPREAD seconds, and :meth:`hold`
    takes back the closes from its ``since`` on. Not thread-safe: its watch's lock guards it.
    """

    def __init__(self) -> None:
        self._urls: dict[str, str] = {}
        #: Tabs closed within the last SIGNAL_SPREAD seconds, by when (monotonic).
        self._closed_at: dict[str, float] = {}
        self._held = False

    def opened(self, tab: str, url: str) -> None:
        self._urls[tab] = url

    def changed(self, tab: str, url: str) -> None:
        if tab in self._urls and tab not in self._closed_at and not self._held:
            self._urls[tab] = url

    def closed(self, tab: str, at: float) -> bool:
        """Whether it was an open tab. Once held, a tab closing stays listed: the shutdown closes it, not the user."""
        known = tab in self._urls and tab not in self._closed_at
        if known and not self._held:
            self._closed_at[tab] = at
            self._forget_closed_before(at - SIGNAL_SPREAD)
        return known

    def hold(self, since: float) -> None:
        """The worker was told to stop: the tabs closed from ``since`` on (monotonic) are open again, and from now on
        nothing closes or changes."""
        self._forget_closed_before(since)
        self._closed_at.clear()
        self._held = True

    def urls(self) -> list[str]:
        return [url for tab, url in self._urls.items() if tab not in self._closed_at]

    def _forget_closed_before(self, moment: float) -> None:
        for tab in [tab for tab, at in self._closed_at.items() if at < moment]:
            del self._closed_at[tab], self._urls[tab]


class SessionWatch:
    def __init__(self, browser: RunningBrowser, store: Store, config: Config, recordings: Recordings) -> None:
        self.store = store
        self.config = config
        self.recordings = recordings
        self.session_id: str | None = None
        self.recording: Recording | None = None
        self._lock = threading.Lock()
        #: Attached page targets: flat session id → target id (the tab's id in events and recordings).
        self._pages: dict[str, str] = {}
        #: The recorder's world in each page's top document: flat session id → its execution context's unique id.
        self._worlds: dict[str, str] = {}
        #: Pages whose top document is still the tab's first, empty about:blank (a warm browser's page, a new tab).
        self._blank: set[str] = set()
        #: Those of a recorded session, whose recorder comes once a document is written into it (a setContent).
        self._record_when_opened: set[str] = set()
        self._tabs = OpenTabs()
        #: Requests under way: (flat session, request id) → what a failure event names.
        self._requests: dict[tuple[str, str], dict] = {}
        #: Main documents' HTTP status or network error by loader id, until their navigation is reported.
        self._documents: dict[str, dict] = {}
        self._counts: Counter[str] = Counter()
        self._writes: queue.Queue[tuple[str, str, dict] | threading.Event | None] = queue.Queue(QUEUE_MAX)
        self._closed = threading.Event()
        self._cdp = CdpConnection(browser.ws_url(), timeout=10)
        self._cdp.subscribe(self._on_event)
        self._cdp.send("Target.setDiscoverTargets", {"discover": True})
        self._cdp.auto_attach(wait_for_debugger=True, filter=[{"type": "page"}])
        threading.Thread(target=self._cdp.listen, name="session-watch", daemon=True).start()
        self._writer = threading.Thread(target=self._write_events, name="session-watch-writer", daemon=True)
        self._writer.start()

    # -- the session -------------------------------------------------------------------
    def begin(self, record: dict, moved: bool = False) -> None:
        """The browser is the session's from now on: its events are logged, and recorded if it asked. ``moved``:
        the session was running elsewhere and runs here again from its saved state (tasks/moving.py)."""
        session_id = record["id"]
        recording = bool(record.get("recording"))
        if moved:
            self._emit_for(session_id, "moved", restoredFrom=record.get("restoredFrom"))
        else:
            self._emit_for(session_id, "created", url=record.get("url"), contextId=record.get("contextId"),
                           proxyId=record.get("proxyId"), recording=recording)
        with self._lock:
            self.session_id = session_id
            if recording:
                self.recording = Recording(session_id, self.recordings, self.config.sessions.recording_max_bytes,
                                           lambda: self._emit("recording_capped",
                                                              maxBytes=self.config.sessions.recording_max_bytes))
                threading.Thread(target=self._write_chunks, name="session-recording", daemon=True).start()
            pages = list(self._pages)
        if recording:
            for page in pages:
                self._install_recorder(page, moved)

    def settle(self, pages: bool, within: float) -> None:
        """What the session's log has heard so far is written: a create answers once its ``created`` event (and,
        with ``pages``, what its first navigation reported) can be read, so a client reading the log right after
        the 201 finds them. A page answers a command only after the events it sent before it, on this same
        connection. Bounded by ``within``: a page that hangs or a slow Redis delays the create no longer."""
        deadline = time.monotonic() + within
        with self._lock:
            targets = list(self._pages) if pages else []
        for page in targets:
            try:
                self._cdp.call("Runtime.evaluate", {"expression": "0"}, page,
                               timeout=max(0.01, deadline - time.monotonic()))
            except Exception as error:  # a tab gone or hung: what it said so far is queued all the same
                log.debug("session %s: a page did not answer before the create (%s)", self.session_id, error)
        written = threading.Event()
        try:
            self._writes.put_nowait(written)
        except queue.Full:
            return
        written.wait(max(0.0, deadline - time.monotonic()))

    def hold(self, since: float) -> None:
        """The worker was told to stop: the tabs open now, and those closed from ``since`` on (monotonic), are what a
        move opens again (:class:`OpenTabs`)."""
        with self._lock:
            self._tabs.hold(since)

    def tabs(self) -> list[str]:
        """The open tabs' URLs, oldest first (as tasks/moving.py ``read_tabs`` lists them), or as they were at
        :meth:`hold`."""
        with self._lock:
            return self._tabs.urls()

    def finish_recording(self) -> None:
        """The browser is about to end: each recorded page whose recording waits (for input, for a quiet moment)
        starts it and hands over what it has, so what was stopped right after its load has its full snapshot. The
        events arrive before each call's answer, on the same connection; a page that does not answer within
        ``FINISH_WAIT`` (hung, or its browser gone) is given up."""
        with self._lock:
            worlds = list(self._worlds.items()) if self.recording is not None else []
        if not worlds:
            return
        with ThreadPoolExecutor(len(worlds), thread_name_prefix="recording-finish") as calls:
            for page, world in worlds:
                calls.submit(self._finish_page, page, world)

    def _finish_page(self, page: str, world: str) -> None:
        try:
            self._cdp.call("Runtime.evaluate", {"expression": "globalThis.__bbRecorderFinish?.()",
                                                "uniqueContextId": world, "returnByValue": True},
                           page, timeout=FINISH_WAIT)
        except Exception as error:  # a document already left, a page hung, a browser gone: its recording is as is
            log.debug("session %s: a page's recording was not finished (%s)", self.session_id, error)

    def close(self) -> None:
        """The browser has ended: the recording's last chunk is written and the events heard are logged (before the
        stop's own ``stopped``, which comes once this returns), then the connection goes."""
        self._closed.set()
        self._cdp.abort()
        if self.recording is not None:
            self.recording.flush()
        self._writes.put(None)
        self._writer.join(CLOSE_WAIT)

    # -- pages -------------------------------------------------------------------------
    def _install_recorder(self, page: str, moved: bool = False) -> None:
        """Into the page's next documents, and into the one open now, unless that is the tab's first, empty
        about:blank: then only once a document is written into it (a script's ``setContent`` opens it,
        ``Page.documentOpened``). Creating the recorder's world and compiling it there held the create and the
        client's connect after it (+10-15 ms of a 200 ms lifecycle) for a page the first ``goto`` replaces. A moved
        session's tabs may have loaded before this: they get it at once."""
        with self._lock:
            later = page in self._blank and not moved
            if later:
                self._record_when_opened.add(page)
        self._cdp.send("Runtime.addBinding", {"name": BINDING, "executionContextName": WORLD}, page)
        self._cdp.send("Page.addScriptToEvaluateOnNewDocument",
                       {"source": recorder_source(), "worldName": WORLD, "runImmediately": not later}, page)

    def _opened(self, page: str, tab: str, frame: dict) -> None:
        if frame.get("id") == tab and page in self._record_when_opened:
            self._cdp.send("Page.createIsolatedWorld", {"frameId": tab, "worldName": WORLD}, page)

    def _world_created(self, page: str, tab: str, context: dict) -> None:
        """The recorder's world in a page's top document: the one the stop finishes; the one made for a written
        about:blank gets the recorder now."""
        if context.get("name") != WORLD or (context.get("auxData") or {}).get("frameId") != tab:
            return
        with self._lock:
            self._worlds[page] = context.get("uniqueId")
            inject = page in self._record_when_opened
            self._record_when_opened.discard(page)
        if inject:
            self._cdp.send("Runtime.evaluate",
                           {"expression": recorder_source(), "uniqueContextId": context.get("uniqueId")}, page)

    def _attached(self, params: dict) -> None:
        page, info = params["sessionId"], params["targetInfo"]
        with self._lock:
            self._pages[page] = info["targetId"]
            if info.get("url") in ("", "about:blank"):
                self._blank.add(page)
            recording = self.recording is not None
        for method in ("Page.enable", "Network.enable", "Runtime.enable"):
            self._cdp.send(method, None, page)
        if recording:
            self._install_recorder(page)
        self._cdp.send("Runtime.runIfWaitingForDebugger", None, page)

    def _on_event(self, message: dict) -> None:
        method, params, page = message["method"], message.get("params", {}), message.get("sessionId")
        if page is None:
            return self._on_browser_event(method, params)
        tab = self._pages.get(page)
        if tab is None:
            return
        if method == "Runtime.bindingCalled":
            if params.get("name") == BINDING and self.recording is not None:
                self.recording.take(tab, params.get("payload", ""))
        elif method == "Runtime.executionContextCreated":
            self._world_created(page, tab, params.get("context", {}))
        elif method == "Page.documentOpened":
            self._opened(page, tab, params.get("frame", {}))
        elif method == "Network.requestWillBeSent":
            request = params.get("request", {})
            self._requests[(page, params["requestId"])] = {
                "url": request.get("url"), "method": request.get("method"), "loaderId": params.get("loaderId"),
                "frameId": params.get("frameId")}
        elif method == "Network.responseReceived":
            self._on_response(page, tab, params)
        elif method == "Network.loadingFinished":
            self._requests.pop((page, params["requestId"]), None)
        elif method == "Network.loadingFailed":
            self._on_failure(page, tab, params)
        elif method == "Page.frameNavigated":
            frame = params.get("frame", {})
            if not frame.get("parentId"):
                with self._lock:
                    self._blank.discard(page)
                    self._record_when_opened.discard(page)
                # A failed load commits an error page: the URL that failed is its unreachableUrl.
                self._emit("navigation", tabId=tab, url=frame.get("unreachableUrl") or frame.get("url"),
                           **self._documents.pop(frame.get("loaderId"), {}))
        elif method == "Page.navigatedWithinDocument":
            if params.get("frameId") == tab:
                self._emit("navigation", tabId=tab, url=params.get("url"), sameDocument=True)
        elif method == "Runtime.consoleAPICalled":
            self._emit_capped("console", tabId=tab, level=params.get("type"),
                              text=_console_text(params.get("args", [])), **_where(params.get("stackTrace")))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = (details.get("exception") or {}).get("description") or details.get("text")
            self._emit_capped("page_error", tabId=tab, text=_clip(text), url=details.get("url"),
                              line=details.get("lineNumber"))

    def _on_browser_event(self, method: str, params: dict) -> None:
        if method == "Target.attachedToTarget":
            self._attached(params)
        elif method == "Target.detachedFromTarget":
            with self._lock:
                self._pages.pop(params.get("sessionId"), None)
                self._worlds.pop(params.get("sessionId"), None)
                self._blank.discard(params.get("sessionId"))
                self._record_when_opened.discard(params.get("sessionId"))
        elif method == "Target.targetCreated":
            info = params.get("targetInfo", {})
            if info.get("type") == "page":
                with self._lock:
                    self._tabs.opened(info["targetId"], info.get("url") or "")
                self._emit("tab_opened", tabId=info["targetId"], url=info.get("url") or None,
                           openerId=info.get("openerId"))
        elif method == "Target.targetInfoChanged":
            info = params.get("targetInfo", {})
            with self._lock:
                self._tabs.changed(info.get("targetId"), info.get("url") or "")
        elif method == "Target.targetDestroyed":
            with self._lock:
                known = self._tabs.closed(params.get("targetId"), time.monotonic())
            if known:
                self._emit("tab_closed", tabId=params["targetId"])

    def _on_response(self, page: str, tab: str, params: dict) -> None:
        response = params.get("response", {})
        status = response.get("status") or 0
        if params.get("type") == "Document" and params.get("frameId") == tab:
            self._documents[params.get("loaderId", "")] = {"status": status}
        elif status >= 400:
            request = self._requests.get((page, params["requestId"]), {})
            self._emit_capped("request_failed", tabId=tab, url=response.get("url"), method=request.get("method"),
                              resourceType=params.get("type"), status=status)

    def _on_failure(self, page: str, tab: str, params: dict) -> None:
        """A main document's failure is its navigation's (reported once the error page commits); one cancelled (a
        download, a navigation replaced by another) is no failure."""
        request = self._requests.pop((page, params["requestId"]), {})
        if params.get("canceled"):
            return
        if params.get("type") == "Document" and request.get("frameId") == tab and request.get("loaderId"):
            self._documents[request["loaderId"]] = {"error": params.get("errorText")}
            return
        self._emit_capped("request_failed", tabId=tab, url=request.get("url"), method=request.get("method"),
                          resourceType=params.get("type"), error=params.get("errorText"),
                          blockedReason=params.get("blockedReason"))

    def download_event(self, method: str, params: dict) -> None:
        guid = params.get("guid")
        if method == "Browser.downloadWillBegin":
            self._emit("download_started", guid=guid, url=params.get("url"), name=params.get("suggestedFilename"),
                       tabId=params.get("frameId"))
        elif params.get("state") == "completed":
            self._emit("download_finished", guid=guid, bytes=params.get("receivedBytes"))
        elif params.get("state") == "canceled":
            self._emit("download_cancelled", guid=guid, bytes=params.get("receivedBytes"))

    # -- writing -----------------------------------------------------------------------
    def _emit_capped(self, kind: str, **fields: object) -> None:
        self._counts[kind] += 1
        count, cap = self._counts[kind], PAGE_EVENTS_MAX
        if count <= cap:
            self._emit(kind, **fields)
        elif count == cap + 1:
            self._emit("capped", what=kind, max=cap)

    def _emit(self, kind: str, **fields: object) -> None:
        if self.session_id is not None:
            self._emit_for(self.session_id, kind, **fields)

    def _emit_for(self, session_id: str, kind: str, **fields: object) -> None:
        try:
            self._writes.put_nowait((session_id, kind, fields))
        except queue.Full:
            self._counts["dropped"] += 1

    def _write_events(self) -> None:
        while (item := self._writes.get()) is not None:
            if isinstance(item, threading.Event):
                item.set()
                continue
            session_id, kind, fields = item
            try:
                self.store.session_events.add(session_id, kind, **fields)
            except Exception as error:
                log.warning("session %s: a %s event was not logged (%s)", session_id, kind, error,
                            extra={"session": session_id})

    def _write_chunks(self) -> None:
        recording = self.recording
        while recording is not None and not self._closed.is_set():
            self._hand_over()
            recording.full.wait(CHUNK_SECONDS)
            if not self._closed.is_set():
                recording.flush()

    def _hand_over(self) -> None:
        """A command to each recorded page, whose answer comes after what the page held back (a snapshot taken
        when it sat quiet): that reaches this chunk, not the stop's."""
        with self._lock:
            pages = list(self._worlds)
        for page in pages:
            try:
                self._cdp.send("Runtime.getIsolateId", None, page)
            except Exception:  # the connection is closing: the stop hands over the rest
                return


def _clip(text: object) -> str | None:
    return None if text is None else str(text)[:TEXT_MAX]


def _console_text(args: list[dict]) -> str | None:
    parts = [str(a["value"]) if "value" in a else a.get("description") or a.get("type", "") for a in args]
    return _clip(" ".join(parts))


def _where(stack: dict | None) -> dict:
    frames = (stack or {}).get("callFrames") or []
    return {"url": frames[0].get("url") or None, "line": frames[0].get("lineNumber")} if frames else {}


class SessionWatches:
    """The watches of one worker's browsers, by session id, or by a warm browser's key until it is handed over."""

    def __init__(self, store: Store, config: Config, recordings: Recordings) -> None:
        self.store = store
        self.config = config
        self.recordings = recordings
        self._lock = threading.Lock()
        self._watches: dict[str, SessionWatch] = {}

    def start(self, key: str, browser: RunningBrowser) -> None:
        try:
            watch = SessionWatch(browser, self.store, self.config, self.recordings)
        except Exception:  # the browser answered a moment ago: its session runs, without an event log of its pages
            log.exception("%s: the session watch could not connect", key)
            return
        with self._lock:
            old = self._watches.pop(key, None)
            self._watches[key] = watch
        if old is not None:
            old.close()

    def rekey(self, old: str, new: str) -> None:
        with self._lock:
            watch = self._watches.pop(old, None)
            if watch is not None:
                self._watches[new] = watch

    def _watch(self, key: str | None) -> SessionWatch | None:
        with self._lock:
            return self._watches.get(key) if key else None

    def begin(self, record: dict, moved: bool = False) -> None:
        """Before the session runs (and before its first navigation): its events are logged from here on."""
        if (watch := self._watch(record["id"])) is not None:
            watch.begin(record, moved)

    def settle(self, session_id: str, pages: bool = False, until: float | None = None) -> None:
        """Just before the session runs: its log holds what was heard so far (:meth:`SessionWatch.settle`), waited
        for up to SETTLE_WAIT and never past ``until`` (the create's own deadline, monotonic), if given."""
        if (watch := self._watch(session_id)) is not None:
            within = SETTLE_WAIT if until is None else min(SETTLE_WAIT, until - time.monotonic())
            watch.settle(pages, max(0.0, within))

    def hold_all(self, since: float) -> None:
        """The worker was told to stop (:meth:`SessionWatch.hold`)."""
        with self._lock:
            watches = list(self._watches.values())
        for watch in watches:
            watch.hold(since)

    def tabs(self, session_id: str) -> list[str] | None:
        """The session's tabs as its watch saw them (None: it has no watch)."""
        watch = self._watch(session_id)
        return None if watch is None else watch.tabs()

    def download_event(self, key: str | None, message: dict) -> None:
        """From the browser's download guard (tasks/downloads.py), which alone hears downloads."""
        if (watch := self._watch(key)) is not None:
            watch.download_event(message["method"], message.get("params", {}))

    def finish_recording(self, key: str) -> None:
        """Just before the key's browser is ended (by whichever path ends it): its recording is made whole."""
        if (watch := self._watch(key)) is not None:
            watch.finish_recording()

    def stop(self, key: str) -> None:
        with self._lock:
            watch = self._watches.pop(key, None)
        if watch is not None:
            watch.close()
