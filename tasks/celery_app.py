"""The worker's Celery application: ``celery -A tasks.celery_app worker``.

Queue names and settings come from :mod:`core.dispatch`, which the web process
uses to send; this module adds only the task modules the worker runs, its bootsteps
(tasks/worker_steps.py: the worker object built, started and stopped, its browser
counts in ``inspect stats`` for Flower, the launch queue after a reconnection) and
the logging every process shares (core.logs). Importing it builds nothing else: the
worker's parts are built when Celery starts the worker (tasks/worker.py).
"""
from __future__ import annotations

from celery.signals import setup_logging

from core.config import load
from core.dispatch import make_celery
from core.logs import configure
from tasks.worker_steps import BrowserWorker, LaunchQueueOnConnect
from tasks.worker_task import attached

config = load()
celery = make_celery(config, include=["tasks.browser", "tasks.moving"])
celery.steps["worker"].add(BrowserWorker)
celery.steps["consumer"].add(LaunchQueueOnConnect)


@setup_logging.connect
def log_like_every_process(**_: object) -> None:
    """The broker's own format (core.logs) instead of Celery's, its lines named by this worker."""
    configure(config, worker=_worker_name)


def _worker_name() -> str | None:
    """None until the worker is built (Celery's first log lines)."""
    worker = attached(celery)
    return worker.name if worker is not None else None
