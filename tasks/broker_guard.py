"""A guard on kombu's Redis transport, for the worker: a channel whose transport is already closed fails with a Redis
connection error, never with an AttributeError, so a Redis outage or restart never ends the worker.

What it is for (kombu 5.7.0, celery 5.7.0, redis-py 8.1.0; seen with Redis killed and restarted while a launch
task, which is ``acks_late``, still ran): on a lost connection Celery's consumer first calls
``connection.collect()``. Its close of the default channel fails (the pending BRPOP read raises the connection
error, which ``maybe_close_channel`` swallows, so the channel stays open), and it then closes the transport anyway
(``transport.client = None``). Next it calls ``connection.close()`` through ``ignore_errors``, which closes that
channel again: the channel puts its unacknowledged messages back with a client built from ``transport.client``, and
``Channel._connparams`` raises AttributeError("'NoneType' object has no attribute 'hostname'"). ``ignore_errors``
passes only connection and channel errors, so the AttributeError reached the worker as "Unrecoverable error": the
worker shut down instead of reconnecting. The same AttributeError from closing a channel of a closed transport was
reported as celery/kombu#582 and #970; kombu's master still has the sequence.

Why this guard rather than a setting: no Celery or kombu setting avoids the second close (it is the consumer's
connection-loss path itself), and the restore at close cannot be switched off through transport options. A
transport subclass chosen by ``broker_transport`` would replace the one REDIS_URL's scheme picks (``rediss://``,
``sentinel://``). The guard changes nothing while the transport is open; once it is closed, any Redis call through
it could only fail, and it now fails as the connection error every caller of it expects, so the consumer goes on to
reconnect. The messages the closed channel could not put back stay in Redis's set of unacknowledged messages,
from which kombu restores them once the visibility timeout has passed (a launch that comes back then finds its
session no longer pending, or itself expired, and does nothing); if Redis lost its data they are lost with it, as
every queued message is.
"""
from __future__ import annotations

import functools
from typing import Any

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

_GUARDED = "_browser_broker_closed_transport_guard"


def install() -> None:
    """Idempotent; the worker's bootstep (tasks/worker_steps.py) calls it when Celery builds the worker, before the
    consumer's first connection: importing the app module patches nothing."""
    channel = kombu_redis.Channel
    original = channel._connparams
    if getattr(original, _GUARDED, False):
        return

    @functools.wraps(original)
    def connparams(self: kombu_redis.Channel, *args: Any, **kwargs: Any) -> dict:
        transport = self.connection
        if transport is None or transport.client is None:
            raise RedisConnectionError("the broker connection is closed (lost); this channel can no longer reach Redis")
        return original(self, *args, **kwargs)

    setattr(connparams, _GUARDED, True)
    channel._connparams = connparams
