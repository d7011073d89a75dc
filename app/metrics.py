"""``GET /metrics`` (Prometheus text) and the figures of session creates, which only the web process sees.

Open when BROKER_METRICS_KEY is empty (bind the web process privately, or let
the router keep /metrics inside); otherwise a scraper sends
``Authorization: Bearer <key>`` (Prometheus's ``authorization`` setting).
Creates are counted in Redis like every other figure, so all web processes of
a deployment add to the same counters.
"""
from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Iterable

from flask import Blueprint, Flask, Response, current_app, g, request
from flask_smorest import abort
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.registry import Collector

from app.extensions import config, store
from core.logs import session_fields
from core.metrics import CREATE_BUCKETS, StoreFigures
from core.store.metrics import ALL, CREATE_SECONDS, CREATES

log = logging.getLogger(__name__)
blp = Blueprint("metrics", __name__)
REGISTRY_EXTENSION = "broker.metrics_registry"
#: The endpoint of ``POST /v1/sessions`` (flask-smorest names it blueprint.MethodView).
CREATE_ENDPOINT = "sessions.Sessions"
#: Where the create view leaves the session it started, for the answer's log line.
CREATED = "created_session"


@blp.get("/metrics")
def metrics() -> Response:
    expected = config().web.metrics_key
    if expected:
        presented = request.headers.get("Authorization", "")
        if not hmac.compare_digest(presented.encode(), f"Bearer {expected}".encode()):
            abort(401, message="/metrics needs Authorization: Bearer <BROKER_METRICS_KEY>.",
                  headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    return Response(generate_latest(current_app.extensions[REGISTRY_EXTENSION]),
                    headers={"Content-Type": CONTENT_TYPE_LATEST})


def register(app: Flask, extra: Iterable[Collector]) -> None:
    """The app's own registry (never prometheus_client's global one): two apps in one process never clash."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreFigures(app.extensions["broker.store"]))
    ProcessCollector(registry=registry)
    for collector in extra:
        registry.register(collector)
    app.extensions[REGISTRY_EXTENSION] = registry
    app.register_blueprint(blp)
    app.before_request(_start_clock)
    app.after_request(_count_create)


def _start_clock() -> None:
    g.started = time.monotonic()


def _count_create(response: Response) -> Response:
    """Every answer to a create, refusals and failures included, counted by status and timed; one log line each.

    The figures are written once the answer has gone (two Redis round trips the caller need not wait for).
    """
    if request.endpoint != CREATE_ENDPOINT or request.method != "POST":
        return response
    elapsed = time.monotonic() - g.get("started", time.monotonic())
    code = str(response.status_code)
    figures = store().metrics

    def count() -> None:
        try:
            figures.count(CREATES, code)
            figures.observe(CREATE_SECONDS, ALL, elapsed, CREATE_BUCKETS)
        except Exception as error:  # the answer matters more than its figure (Redis may be what failed)
            log.warning("could not count a create (%s)", error)

    response.call_on_close(count)
    created = g.get(CREATED)
    fields = session_fields(created) if created else {"project": g.get("project")}
    log.info("session create answered %s in %.3f s", code, elapsed, extra=fields)
    return response
