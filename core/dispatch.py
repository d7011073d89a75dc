"""The one place that names queues and tasks and sends launch and stop tasks.

Cold launches go to one shared queue every worker with room consumes; each
worker also consumes a queue of its own, named after its node name, so the stop
task of a session reaches the one worker whose pool holds that browser, and a
launch that took a worker's warm browser (core.store.warm) reaches that worker
without waiting behind cold launches. The web process only sends;
``tasks.celery_app`` builds the worker's app from the same settings.
"""
from __future__ import annotations

import logging

from celery import Celery
from kombu.exceptions import OperationalError

from core.browser_options import needs_launch
from core.config import Config

log = logging.getLogger(__name__)

LAUNCH_QUEUE = "browsers.launch"
#: Each worker also consumes its own queue, this prefix and its name (launches for its warm browsers, stops).
WORKER_QUEUE_PREFIX = "browsers.worker."
LAUNCH_TASK = "browser.launch"
STOP_TASK = "browser.stop"
#: A session saved by a worker told to stop, for any worker to run again (tasks/moving.py).
RELAUNCH_TASK = "browser.relaunch"


def can_use_warm(record: dict) -> bool:
    """A warm browser was launched with the common flags and an empty profile: only a session needing neither fits.

    A context fills the profile before launch, a proxy or extensions add launch flags.
    """
    return not record.get("contextId") and not record.get("proxyId") and not needs_launch(
        record.get("browserOptions") or {})


def worker_queue(nodename: str) -> str:
    """The queue only the worker ``nodename`` consumes."""
    return f"{WORKER_QUEUE_PREFIX}{nodename}"


def worker_of_queue(queue: str) -> str:
    """The worker's name back from its own queue (a session record names the queue)."""
    return queue.removeprefix(WORKER_QUEUE_PREFIX)


def make_celery(config: Config, include: list[str] | None = None) -> Celery:
    celery = Celery("browser_broker", broker=config.redis_url, include=include or [])
    celery.conf.update(
        task_default_queue=LAUNCH_QUEUE,
        task_ignore_result=True,
        # A worker takes one launch at a time per free thread; it never hoards launches
        # another worker with free slots could run.
        worker_prefetch_multiplier=1,
        # The pool lives in the worker process, so threads, never prefork children.
        worker_pool="threads",
        worker_concurrency=config.worker.pool_size * 2,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=True,
        # With Redis down, a create fails in seconds instead of hanging in publish retries.
        broker_connection_timeout=3,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1},
        # Redis on another host can vanish without closing TCP (a cut link): no command waits on a dead
        # connection for long, and a consumer's BRPOP left unanswered is dropped and reopened within seconds
        # (kombu's default, 25 s checks, let a worker whose link came back idle for up to a minute).
        broker_transport_options={"socket_timeout": 10, "health_check_interval": 5},
        task_send_sent_event=True,
    )
    return celery


class Dispatcher:
    """Sends tasks only after the record they act on is stored (the caller's move came first)."""

    def __init__(self, celery: Celery, config: Config) -> None:
        self.celery = celery
        self.config = config

    def connect(self) -> None:
        """Does at the web process's start what Celery otherwise does inside the first send: importing the result
        backend's and the transport's classes (an entry-point scan), building the producer pool, opening its broker
        connection and the channel's. The first create after a start took 70-100 ms (warm; ~22 ms for the next
        ones), 35-48 ms with this. Redis down is no reason not to start: the first send then retries as every
        send does."""
        log.debug("dispatcher: result backend %s", type(self.celery.backend).__name__)
        try:
            with self.celery.producer_or_acquire() as producer:
                # Once, not kombu's default of retrying for ever: the web must start and answer 503s.
                producer.connection.ensure_connection(max_retries=1)
                producer.maybe_declare(self.celery.amqp.queues[LAUNCH_QUEUE])
        except OperationalError as error:
            log.warning("dispatcher: the broker did not answer at start (%s); the first send will try again", error)

    def send_launch(self, session_id: str) -> None:
        """Expires with the create's wait: a launch nobody took in time must never start a browser later."""
        self.celery.send_task(LAUNCH_TASK, args=[session_id], queue=LAUNCH_QUEUE, expires=self.config.web.create_wait)

    def send_warm_launch(self, worker_queue_name: str, session_id: str, warm_key: str) -> None:
        """To the worker holding the warm browser ``warm_key``, on its own queue; expires like a cold launch."""
        self.celery.send_task(LAUNCH_TASK, args=[session_id], kwargs={"warm": warm_key}, queue=worker_queue_name,
                              expires=self.config.web.create_wait)

    def send_relaunch(self, session_id: str, state: str) -> None:
        """To the shared queue, never expiring: the session waits, running and moving, for a worker to take it."""
        self.celery.send_task(RELAUNCH_TASK, args=[session_id, state], queue=LAUNCH_QUEUE)

    def send_stop(self, worker_queue_name: str, session_id: str, reason: str) -> None:
        self.celery.send_task(STOP_TASK, args=[session_id, str(reason)], queue=worker_queue_name)
