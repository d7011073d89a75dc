"""How one Chromium is started and ended: the only module that knows Chromium's flags.

Two launchers share one interface. ``selenium`` (the default) lets ChromeDriver
start the browser, as the design asks, then ends ChromeDriver (``detach``: the
browser outlives it) once the browser answers: a ChromeDriver left listening on
loopback takes ``POST /session`` from anyone, ``goog:chromeOptions.binary``
(any program) and ``debuggerAddress`` (any browser) included. ``direct`` starts
Chromium itself, which saves about 170 ms and 31 MiB a session (measured on
this kind of machine). Either way the browser is only handed out after it
answered a real CDP call; it runs as a user of its own (tasks/browser_users.py),
with Chromium's sandbox unless the worker found at start that this host cannot
give it one; and its debugger takes no socket that carries an ``Origin`` (no
``--remote-allow-origins``): a page's WebSocket always does, the relay's and
the worker's never.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psutil

from core.config import Config, browser_environment
from core.cdp import CdpConnection, CdpError
from core.files import DOWNLOADS, UPLOADS
from tasks.browser_users import BrowserUser, BrowserUsers

log = logging.getLogger(__name__)

#: Every browser gets these: the first group keeps Chromium off the network at start, the second keeps background
#: tabs as fast as the front one (a tab behind a newer one took ~3.5 s per screenshot without them).
BASE_FLAGS: tuple[str, ...] = (
    "--headless=new",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--password-store=basic",
    "--disable-renderer-backgrounding",
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--disable-crash-reporter",
    "--disable-breakpad",
    "--no-default-browser-check",
    # navigator.webdriver stays false, as in a browser a person drives.
    "--disable-blink-features=AutomationControlled",
)
#: Only when the worker found no usable sandbox (or was told so): logged at its start.
NO_SANDBOX_FLAG = "--no-sandbox"
#: Features every browser starts with off; a later ``--enable-features`` naming one (the extra-flags
#: setting) turns it back on.
DISABLED_FEATURES: tuple[str, ...] = (
    # Headless Chromium 156 still builds the omnibox popups as hidden WebUI targets that CDP lists
    # (often as ``page``): a client's ``pages()`` would show them beside the one real tab.
    "WebUIOmniboxPopup",
    "WebUIOmniboxAimPopup",
)
#: Features every browser starts with on (likewise undone by a later ``--disable-features``).
#: Measured (bench/density.py) and kept only what kept the suite green and cost no speed: Chromium's
#: spare renderer stays (off, it saved ~8 MiB per idle session but a new tab's first load took ~60 %
#: longer).
ENABLED_FEATURES: tuple[str, ...] = (
    # The network service on a browser thread, not in a process of its own: ~16 MiB less per browser.
    "NetworkServiceInProcess2",
)
DISABLE_FEATURES = "--disable-features="
ENABLE_FEATURES = "--enable-features="
FIRST_TAB = "about:blank"
#: Chromium's "open these pages at startup" (4) with the one page every browser starts on.
STARTUP_PREFS = {"restore_on_startup": 4, "startup_urls": [FIRST_TAB]}
DEVTOOLS_PORT_FILE = "DevToolsActivePort"
#: ChromeDriver starts tried before a launch fails, when it exits at once (DRIVER_EXITED in Selenium's message).
DRIVER_START_ATTEMPTS = 3
DRIVER_EXITED = "unexpectedly exited"
READY_POLL = 0.01
EXIT_GRACE = 5.0


class LaunchError(RuntimeError):
    pass


@dataclass
class RunningBrowser:
    profile_dir: Path
    port: int
    browser_path: str
    pids: list[int]
    handle: Any = field(repr=False)
    user: BrowserUser
    #: The process group the launcher started the browser's tree in (tasks/warm.py sets its niceness at once).
    pgid: int = 0
    #: Chromium's own browser process (not ChromeDriver's), watched to notice the browser exiting by itself.
    main: psutil.Process | None = field(default=None, repr=False)
    version: str = ""
    user_agent: str = ""
    #: ``Browser.getVersion``'s jsVersion and revision: /json/version's V8-Version and WebKit-Version.
    js_version: str = ""
    revision: str = ""

    @property
    def downloads_dir(self) -> Path:
        return session_temp_dir(self.profile_dir) / DOWNLOADS

    @property
    def uploads_dir(self) -> Path:
        return session_temp_dir(self.profile_dir) / UPLOADS

    def ws_url(self, host: str = "127.0.0.1") -> str:
        return f"ws://{host}:{self.port}{self.browser_path}"

    def exited(self) -> bool:
        """True once Chromium itself has gone: closed over CDP (``browser.close()``), crashed or killed."""
        return self.main is not None and not (self.main.is_running() and _running(self.main))


class Launcher(Protocol):
    def start(self, profile_dir: Path, flags: list[str], timeout: float) -> RunningBrowser: ...

    def stop(self, browser: RunningBrowser) -> None: ...


def session_temp_dir(profile_dir: Path) -> Path:
    """The TMPDIR of one browser and its ChromeDriver: they leave folders there when killed hard.

    Short on purpose (Chromium puts a Unix socket in it, 108 bytes at most) and
    named after the profile, so the pool removes it with the profile, even after a crash.
    """
    return Path(tempfile.gettempdir()) / f"bb-{profile_dir.name[-16:]}"


def child_env(profile_dir: Path, user: BrowserUser) -> dict[str, str]:
    """The profile and the temp dir become the user's; the temp dir is its HOME too, so nothing lands elsewhere.

    The temp dir holds the session's download and upload folders (core/files.py): the user's, and deleted with it.
    """
    temp = session_temp_dir(profile_dir)
    temp.mkdir(exist_ok=True)
    for folder in (DOWNLOADS, UPLOADS):
        (temp / folder).mkdir(exist_ok=True)
    user.take(profile_dir, temp)
    return {**browser_environment(), "TMPDIR": str(temp), "HOME": str(temp)}


def hand_back(profile_dir: Path, user: BrowserUser) -> None:
    """Once the browser's process tree has ended: nothing left running as its user, its folders
    out of that user's reach, then the user free for another browser."""
    strays = user.end_strays()
    if strays:
        log.warning("%s: ended %d process(es) still running as it after its browser's process tree had ended "
                    "(children started during the stop, or processes that left the tree)", user.name, len(strays))
    user.give_back(profile_dir, session_temp_dir(profile_dir))
    user.release()


def browser_flags(config: Config, extra: list[str] | None = None) -> list[str]:
    """Chromium honours only the last ``--enable-features`` and ``--disable-features``, so all are merged.

    Per feature the last flag naming it wins, so the extra-flags setting can undo a default.
    """
    features = {name: False for name in DISABLED_FEATURES} | {name: True for name in ENABLED_FEATURES}
    flags = []
    for flag in [*BASE_FLAGS, *config.chromium_extra_flags, *(extra or [])]:
        for prefix, enabled in ((ENABLE_FEATURES, True), (DISABLE_FEATURES, False)):
            if flag.startswith(prefix):
                features.update((name, enabled) for name in flag[len(prefix):].split(",") if name)
                break
        else:
            flags.append(flag)
    for prefix, enabled in ((ENABLE_FEATURES, True), (DISABLE_FEATURES, False)):
        names = [name for name, on in features.items() if on is enabled]
        if names:
            flags.append(prefix + ",".join(names))
    return flags


def start_on_blank(profile_dir: Path) -> None:
    """Make the profile open exactly one ``about:blank`` tab, whoever starts Chromium, and download into the session's folder.

    Started by ChromeDriver (which passes no URL), Chromium otherwise opens
    ``chrome://new-tab-page-third-party/``, which looks hosts up, and Playwright's
    ``connect_over_cdp`` waits for that tab (seen: seconds). The preference is
    merged into a restored context's own Preferences, never replacing them.
    """
    prefs_file = profile_dir / "Default" / "Preferences"
    try:
        prefs = json.loads(prefs_file.read_text())
    except (OSError, ValueError):
        prefs = {}
    prefs["session"] = {**prefs.get("session", {}), **STARTUP_PREFS}
    # Downloads of the default browser context go to the session's folder with no CDP call at all; a context
    # restored from a snapshot gets this session's folder, never the one of the session that saved it.
    prefs["download"] = {**prefs.get("download", {}), "default_directory": str(session_temp_dir(profile_dir) / DOWNLOADS),
                         "prompt_for_download": False, "directory_upgrade": True}
    prefs["savefile"] = {**prefs.get("savefile", {}), "default_directory": str(session_temp_dir(profile_dir) / DOWNLOADS)}
    prefs_file.parent.mkdir(parents=True, exist_ok=True)
    prefs_file.write_text(json.dumps(prefs))


def proxy_flags(proxy_url: str) -> list[str]:
    """Every request through ``proxy_url``, loopback included, and no WebRTC UDP around it.

    Chromium bypasses a proxy for localhost and 127.0.0.1 unless ``<-loopback>``
    removes that implicit rule; WebRTC would otherwise send UDP (and reveal the
    machine's addresses) outside the proxy.
    """
    return [
        f"--proxy-server={proxy_url}",
        "--proxy-bypass-list=<-loopback>",
        "--webrtc-ip-handling-policy=disable_non_proxied_udp",
        "--force-webrtc-ip-handling-policy",
    ]


def wait_for_cdp(browser: RunningBrowser, deadline: float) -> None:
    """The port file appears ~85 ms before the socket takes a handshake: ask until Chromium answers."""
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with CdpConnection(browser.ws_url(), timeout=max(0.5, deadline - time.monotonic())) as conn:
                version = conn.call("Browser.getVersion")
            browser.version = version.get("product", "")
            browser.user_agent = version.get("userAgent", "")
            browser.js_version = version.get("jsVersion", "")
            browser.revision = version.get("revision", "")
            return
        except (OSError, CdpError) as error:
            last_error = error
            time.sleep(READY_POLL)
    raise LaunchError(f"Chromium did not answer CDP in time: {last_error}")


def process_tree(pids: list[int]) -> list[psutil.Process]:
    procs: list[psutil.Process] = []
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs.append(root)
            procs.extend(root.children(recursive=True))
        except psutil.NoSuchProcess:
            continue
    return procs


def _running(proc: psutil.Process) -> bool:
    """A zombie has exited: its parent (often PID 1, for Chromium's reparented children) reaps it in its own time."""
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_exit(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    alive = [p for p in procs if _running(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(READY_POLL)
        alive = [p for p in alive if _running(p)]
    return alive


def end_processes(procs: list[psutil.Process], grace: float = EXIT_GRACE) -> None:
    """Wait for a clean exit, then kill what is left: nothing of a session outlives it."""
    alive = _wait_exit(procs, grace)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            continue
    _wait_exit(alive, EXIT_GRACE)


class _Launcher:
    def __init__(self, config: Config, users: BrowserUsers, sandbox: bool) -> None:
        self.config = config
        self.users = users
        self.sandbox = sandbox

    def _flags(self, flags: list[str]) -> list[str]:
        return flags if self.sandbox else [*flags, NO_SANDBOX_FLAG]


class DirectLauncher(_Launcher):
    def start(self, profile_dir: Path, flags: list[str], timeout: float) -> RunningBrowser:
        deadline = time.monotonic() + timeout
        start_on_blank(profile_dir)
        user = self.users.acquire()
        proc: subprocess.Popen | None = None
        try:
            proc = subprocess.Popen(
                [self.config.chromium_path, *self._flags(flags), f"--user-data-dir={profile_dir}",
                 "--remote-debugging-port=0", FIRST_TAB],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                env=child_env(profile_dir, user),
                **user.popen_kwargs(),
            )
            port_file = profile_dir / DEVTOOLS_PORT_FILE
            while True:
                lines = port_file.read_text().split("\n") if port_file.exists() else []
                if len(lines) >= 2 and lines[1]:
                    break
                if proc.poll() is not None:
                    raise LaunchError(f"Chromium exited with {proc.returncode} before opening its debugging port")
                if time.monotonic() > deadline:
                    raise LaunchError("Chromium did not open its debugging port in time")
                time.sleep(READY_POLL)
            browser = RunningBrowser(profile_dir, int(lines[0]), lines[1].strip(), [proc.pid], proc, user,
                                     proc.pid, psutil.Process(proc.pid))
            wait_for_cdp(browser, deadline)
            return browser
        except BaseException:
            if proc is not None:
                end_processes(process_tree([proc.pid]), grace=0)
            hand_back(profile_dir, user)
            raise

    def stop(self, browser: RunningBrowser) -> None:
        close_browser(browser)
        if browser.handle is not None:
            browser.handle.wait(EXIT_GRACE)
        hand_back(browser.profile_dir, browser.user)


def close_browser(browser: RunningBrowser) -> None:
    """``Browser.close`` over CDP (Chromium writes its profile out), then whatever of its tree is left is ended."""
    procs = process_tree(browser.pids)
    try:
        with CdpConnection(browser.ws_url(), timeout=2) as conn:
            conn.call("Browser.close")
    except Exception:  # already gone or wedged: the processes are ended below either way
        pass
    end_processes(procs)


def _browser_process(driver_pid: int) -> psutil.Process | None:
    """The Chromium that ChromeDriver started: its child whose command line holds the debugging port."""
    try:
        children = psutil.Process(driver_pid).children()
    except psutil.NoSuchProcess:
        return None
    for child in children:
        try:
            if any(arg.startswith("--remote-debugging-port") for arg in child.cmdline()):
                return child
        except psutil.NoSuchProcess:
            continue
    return None


class SeleniumLauncher(_Launcher):
    """ChromeDriver runs as the browser's user too, and only until the browser answers."""

    def start(self, profile_dir: Path, flags: list[str], timeout: float) -> RunningBrowser:
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.chrome.service import Service

        deadline = time.monotonic() + timeout
        start_on_blank(profile_dir)
        options = webdriver.ChromeOptions()
        options.binary_location = self.config.chromium_path
        for flag in [*self._flags(flags), f"--user-data-dir={profile_dir}"]:
            options.add_argument(flag)
        # Without this ChromeDriver sets navigator.webdriver, which sites read as a bot.
        options.add_experimental_option("excludeSwitches", ["enable-automation"])
        # The browser outlives ChromeDriver, which is ended below once the browser answers.
        options.add_experimental_option("detach", True)
        user = self.users.acquire()
        service = None
        main: psutil.Process | None = None
        try:
            # An executable path means Selenium Manager is never run, so nothing is downloaded.
            # A session of its own, as with the direct launcher: a signal to the worker's process group
            # (a process manager, a terminal's Ctrl-C) must not kill browsers before their stop flow has run.
            for attempt in range(1, DRIVER_START_ATTEMPTS + 1):
                service = Service(
                    executable_path=self.config.chromedriver_path, log_output=subprocess.DEVNULL,
                    env=child_env(profile_dir, user), popen_kw={"start_new_session": True, **user.popen_kwargs()},
                )
                try:
                    driver = webdriver.Chrome(service=service, options=options)
                    break
                except WebDriverException as error:
                    # Selenium picks ChromeDriver's port by binding port 0 and letting it go: another socket
                    # (a forwarder of this worker, any process on the host) can take it before ChromeDriver
                    # binds it, and ChromeDriver then exits at once. A new port is another try.
                    if DRIVER_EXITED not in (error.msg or "") or attempt == DRIVER_START_ATTEMPTS:
                        raise LaunchError(f"ChromeDriver could not start Chromium: {error.msg}") from error
                    log.warning("ChromeDriver exited at start (its port taken meanwhile?); trying another port")
            address = driver.capabilities["goog:chromeOptions"]["debuggerAddress"]
            port = int(address.rsplit(":", 1)[1])
            main = _browser_process(service.process.pid)
            if main is None:
                raise LaunchError("ChromeDriver reported a browser that is not its child")
            _end_driver(service)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/version", timeout=5) as answer:
                ws_url = json.load(answer)["webSocketDebuggerUrl"]
            path = ws_url[ws_url.index("/devtools/"):]
            browser = RunningBrowser(profile_dir, port, path, [main.pid], None, user, os.getpgid(main.pid), main)
            wait_for_cdp(browser, deadline)
            return browser
        except BaseException:
            # Service has no ``process`` until ChromeDriver was started.
            roots = [p.pid for p in (getattr(service, "process", None), main) if p is not None]
            end_processes(process_tree(roots), grace=0)
            hand_back(profile_dir, user)
            raise

    def stop(self, browser: RunningBrowser) -> None:
        close_browser(browser)
        hand_back(browser.profile_dir, browser.user)


def _end_driver(service: Any) -> None:
    """ChromeDriver killed outright: nothing of it is needed once the browser runs, and ``detach`` keeps the
    browser alive (checked: the browser answers /json/version after ChromeDriver's exit)."""
    service.process.kill()
    service.process.wait(EXIT_GRACE)


LAUNCHERS: dict[str, type[_Launcher]] = {"selenium": SeleniumLauncher, "direct": DirectLauncher}


def make_launcher(config: Config, users: BrowserUsers, sandbox: bool) -> Launcher:
    try:
        return LAUNCHERS[config.launcher](config, users, sandbox)
    except KeyError:
        raise ValueError(f"BROKER_LAUNCHER must be one of {', '.join(LAUNCHERS)}, not {config.launcher!r}") from None
