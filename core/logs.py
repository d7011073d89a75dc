"""One logging setup for every process (web with its relay, worker): one line per event, JSON on request.

An event about a session carries ``session``, ``project`` and ``worker``
(``extra=session_fields(record)``), in both formats, so one grep or one log
query follows a session across the web process, the relay and its worker. With
``BROKER_LOG_FORMAT=json`` every line is one JSON object (python-json-logger).
Secrets never reach a line: no event names one, and a connect token inside a
URL (``token=…``, quoted by gevent's access log or an error) is redacted from
every line whatever logged it.
"""
from __future__ import annotations

import logging
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping

from pythonjsonlogger.json import JsonFormatter

from core.config import Config
from core.dispatch import worker_of_queue
from core.tokens import redact

SESSION_ID_PREFIX = "ses_"
#: The fields that say which session an event is about.
EVENT_FIELDS = ("session", "project", "worker")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(fields)s: %(message)s"
JSON_FIELDS = ["levelname", "name", "message", *EVENT_FIELDS]
JSON_NAMES = {"levelname": "level", "name": "logger"}
#: A JSON line's time: ISO 8601 in UTC with microseconds, what log stores parse without being told a format.
JSON_TIME = "time"


class KnownProjects:
    """The project of each session this process logged an event for lately, so a line that knows only a
    session's id (the pool's, the gateway's) still names its project. Bounded: the oldest are forgotten."""

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self._projects: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def note(self, session_id: str, project: str) -> None:
        with self._lock:
            self._projects[session_id] = project
            self._projects.move_to_end(session_id)
            while len(self._projects) > self.limit:
                self._projects.popitem(last=False)

    def get(self, session_id: str) -> str | None:
        with self._lock:
            return self._projects.get(session_id)


#: Logging is process-wide by nature (one root logger): so is what it remembers about sessions.
KNOWN_PROJECTS = KnownProjects()


def session_fields(record: Mapping) -> dict[str, str | None]:
    """A session record's identity for ``extra=``: its id, project and (once claimed) worker.

    The project is remembered (KNOWN_PROJECTS) for later lines that know only the id.
    """
    queue = record.get("worker")
    if record.get("id") and record.get("project"):
        KNOWN_PROJECTS.note(record["id"], record["project"])
    return {"session": record.get("id"), "project": record.get("project"),
            "worker": worker_of_queue(queue) if queue else None}


def about_session(key: str) -> dict[str, str]:
    """``extra=`` for a line that knows only an id: a session's names it, a warm browser's key (no session yet) not."""
    return {"session": key} if key.startswith(SESSION_ID_PREFIX) else {}


class EventFields(logging.Filter):
    """Gives every line the event fields (this process's worker name by default) and redacts connect tokens."""

    def __init__(self, worker: Callable[[], str | None]) -> None:
        super().__init__()
        self.worker = worker

    def filter(self, record: logging.LogRecord) -> bool:
        for name in EVENT_FIELDS:
            if getattr(record, name, None) is None:
                setattr(record, name, None)
        if record.worker is None:
            record.worker = self.worker()
        if record.session is not None and record.project is None:
            record.project = KNOWN_PROJECTS.get(record.session)
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: logging's own handler reports it, the caller carries on
            return True
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class TextFormatter(logging.Formatter):
    """``time LEVEL logger [session=… project=… worker=…]: message``; the brackets only when a field is set."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{name}={getattr(record, name)}" for name in EVENT_FIELDS if getattr(record, name, None))
        return TEXT_FORMAT % {**record.__dict__, "fields": f" [{fields}]" if fields else ""}


def formatter(config: Config) -> logging.Formatter:
    if config.logs.format == "json":
        return JsonFormatter(JSON_FIELDS, rename_fields=JSON_NAMES, timestamp=JSON_TIME)
    return TextFormatter()


def configure(config: Config, worker: Callable[[], str | None] = lambda: None) -> None:
    """Replaces the root logger's handlers with one to stderr; ``worker`` names this process's worker, if it is one."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(config))
    handler.addFilter(EventFields(worker))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(config.logs.level)
