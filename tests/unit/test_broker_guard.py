"""tasks/broker_guard.py: a kombu Redis channel whose transport a lost connection closed fails as a lost connection
(which Celery's consumer handles by reconnecting), not with AttributeError (which ended the worker: issue 25 item 3).
tests/e2e/test_redis_restart.py shows it on a worker whose Redis is killed while a launch is unacknowledged."""
from __future__ import annotations

import pytest
from kombu import Connection
from kombu.common import ignore_errors
from redis.exceptions import ConnectionError as RedisConnectionError

from tasks import broker_guard


def test_a_channel_of_a_closed_transport_fails_as_a_lost_connection(redis_server):
    broker_guard.install()
    broker_guard.install()  # once is enough; twice changes nothing
    connection = Connection(redis_server.url(14))
    channel = connection.default_channel
    errors = connection.connection_errors
    # What Celery's collect() leaves when its close of the channel failed: the transport closed, the channel open.
    connection._do_close_transport()
    channel._pool = None
    with pytest.raises(RedisConnectionError):
        channel._connparams()
    assert issubclass(RedisConnectionError, errors)
    # The close that follows, as the consumer calls it: the channel's restore of unacknowledged messages meets the
    # closed transport, and the error is one ignore_errors lets pass.
    channel.qos._delivered["tag"] = object()
    ignore_errors(connection, channel.close)
