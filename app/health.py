"""Liveness and readiness for the platform's router and for operators; no key needed."""
from __future__ import annotations

from flask import Blueprint, jsonify
from redis.exceptions import RedisError

from app.auth import bootstrap_key_state
from app.extensions import config, store

blp = Blueprint("health", __name__)


@blp.get("/healthz")
def healthz():
    return jsonify(status="ok")


BROWSER_COUNTS = ("slots", "spareSlots", "free", "warm", "running", "launching")


@blp.get("/readyz")
def readyz():
    """Ready means a create can succeed: Redis answers, some worker heartbeats, and the bootstrap key is stored.

    A bootstrap key Redis lost (restarted empty) is stored again here before the answer, so a 200 never
    stands beside an API that refuses its own key; one revoked on purpose does not make the API unready.

    ``browsers`` sums the live workers' slots by use, as of their last heartbeat:
    ``warm`` browsers answer a create at once, ``free`` slots take a cold launch; ``slots`` hold sessions,
    ``spareSlots`` only warm browsers (BROKER_WARM_MAX).
    ``isolation`` says, per worker, how its browsers are kept apart (tasks/worker.py ``Worker.isolation``).
    """
    try:
        store().ping()
        workers = store().workers.states()
        bootstrap_key_state(store(), config())
    except RedisError as error:
        return jsonify(status="unavailable", redis=f"unreachable: {error}", workers=None), 503
    if not workers:
        return jsonify(status="unavailable", redis="ok", workers=0, message="no live worker"), 503
    browsers = {name: sum(state.get("browsers", {}).get(name, 0) for state in workers.values())
                for name in BROWSER_COUNTS}
    isolation = {name: state.get("isolation") for name, state in sorted(workers.items())}
    return jsonify(status="ok", redis="ok", workers=len(workers), browsers=browsers, isolation=isolation)
