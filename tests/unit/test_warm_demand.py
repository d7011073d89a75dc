"""The warm browsers' sizing policy (tasks/warm_demand.py) and the machine's capacity (core/capacity.py): pure
arithmetic, driven with times and sizes of the test's own."""
from __future__ import annotations

from core.capacity import BROWSER_MB, BROWSERS_PER_CORE, MB, RESERVE_MB, auto_pool_size, browsers_memory_allows
from tasks.warm_demand import WarmDemand, poisson_quantile


def demand(floor: int = 1, window: float = 60, settle: float = 2.0) -> WarmDemand:
    return WarmDemand(floor, window, settle)


def test_no_creates_keep_the_floor():
    assert demand(floor=1).target(now=100, ceiling=10) == 1
    assert demand(floor=0).target(now=100, ceiling=10) == 0


def test_a_steady_stream_wants_what_arrives_within_a_lead_time_with_room_for_chance():
    policy = demand(settle=2.0)
    policy.launch_seconds = 0.4
    for second in range(30):  # one create a second
        policy.saw_create(float(second))
    assert abs(policy.rate(29.5) - 1.0) < 0.01
    # 2.4 creates per lead time on average; 95 % of lead times see at most 5.
    assert policy.target(now=29.5, ceiling=10) == poisson_quantile(2.4, 0.95) == 5


def test_a_burst_wants_one_spare_per_create_seen_within_one_lead_time():
    policy = demand(settle=2.0)
    for _ in range(4):
        policy.saw_create(10.0)
    assert policy.burst(10.5) == 4
    assert policy.target(now=10.5, ceiling=10) >= 4


def test_a_window_of_zero_keeps_the_floor_whatever_comes():
    policy = demand(floor=2, window=0)
    for _ in range(6):
        policy.saw_create(10.0)
    assert policy.target(now=10.5, ceiling=10) == 2
    assert policy.target(now=10.5, ceiling=1) == 1


def test_the_ceiling_wins_over_demand_and_the_floor():
    policy = demand(floor=2)
    for second in range(20):
        policy.saw_create(second / 4)
    assert policy.target(now=5.0, ceiling=3) == 3
    assert policy.target(now=5.0, ceiling=1) == 1


def test_after_a_quiet_window_the_target_is_back_at_the_floor():
    policy = demand(floor=1, window=30)
    for second in range(10):
        policy.saw_create(float(second))
    assert policy.target(now=10.0, ceiling=10) > 1
    assert policy.target(now=25.0, ceiling=10) > 1, "creates 15 s ago still count"
    assert policy.target(now=40.0, ceiling=10) == 1


def test_slower_launches_mean_a_longer_lead_and_more_spares():
    fast, slow = demand(), demand()
    for policy in (fast, slow):
        for second in range(20):
            policy.saw_create(float(second))
    for _ in range(10):
        slow.saw_launch(3.0)
    assert slow.lead_time() > fast.lead_time()
    assert slow.target(now=20.0, ceiling=50) > fast.target(now=20.0, ceiling=50)


def test_poisson_quantile():
    assert poisson_quantile(0, 0.95) == 0
    assert poisson_quantile(1.0, 0.95) == 3  # P(X<=2) = 0.920, P(X<=3) = 0.981


def test_pool_size_follows_cores_then_memory():
    plenty = 64 * 1024 * MB
    assert auto_pool_size(core_count=2, available=plenty) == 2 * BROWSERS_PER_CORE
    assert auto_pool_size(core_count=2, available=(RESERVE_MB + 3 * BROWSER_MB) * MB) == 3
    assert auto_pool_size(core_count=2, available=0) == 1, "one browser, whatever the machine"
    assert browsers_memory_allows((RESERVE_MB + 10 * BROWSER_MB) * MB) == 10
