"""Whether this worker takes launches: only while its pool has a free slot, so the queue keeps its order.

Waiting creates are one Redis list that every worker's consumer pops: kombu
publishes with LPUSH and consumes with BRPOP, first in, first out, as long as
nothing is put back. A message put back (``Reject(requeue=True)``) goes in with
LPUSH too, behind every create that arrived after it. So a worker never takes a
launch it cannot run: the message's slot is reserved the moment the consumer
receives it, on the consumer's own thread and before it reads the next message,
and the reservation that takes the last slot cancels the consumer right there.
A slot that frees turns the consumer back on through Celery's remote control
(``add_consumer`` addressed to this worker only), which the consumer applies on
its own thread. So does a warm browser, once a create has waited in line a
moment (tasks.warm): a plain create takes it, any other ends it for its slot.

How long each cold create waited in line is read at receipt and counted once its
browser is up (``broker_launch_wait_seconds``, and the create's path: ``cold`` or
``queued``); a launch that found a spare instead counts as warm (tasks.warm).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from celery import Celery
from celery.worker.consumer import Consumer
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from core.dispatch import LAUNCH_QUEUE
from core.logs import about_session
from core.metrics import LAUNCH_WAIT_BUCKETS
from core.store import Store
from core.store.metrics import CREATE_PATHS, LAUNCH_WAIT_SECONDS, ALL
from tasks.pool import ChromiumPool, PoolFull

log = logging.getLogger(__name__)
#: A launch received this long after its create joined the line waited for a slot (``queued``): with a slot free, a
#: consumer receives it within milliseconds, tens of them on a loaded machine.
QUEUED_AFTER = 0.5


class LaunchIntake:
    def __init__(self, app: Celery, nodename: str, pool: ChromiumPool, warm_room: Callable[[], int],
                 store: Store) -> None:
        self.app = app
        self.nodename = nodename
        self.pool = pool
        self.warm_room = warm_room
        self.store = store
        self._lock = threading.Lock()
        self._consuming = True
        #: Seconds each received cold launch's create had waited in line, until its browser is up.
        self._waited: dict[str, float] = {}

    def received(self, consumer: Consumer, session_id: str) -> None:
        """A launch message arrived: its slot is taken now, and the last slot stops the consumer before its next read."""
        try:
            waited = self.store.sessions.waited_in_line(session_id)
        except RedisError:
            waited = None
        with self._lock:
            if waited is not None:
                self._waited[session_id] = waited
            try:
                self.pool.reserve(session_id)
            except PoolFull:
                log.warning("session %s: launch received with no free slot; it goes back to the queue", session_id,
                            extra=about_session(session_id))
            if self._consuming and self.pool.free_slots() <= 0:
                self._consuming = False
                consumer.cancel_task_queue(LAUNCH_QUEUE)
                log.info("all browser slots taken: launches wait in the queue")

    def on_connect(self, consumer: Consumer) -> None:
        """Each time the consumer (re)connects to Redis, on its thread (tasks/worker_steps.py): the intake's choice
        applied to the new connection. A word to consume again that went out while the connection was down, or
        before the new one listened (Redis restarting), reached no one: the consumer stayed off while the intake took
        it as on, and the worker took cold launches no more."""
        with self._lock:
            listening = LAUNCH_QUEUE in self.app.amqp.queues.consume_from
            if self._consuming and not listening:
                consumer.add_task_queue(LAUNCH_QUEUE)
                log.info("reconnected: taking launches again")
            elif not self._consuming and listening:
                consumer.cancel_task_queue(LAUNCH_QUEUE)

    def launched_cold(self, session_id: str) -> None:
        """The session's own browser is up: its create's path and wait are counted (never failing the launch)."""
        with self._lock:
            waited = self._waited.pop(session_id, None)
        if waited is None:
            return
        try:
            self.store.metrics.count(CREATE_PATHS, "queued" if waited >= QUEUED_AFTER else "cold")
        except RedisError as error:
            log.warning("session %s: its launch's path was not counted (%s)", session_id, error,
                        extra=about_session(session_id))
        self._observe_wait(session_id, waited)

    def _observe_wait(self, session_id: str, waited: float) -> None:
        """Never fails the launch: a figure lost to a Redis error is only logged."""
        try:
            self.store.metrics.observe(LAUNCH_WAIT_SECONDS, ALL, waited, LAUNCH_WAIT_BUCKETS)
        except RedisError as error:
            log.warning("session %s: its wait in line was not counted (%s)", session_id, error,
                        extra=about_session(session_id))

    def path_of_spare(self, session_id: str) -> str:
        """A received launch that took a spare: ``queued`` if its create waited in line for a session slot first
        (its wait counted as a cold launch's is), else ``warm``. Creates that waited seconds for a slot and then met
        a spare were counted warm, hiding the queue they stood in."""
        with self._lock:
            waited = self._waited.pop(session_id, None)
        if waited is None or waited < QUEUED_AFTER:
            return "warm"
        self._observe_wait(session_id, waited)
        return "queued"

    def forget(self, session_id: str) -> None:
        """A received launch whose browser ended before it was counted, or that will start no browser."""
        with self._lock:
            self._waited.pop(session_id, None)

    def give_back(self, session_id: str) -> None:
        """A slot reserved for a launch that will not start a browser (create gave up, launch failed or expired)."""
        self.forget(session_id)
        self.pool.unreserve(session_id)
        self.reconcile()

    def reconcile(self) -> None:
        """After a slot frees or a warm browser is ready (and on every heartbeat, as a safety net).

        With Redis failing, the word to consume again may not go out: the consumer is then taken as still off, so
        the next heartbeat says it again (once more than needed is harmless), and the caller (a stop, a launch
        giving its slot back) carries on. Taken as on, the worker would never take a launch again.
        """
        with self._lock:
            if self._consuming:
                return
            try:
                if self.pool.free_slots() + self.warm_room() <= 0:
                    return
                self.app.control.add_consumer(LAUNCH_QUEUE, destination=[self.nodename], reply=False)
            except (OperationalError, RedisError) as error:
                log.warning("a browser slot is free, but Redis did not take the word to take launches again (%s); "
                            "said again on the next heartbeat", error)
                return
            self._consuming = True
            log.info("a browser slot is free: taking launches again")
