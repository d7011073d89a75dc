"""The worker's Celery application: ``celery -A tasks.celery_app worker``.

Queue names and settings come from :mod:`core.dispatch`, which the web process
uses to send; this module adds only the task modules the worker runs, its bootsteps
(tasks/worker_state.py: browser counts in ``inspect stats`` for Flower, the
launch queue after a reconnection), the logging every process shares
(core.logs), and a guard that keeps a Redis outage or restart from ending
the worker (tasks/broker_guard.py).
"""
from __future__ import annotations

from celery.signals import setup_logging

from core.config import load
from core.dispatch import make_celery
from core.logs import configure
from tasks import broker_guard

broker_guard.install()
config = load()
celery = make_celery(config, include=["tasks.browser", "tasks.lifecycle"])
celery.steps["worker"].add("tasks.worker_state:BrowserCounts")
celery.steps["consumer"].add("tasks.worker_state:LaunchQueueOnConnect")


@setup_logging.connect
def log_like_every_process(**_: object) -> None:
    """The broker's own format (core.logs) instead of Celery's, its lines named by this worker."""
    configure(config, worker=_worker_name)


def _worker_name() -> str | None:
    from tasks.runtime import current_worker_name  # runtime imports this module: looked up once logging runs

    return current_worker_name()
