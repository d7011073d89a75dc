"""Hooks for the test suite and the benchmarks only: ways to make a process do what it never does on its own.

Not configuration: no deployment sets them, the README's configuration table leaves them out, and each is
inert when unset (the default). They are read from the environment once per process, as core/config.py's
settings are, so a test sets one on a process it starts (``broker.start_worker(..., BROKER_TEST_KILL_AT=…)``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Hooks:
    #: BROKER_TEST_KILL_AT: the worker SIGKILLs itself at this point of a context save (tasks/contexts.py), so a
    #: test can prove that a crash there loses nothing (tests/e2e/test_save_faults.py).
    kill_at: str = field(default_factory=lambda: os.environ.get("BROKER_TEST_KILL_AT", ""))
    #: BROKER_GATEWAY_ALWAYS: ``1``: the web process reaches even a browser on its own host through the worker's
    #: gateway, the way it reaches one on another host (tests/e2e/test_gateway.py, bench/hosts.py).
    gateway_always: bool = field(default_factory=lambda: _on("BROKER_GATEWAY_ALWAYS"))
    #: BROKER_TEST_CLIENT_REGISTER_DELAY: seconds the relay waits between a CDP client's upgrade and its registration,
    #: so a test can stop the session in that gap (tests/e2e/test_cdp_clients.py).
    client_register_delay: float = field(
        default_factory=lambda: float(os.environ.get("BROKER_TEST_CLIENT_REGISTER_DELAY", "") or 0))


def _on(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def load() -> Hooks:
    return Hooks()
