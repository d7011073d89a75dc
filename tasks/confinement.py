"""What keeps a session's pages inside the session, proved once when a worker starts.

Three layers, each covering what the others miss:

- **Chromium's managed policy** (``chromium_policy.json`` beside this module; scripts/setup.sh and
  the Dockerfile install it into BROKER_CHROMIUM_POLICY_DIR). Chromium itself refuses ``file://``,
  ``chrome://``, ``devtools://``, ``view-source:`` … navigations, whoever asks: a page, a frame,
  ``Page.navigate``, ``Target.createTarget``. The file is machine-wide: every Chromium on the host
  obeys it.
- **A user per browser** (browser_users.py) and file modes: the state folder is the worker's alone
  (0700), the profiles root and each worker's folder in it can be entered but not listed (0711),
  each profile is 0700 and its browser's user's. What a CDP client can make a browser open by path
  (``DOM.setFileInputFiles`` goes around any URL policy) stops there.
- **Chromium's sandbox** (user namespaces + seccomp around renderers) wherever the host allows it.

The worker checks the policy file, then starts one real browser the way sessions get theirs and
asks it to open a ``file://`` page and ``chrome://version``: both must be refused by the policy,
and with the sandbox wanted its renderers must run under seccomp. Outside development a worker
whose browsers could read the host does not start.
"""
from __future__ import annotations

import json
import logging
import secrets
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from core.cdp import CdpConnection
from core.config import Config
from tasks.browser_users import BrowserUsers
from tasks.chromium_flags import browser_flags
from tasks.launchers.direct import DirectLauncher
from tasks.running_browser import RunningBrowser, session_temp_dir

log = logging.getLogger(__name__)

POLICY_FILE = Path(__file__).with_name("chromium_policy.json")
SANDBOX_MODES = ("auto", "on", "off")
BLOCKED = "net::ERR_BLOCKED_BY_ADMINISTRATOR"
#: Seccomp mode 2 (filter) in /proc/PID/status: Chromium's sandbox is around that process.
SECCOMP_FILTER = "2"
PROBE_TIMEOUT = 10.0


class ConfinementError(RuntimeError):
    """This worker must not start: its browsers could read the host."""


@dataclass
class Probe:
    started: bool
    error: str = ""
    sandboxed: bool = False
    opened: list[str] = field(default_factory=list)
    uids: set[int] = field(default_factory=set)


def policy_problem(config: Config) -> str | None:
    """What of the broker's URLBlocklist is not in the installed policy (or re-allowed there), else None."""
    blocked: set[str] = set()
    allowed: set[str] = set()
    for path in sorted(config.chromium.policy_dir.glob("*.json")):
        try:
            policy = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            return f"{path} cannot be read as JSON ({error})"
        blocked.update(policy.get("URLBlocklist", []))
        allowed.update(policy.get("URLAllowlist", []))
    ours = json.loads(POLICY_FILE.read_text())
    missing = [entry for entry in ours["URLBlocklist"] if entry not in blocked]
    if missing:
        return (f"Chromium's managed policy in {config.chromium.policy_dir} does not block {', '.join(missing)}; "
                f"install {POLICY_FILE.name} there (scripts/setup.sh does, as root)")
    schemes = tuple(entry.split(":", 1)[0] + ":" for entry in ours["URLBlocklist"])
    reopened = sorted(entry for entry in allowed if entry.startswith(schemes) and entry not in ours["URLAllowlist"])
    if reopened:
        return f"Chromium's managed policy in {config.chromium.policy_dir} allows {', '.join(reopened)} again"
    return None


def _set_mode(folder: Path, mode: int) -> None:
    folder.mkdir(mode=mode, parents=True, exist_ok=True)
    if stat.S_IMODE(folder.stat().st_mode) != mode:
        log.info("%s: mode %o → %o", folder, stat.S_IMODE(folder.stat().st_mode), mode)
        folder.chmod(mode)


def prepare_directories(config: Config, worker_dir: Path, users: BrowserUsers) -> None:
    """The state folder the worker's alone; the way down to each profile and temp folder open to browsers' users."""
    _set_mode(config.worker.state_dir, 0o700)
    _set_mode(config.chromium.profiles_dir, 0o711)
    _set_mode(worker_dir, 0o711)
    if not users.switching:
        return
    for name, folder in (("BROKER_PROFILES_DIR", config.chromium.profiles_dir), ("TMPDIR", Path(tempfile.gettempdir()))):
        for parent in (folder.resolve(), *folder.resolve().parents):
            if not parent.stat().st_mode & stat.S_IXOTH:
                raise ConfinementError(
                    f"{name}={folder} cannot be reached by the browsers' users: {parent} is closed to others "
                    "(profiles must be kept outside BROKER_STATE_DIR, which stays 0700)"
                )


def _seccomp(pid: int) -> str:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Seccomp:"):
                return line.split()[1]
    except OSError:
        pass
    return ""


def _look_at(procs: list[psutil.Process]) -> tuple[list[int], set[int]]:
    """The renderers' PIDs and every process's uid; Chromium ends and starts processes as it goes."""
    renderers, uids = [], set()
    for proc in procs:
        try:
            uids.add(proc.uids().real)
            if "--type=renderer" in proc.cmdline():
                renderers.append(proc.pid)
        except psutil.NoSuchProcess:
            continue
    return renderers, uids


def _sandboxed(browser: RunningBrowser, settle: float) -> tuple[bool, set[int]]:
    """Whether every renderer runs under seccomp, and every process's uid.

    A renderer applies its seccomp filter a moment after it starts (Chromium keeps a
    spare one starting), so a renderer without one counts only once it stays so for
    ``settle`` seconds (BROKER_SANDBOX_SETTLE).
    """
    deadline = time.monotonic() + settle
    while True:
        renderers, uids = _look_at(browser.tree())
        modes = {mode for mode in map(_seccomp, renderers) if mode}  # "" is a renderer that ended meanwhile
        if modes == {SECCOMP_FILTER} or time.monotonic() > deadline:
            return modes == {SECCOMP_FILTER}, uids
        time.sleep(0.1)


def probe(config: Config, users: BrowserUsers, worker_dir: Path, sandbox: bool) -> Probe:
    """One browser started as sessions' are; what it lets a client open, and whether its renderers are sandboxed."""
    # Named like a profile, so a worker killed mid-probe has it removed by its next life's leftover cleanup.
    profile = worker_dir / f"selfcheck-{secrets.token_hex(8)}"
    profile.mkdir()
    readable = profile / "selfcheck.html"
    readable.write_text("<title>readable by the browser's user</title>")
    launcher = DirectLauncher(config, users, sandbox)
    try:
        try:
            browser = launcher.start(profile, browser_flags(config), config.worker.launch_timeout, {})
        except Exception as error:  # any reason at all: the caller decides what a failed start means
            return Probe(started=False, error=str(error))
        try:
            with CdpConnection(browser.ws_url(), timeout=PROBE_TIMEOUT) as conn:
                target = conn.call("Target.createTarget", {"url": "about:blank"})["targetId"]
                session = conn.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
                # chrome:// first: Chromium 156 crashes on a blocked chrome:// navigation right after an error page.
                opened = [url for url in ("chrome://version/", readable.as_uri())
                          if conn.call("Page.navigate", {"url": url}, session).get("errorText") != BLOCKED]
                conn.call("Page.navigate", {"url": "data:text/html,<title>renderer</title>"}, session)
            sandboxed, uids = _sandboxed(browser, config.chromium.sandbox_settle)
            return Probe(started=True, sandboxed=sandboxed, opened=opened, uids=uids)
        finally:
            launcher.stop(browser)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
        shutil.rmtree(session_temp_dir(profile), ignore_errors=True)


def start_checks(config: Config, users: BrowserUsers, worker_dir: Path) -> bool:
    """Raises ConfinementError if this worker must not start; returns whether browsers get Chromium's sandbox."""
    if config.chromium.sandbox not in SANDBOX_MODES:
        raise ConfinementError(f"BROKER_CHROMIUM_SANDBOX must be one of {', '.join(SANDBOX_MODES)}, "
                               f"not {config.chromium.sandbox!r}")
    prepare_directories(config, worker_dir, users)
    browsers = config.worker.pool_size + config.worker.spare_room
    if users.switching and len(users.candidates) < browsers:
        log.warning("only %d browser users for a pool of %d (warm browsers' own slots included): launches past that "
                    "fail; scripts/setup.sh creates more", len(users.candidates), browsers)
    problems = [problem] if (problem := policy_problem(config)) else []
    if problems and not config.development:
        raise ConfinementError(f"{problems[0]} (only BROKER_ENV=development runs without it)")

    sandbox = config.chromium.sandbox != "off"
    result = probe(config, users, worker_dir, sandbox)
    if sandbox and not (result.started and result.sandboxed):
        reason = result.error or "Chromium started, but its renderers run without seccomp"
        if config.chromium.sandbox == "on":
            raise ConfinementError(f"BROKER_CHROMIUM_SANDBOX=on, but Chromium's sandbox does not work here: {reason}")
        log.warning("CHROMIUM SANDBOX OFF: this host cannot give Chromium its sandbox (%s); browsers run with "
                    "--no-sandbox. The README's security section says what a host or container needs.", reason)
        sandbox = False
        result = probe(config, users, worker_dir, sandbox)
    elif not sandbox:
        log.warning("CHROMIUM SANDBOX OFF: BROKER_CHROMIUM_SANDBOX=off, browsers run with --no-sandbox")
    if not result.started:
        raise ConfinementError(f"Chromium does not start: {result.error}")
    if 0 in result.uids:
        raise ConfinementError("a browser process runs as root")
    if result.opened:
        problems.append(f"Chromium opens {', '.join(result.opened)}: the broker's managed policy is not in force")
    if problems:
        if not config.development:
            raise ConfinementError(f"{'; '.join(problems)} (only BROKER_ENV=development runs without it)")
        log.error("PAGES CAN READ THIS HOST: %s. This worker starts only because BROKER_ENV=development.",
                  "; ".join(problems))
    log.info("browsers run %s; Chromium sandbox %s; managed policy %s", users.describe(),
             "on" if sandbox else "OFF", "MISSING" if problems else "in force")
    return sandbox
