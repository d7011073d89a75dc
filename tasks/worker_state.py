"""The worker's browser counts in Celery's ``inspect stats``, which Flower shows (a worker's page, "Other" tab)."""
from __future__ import annotations

from celery import bootsteps

from tasks.runtime import browser_counts


class BrowserCounts(bootsteps.StartStopStep):
    """Read when someone asks (``celery inspect stats``, Flower's refresh), so always current; nothing sent unasked.

    A start/stop step only because Celery collects ``info`` from those alone; it starts nothing.
    """

    def info(self, worker: object) -> dict:
        return {"browsers": browser_counts()}
