"""How many browsers this machine carries: the default pool size (BROKER_POOL_SIZE=auto) and the memory ceiling of
the warm spares.

Two limits, the lower wins. CPU: busy pages share the cores, and ``BROWSERS_PER_CORE`` is what two cores were
measured to carry before a page load took twice a lone session's (``bench/active.py --think 1``: 2.22× at N = 6,
docs/BENCHMARKS.md). It sizes the sessions; warm spares, idle, have slots of their own (BROKER_WARM_MAX). Memory:
``BROWSER_MB`` per browser, from what the machine has available when the worker starts, less ``RESERVE_MB`` for
everything else on it. An idle headless browser is ~175 MiB PSS, a busy one more.
"""
from __future__ import annotations

import os

import psutil

#: Browsers per core before pages slow down twice over (2 cores, docs/BENCHMARKS.md).
BROWSERS_PER_CORE = 3
#: Memory one browser is given room for: ~175 MiB PSS idle, a few pages' worth more when busy.
BROWSER_MB = 300
#: Memory left to the worker, the web processes, Redis and the system.
RESERVE_MB = 1024
MB = 1024 * 1024


def cores() -> int:
    """The cores this process may run on (a container's CPU set), not the host's count."""
    return len(os.sched_getaffinity(0))


def browsers_memory_allows(available: int | None = None) -> int:
    """More browsers that fit in the memory available now (bytes; the machine's by default)."""
    if available is None:
        available = psutil.virtual_memory().available
    return max(0, (available // MB - RESERVE_MB) // BROWSER_MB)


def auto_pool_size(core_count: int | None = None, available: int | None = None) -> int:
    """min(cores x BROWSERS_PER_CORE, what memory allows), at least 1."""
    by_cpu = (core_count if core_count is not None else cores()) * BROWSERS_PER_CORE
    return max(1, min(by_cpu, browsers_memory_allows(available)))
