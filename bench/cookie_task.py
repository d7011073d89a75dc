"""The road not taken, kept so it can be measured: a cookie export run as a Celery task.

bench/cookies.py starts a worker on this module (``celery -A bench.cookie_task``)
and times send_task → the worker reads the cookies over CDP → the answer comes
back on a Redis list (as launch events do), against the web process calling CDP
itself. Nothing in the broker uses it.
"""
from __future__ import annotations

import json

import redis
from celery import Celery

from core.config import load
from core.cdp import CdpConnection
from core.cookies import read_cookies

QUEUE = "bench.cookies"
TASK = "bench.read_cookies"
REPLY_TTL = 60

config = load()
celery = Celery("bench_cookies", broker=config.redis_url)
celery.conf.update(
    task_default_queue=QUEUE,
    task_ignore_result=True,
    worker_prefetch_multiplier=1,
    worker_pool="threads",
    worker_concurrency=2,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
_replies = redis.Redis.from_url(config.redis_url)


@celery.task(name=TASK)
def read(ws_url: str, reply_key: str) -> None:
    with CdpConnection(ws_url) as conn:
        cookies = read_cookies(conn)
    pipe = _replies.pipeline()
    pipe.rpush(reply_key, json.dumps(cookies))
    pipe.expire(reply_key, REPLY_TTL)
    pipe.execute()
