"""Whether this worker takes launches: only while its pool has a free slot.

A full worker stops consuming the shared launch queue, so queued creates wait
in Redis, in arrival order, for whichever worker frees a slot first, instead of
failing. The switch goes through Celery's remote control (``cancel_consumer`` /
``add_consumer`` addressed to this worker only), which the worker's consumer
applies on its own thread, in the order sent.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from celery import Celery

from core.dispatch import LAUNCH_QUEUE

log = logging.getLogger(__name__)


class LaunchIntake:
    def __init__(self, app: Celery, nodename: str, free_slots: Callable[[], int]) -> None:
        self.app = app
        self.nodename = nodename
        self.free_slots = free_slots
        self._lock = threading.Lock()
        self._consuming = True

    def pool_full(self) -> None:
        with self._lock:
            if self._consuming:
                self._consuming = False
                self.app.control.cancel_consumer(LAUNCH_QUEUE, destination=[self.nodename], reply=False)
                log.info("all browser slots taken: launches wait in the queue")

    def reconcile(self) -> None:
        """After a slot frees (and on every heartbeat, as a safety net)."""
        with self._lock:
            if not self._consuming and self.free_slots() > 0:
                self._consuming = True
                self.app.control.add_consumer(LAUNCH_QUEUE, destination=[self.nodename], reply=False)
                log.info("a browser slot is free: taking launches again")
