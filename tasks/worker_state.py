"""Bootsteps: the worker's browser counts in Celery's ``inspect stats``, which Flower shows (a worker's page, "Other"
tab), and the launch intake's choice applied to each new broker connection."""
from __future__ import annotations

from celery import bootsteps

from tasks.runtime import browser_counts, intake


class BrowserCounts(bootsteps.StartStopStep):
    """Read when someone asks (``celery inspect stats``, Flower's refresh), so always current; nothing sent unasked.

    A start/stop step only because Celery collects ``info`` from those alone; it starts nothing.
    """

    def info(self, worker: object) -> dict:
        return {"browsers": browser_counts()}


class LaunchQueueOnConnect(bootsteps.StartStopStep):
    """Runs at each start of the consumer, the first and every reconnection after a lost broker connection, once
    its task consumer consumes again (tasks.intake ``on_connect``)."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def start(self, parent: object) -> None:
        intake().on_connect(parent)
