"""Which warm browser a create gets (core/store/warm.py): the least loaded live worker's oldest offer."""
from __future__ import annotations


def beat(store, worker: str, running: int, launching: int = 0) -> None:
    store.workers.heartbeat(worker, {"browsers": {"running": running, "launching": launching, "warm": 1}})


def test_a_create_gets_the_least_loaded_workers_oldest_offer(store):
    beat(store, "busy", running=5)
    beat(store, "idle", running=1, launching=1)
    beat(store, "quiet", running=1)
    store.warm.offer("busy", "warm-b1")
    store.warm.offer("idle", "warm-i1")
    store.warm.offer("quiet", "warm-q1")
    store.warm.offer("quiet", "warm-q2")

    taken = [store.warm.take() for _ in range(4)]

    assert [(offer.worker, offer.key) for offer in taken] == [
        ("quiet", "warm-q1"), ("quiet", "warm-q2"), ("idle", "warm-i1"), ("busy", "warm-b1")]
    assert store.warm.take() is None


def test_offers_of_a_silent_worker_are_dropped_not_taken(store):
    store.warm.offer("gone", "warm-g1")  # never heartbeat
    beat(store, "live", running=9)
    store.warm.offer("live", "warm-l1")

    offer = store.warm.take()

    assert (offer.worker, offer.key) == ("live", "warm-l1")
    assert store.warm.offered_by("gone") == set()
