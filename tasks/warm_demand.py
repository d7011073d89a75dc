"""How many warm browsers a worker should keep: the creates it has seen lately, times how long a refill takes.

A spare handed out is replaced only a *lead time* later (the keeper's settle after a hand-over, the launch, the
settle before the offer), and every create in that time needs a spare of its own. So the target is what that lead
time brings: the Poisson quantile (``COVER``) of the recent rate times the lead time, or the largest burst seen
within one lead time, whichever is more; never below the floor (BROKER_WARM_BROWSERS) nor above the ceiling the
caller gives (free slots, memory). Creates older than the window (BROKER_WARM_WINDOW) no longer count, so after a
quiet spell that long the target is back at the floor and the extra spares end. A window of 0 follows no demand:
the target is the floor, for an operator who wants a fixed number of spares (and a fixed memory cost).

Pure arithmetic on the times it is told: tests/unit/test_warm_demand.py drives it with a clock of its own.
"""
from __future__ import annotations

import math
import threading
from collections import deque

#: The share of lead times whose creates the spares should cover when creates arrive at random (Poisson): at 0.95,
#: about one lead time in twenty sees more creates than spares, and the extra ones launch cold.
COVER = 0.95
#: The rate is the higher of the whole window's and this many seconds': a stream that just began is not averaged
#: with the quiet before it.
RECENT = 10.0
#: A spare's launch time before one has been measured (a direct launch until CDP answers: ~0.2 s on 2 cores,
#: more when loaded).
FIRST_LAUNCH_GUESS = 0.4
#: Weight of each new launch time in the running average: a launch beside busy sessions is slower, and the
#: target should follow that within a few launches.
LAUNCH_WEIGHT = 0.3


def poisson_quantile(mean: float, cover: float) -> int:
    """The smallest n with P(X <= n) >= cover for X ~ Poisson(mean)."""
    if mean <= 0:
        return 0
    term = math.exp(-mean)
    total, n = term, 0
    while total < cover:
        n += 1
        term *= mean / n
        total += term
    return n


class WarmDemand:
    """Thread-safe: the worker's consumer thread reports creates while the keeper reads the target."""

    def __init__(self, floor: int, window: float, settle: float) -> None:
        """``settle``: the keeper's fixed waits around a launch (after a hand-over, before an offer), part of the
        lead time."""
        self.floor = floor
        self.window = window
        self.settle = settle
        self.launch_seconds = FIRST_LAUNCH_GUESS
        self._creates: deque[float] = deque()
        self._lock = threading.Lock()

    def saw_create(self, now: float) -> None:
        """A launch reached this worker, for a warm browser or a cold one: either is demand."""
        if self.window <= 0:
            return
        with self._lock:
            self._creates.append(now)
            self._forget(now)

    def saw_launch(self, seconds: float) -> None:
        with self._lock:
            self.launch_seconds += LAUNCH_WEIGHT * (seconds - self.launch_seconds)

    def lead_time(self) -> float:
        return self.settle + self.launch_seconds

    def rate(self, now: float) -> float:
        """Creates per second: the window's average, or the last ``RECENT`` seconds' if higher."""
        with self._lock:
            self._forget(now)
            recent = sum(1 for t in self._creates if t > now - RECENT)
            return max(len(self._creates) / self.window, recent / min(RECENT, self.window))

    def burst(self, now: float) -> int:
        """The most creates seen within any one lead time in the window."""
        lead = self.lead_time()
        with self._lock:
            self._forget(now)
            times = list(self._creates)
        most, start = 0, 0
        for end, t in enumerate(times):
            while times[start] < t - lead:
                start += 1
            most = max(most, end - start + 1)
        return most

    def target(self, now: float, ceiling: int) -> int:
        """Spares to keep: the floor with no recent creates, at most ``ceiling`` (but never below the floor while
        the ceiling allows it)."""
        if self.window <= 0:
            return max(0, min(self.floor, ceiling))
        wanted = max(self.floor, poisson_quantile(self.rate(now) * self.lead_time(), COVER), self.burst(now))
        return max(0, min(wanted, ceiling))

    def _forget(self, now: float) -> None:
        while self._creates and self._creates[0] <= now - self.window:
            self._creates.popleft()
