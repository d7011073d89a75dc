"""The Celery application and its routing.

Launches go to one shared queue that every worker consumes; each worker also
consumes a queue of its own, named after its node name, so the stop task of a
session reaches the one worker whose pool holds that browser.
"""
from __future__ import annotations

from celery import Celery

from app.config import load

LAUNCH_QUEUE = "browsers.launch"
LAUNCH_TASK = "browser.launch"
STOP_TASK = "browser.stop"

config = load()

celery = Celery("browser_broker", broker=config.redis_url, include=["tasks.browser", "tasks.lifecycle"])
celery.conf.update(
    task_default_queue=LAUNCH_QUEUE,
    task_ignore_result=True,
    # A worker takes one launch at a time per free thread; it never hoards launches
    # another worker with free slots could run.
    worker_prefetch_multiplier=1,
    # The pool lives in the worker process, so threads, never prefork children.
    worker_pool="threads",
    worker_concurrency=config.pool_size * 2,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    worker_send_task_events=True,
    # With Redis down, a create fails in seconds instead of hanging in publish retries.
    broker_connection_timeout=3,
    task_publish_retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1},
    task_send_sent_event=True,
)


def worker_queue(nodename: str) -> str:
    """The queue only the worker ``nodename`` consumes."""
    return f"browsers.worker.{nodename}"
