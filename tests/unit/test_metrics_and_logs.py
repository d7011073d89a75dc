"""The stored figures as /metrics exports them (parsed by prometheus_client's own parser), and the log line shapes."""
from __future__ import annotations

import io
import json
import logging
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from core.logs import EventFields, KnownProjects, formatter, session_fields
from core.metrics import CREATE_BUCKETS, SAVE, SNAPSHOT_BYTES_BUCKETS, StoreFigures
from core.session_machine import SessionMachine
from core.states import StopReason
from core.store.metrics import ALL, CREATE_SECONDS, CREATES, SNAPSHOT_BYTES
from tests.support.records import PROJECT, WORKER, new_session, running_session
from tests.support.settings import config_with


def scrape(store) -> dict[tuple[str, tuple], float]:
    """Every sample of one scrape, by name and labels."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreFigures(store))
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_session_moves_count_by_status_and_stop_reason_in_the_moves_own_transaction(store):
    machine = SessionMachine(store)
    running = [running_session(machine) for _ in range(3)]
    machine.finish_stop(running[0], StopReason.DELETED, None)
    machine.lose(running[1])
    abandoned = new_session(store)
    machine.abandon(abandoned)
    machine.abandon(abandoned)  # refused: counts nothing
    figures = scrape(store)
    assert figures[("broker_sessions", (("status", "running"),))] == 1
    assert figures[("broker_sessions_entered_total", (("status", "running"),))] == 3
    assert figures[("broker_sessions_entered_total", (("status", "pending"),))] == 4
    assert figures[("broker_sessions_entered_total", (("status", "abandoned"),))] == 1
    assert figures[("broker_session_stops_total", (("reason", "deleted"),))] == 1
    assert figures[("broker_session_stops_total", (("reason", "worker_lost"),))] == 1


def test_create_outcomes_latency_and_snapshot_sizes_are_histograms_with_cumulative_buckets(store):
    for code, seconds in (("201", 0.3), ("201", 1.5), ("503", 30.0), ("429", 0.01)):
        store.metrics.count(CREATES, code)
        store.metrics.observe(CREATE_SECONDS, ALL, seconds, CREATE_BUCKETS)
    store.metrics.observe(SNAPSHOT_BYTES, SAVE, 100_000, SNAPSHOT_BYTES_BUCKETS)
    figures = scrape(store)
    assert figures[("broker_session_creates_total", (("code", "201"),))] == 2
    assert figures[("broker_session_creates_total", (("code", "503"),))] == 1
    assert figures[("broker_session_create_seconds_bucket", (("le", "0.5"),))] == 2
    assert figures[("broker_session_create_seconds_bucket", (("le", "+Inf"),))] == 4
    assert figures[("broker_session_create_seconds_count", ())] == 4
    assert abs(figures[("broker_session_create_seconds_sum", ())] - 31.81) < 1e-9
    assert figures[("broker_snapshot_bytes_bucket", (("le", "64000.0"),  ("operation", "save")))] == 0
    assert figures[("broker_snapshot_bytes_bucket", (("le", "256000.0"), ("operation", "save")))] == 1
    assert figures[("broker_snapshot_bytes_count", (("operation", "restore"),))] == 0


def test_each_worker_shows_its_slots_and_heartbeat_age_and_the_launch_line_its_depth(store):
    store.workers.heartbeat("w1@a", {"browsers": {"slots": 4, "spareSlots": 4, "free": 2, "warm": 1, "running": 2,
                                                  "launching": 0}})
    store.workers.heartbeat("w2@b", {"browsers": {"slots": 2, "free": 2, "warm": 0, "running": 0, "launching": 0}})
    new_session(store)
    figures = scrape(store)
    assert figures[("broker_worker_slots", (("use", "running"), ("worker", "w1@a")))] == 2
    assert figures[("broker_worker_slots", (("use", "spareSlots"), ("worker", "w1@a")))] == 4
    assert figures[("broker_worker_slots", (("use", "free"), ("worker", "w2@b")))] == 2
    assert 0 <= figures[("broker_worker_heartbeat_age_seconds", (("worker", "w2@b"),))] < 5
    assert figures[("broker_launch_queue_depth", ())] == 1


def _log_line(config, record: logging.LogRecord) -> str:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter(config))
    handler.addFilter(EventFields(lambda: "this-worker@host"))
    handler.handle(record)
    return out.getvalue()


def _record(message: str, *args, **extra) -> logging.LogRecord:
    record = logging.LogRecord("tasks.browser", logging.INFO, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    return record


def test_a_json_line_is_one_object_naming_the_session_its_project_and_worker(store):
    config = config_with(REDIS_URL=store.config.redis_url, BROKER_LOG_FORMAT="json")
    fields = session_fields({"id": "ses_1", "project": PROJECT, "worker": WORKER})
    line = _log_line(config, _record("session %s: running", "ses_1", **fields))
    assert line.count("\n") == 1
    event = json.loads(line)
    assert (event["session"], event["project"], event["worker"]) == ("ses_1", PROJECT, "w@test")
    assert (event["level"], event["logger"], event["message"]) == ("INFO", "tasks.browser", "session ses_1: running")
    assert datetime.fromisoformat(event["time"]).utcoffset() == timedelta(0)
    # A line about no session still says which worker wrote it.
    assert json.loads(_log_line(config, _record("heartbeat")))["worker"] == "this-worker@host"


def test_a_text_line_brackets_the_session_fields_and_any_connect_token_is_redacted(store):
    config = config_with(REDIS_URL=store.config.redis_url, BROKER_LOG_FORMAT="text")
    line = _log_line(config, _record('"GET /ws/session/ses_1?token=s3cret HTTP/1.1" 101', session="ses_1",
                                     project=PROJECT))
    assert " tasks.browser [session=ses_1 project=p worker=this-worker@host]: " in line
    assert "s3cret" not in line and "token=[redacted]" in line


def test_a_line_that_knows_only_the_session_id_names_the_project_of_its_earlier_events(store):
    config = config_with(REDIS_URL=store.config.redis_url, BROKER_LOG_FORMAT="json")
    _log_line(config, _record("launch taken", **session_fields({"id": "ses_2", "project": "acme"})))
    later = json.loads(_log_line(config, _record("ses_2: browser up", session="ses_2")))
    assert (later["session"], later["project"], later["worker"]) == ("ses_2", "acme", "this-worker@host")
    assert json.loads(_log_line(config, _record("x", session="ses_unknown")))["project"] is None


def test_the_projects_remembered_for_log_lines_are_bounded():
    known = KnownProjects(limit=2)
    for n in range(3):
        known.note(f"ses_{n}", f"p{n}")
    assert (known.get("ses_0"), known.get("ses_1"), known.get("ses_2")) == (None, "p1", "p2")

