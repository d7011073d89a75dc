"""The address a worker advertises for its gateway with BROKER_WORKER_HOST=auto (tasks/gateway.py)."""
from __future__ import annotations

import socket

from tasks.gateway import advertised_host
from tests.support.settings import config_with


def test_a_host_name_that_does_not_resolve_falls_back_to_the_address_redis_is_reached_from(monkeypatch):
    """A container named by 12 decimal digits: glibc takes the name for a malformed number and never reads
    /etc/hosts, so the worker would die at start; it advertises the address it reaches Redis from instead."""
    def unresolvable(name: str) -> str:
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "gethostname", lambda: "123456789012")
    monkeypatch.setattr(socket, "gethostbyname", unresolvable)
    config = config_with(BROKER_WORKER_HOST="auto", REDIS_URL="redis://127.0.0.1:6390/0")

    assert advertised_host(config) == "127.0.0.1"


def test_a_set_worker_host_is_advertised_as_it_is():
    assert advertised_host(config_with(BROKER_WORKER_HOST="10.1.2.3")) == "10.1.2.3"
