"""Bootsteps: Celery's way to build, start and stop what a worker holds beside its task pool.

``BrowserWorker`` (a worker step) builds the worker object (tasks/worker.py) once Celery has named the worker,
starts it before the consumer takes its first message, and stops it on a warm shutdown once the tasks under way
have finished; its ``info`` puts the browser counts in Celery's ``inspect stats``, which Flower shows (a worker's
page, "Other" tab). ``LaunchQueueOnConnect`` (a consumer step) applies the launch intake's choice to each new broker
connection.
"""
from __future__ import annotations

import gc
import logging

from celery import bootsteps
from celery.worker import WorkController
from celery.worker.consumer import Consumer

from core.config import load
from tasks import broker_guard
from tasks.confinement import ConfinementError
from tasks.worker import Worker
from tasks.worker_task import attach, attached

log = logging.getLogger(__name__)


class BrowserWorker(bootsteps.StartStopStep):
    """Started after the task pool and before the consumer (Celery starts the consumer last), so stopped after the
    consumer and before the task pool (steps stop in reverse): :meth:`stop` waits for the tasks under way itself,
    so that no launch ends after the browsers were ended."""

    requires = ("celery.worker.components:Pool",)
    label = "Browser worker"

    def __init__(self, parent: WorkController, **kwargs: object) -> None:
        super().__init__(parent, **kwargs)
        # Before the consumer's first connection: a Redis outage must never end the worker (tasks/broker_guard.py).
        broker_guard.install()

    def start(self, parent: WorkController) -> None:
        """A worker whose browsers could read the host, or that cannot build its pool at all, does not start.

        Start-up's objects are frozen once all are built, as in the web process (web.py): a full collection of them
        took ~40 ms, holding the GIL that hand-overs and the gateway's pumps need.
        """
        try:
            worker = Worker(load(), parent.app, parent.hostname)
            attach(parent.app, worker)
            worker.start()
        except ConfinementError as error:
            log.critical("this worker does not start: %s", error)
            raise SystemExit(1) from error
        gc.freeze()

    def stop(self, parent: WorkController) -> None:
        """SIGTERM: the launches and stops under way finish first (what the pool step would wait for next)."""
        worker = attached(parent.app)
        if worker is None:
            return
        parent.pool.stop()
        worker.stop()

    def terminate(self, parent: WorkController) -> None:
        """A cold shutdown waits for no task, but still ends every browser: none outlives its worker."""
        worker = attached(parent.app)
        if worker is not None:
            worker.stop()

    def info(self, parent: WorkController) -> dict:
        """Read when someone asks (``celery inspect stats``, Flower's refresh), so always current; nothing sent
        unasked."""
        worker = attached(parent.app)
        return {"browsers": worker.pool.counts()} if worker is not None else {}


class LaunchQueueOnConnect(bootsteps.StartStopStep):
    """Runs at each start of the consumer, the first and every reconnection after a lost broker connection, once
    its task consumer consumes again (tasks.intake ``on_connect``)."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def start(self, parent: Consumer) -> None:
        worker = attached(parent.app)
        if worker is not None:
            worker.intake.on_connect(parent)
