"""Creates that wait for a slot get their browsers in the order they arrived (docs/ARCHITECTURE.md, "Queueing")."""
from __future__ import annotations

import threading

import pytest
import requests

from tests.support.api import Api
from tests.support.processes import Broker, wait_until


@pytest.fixture(scope="module")
def one_slot(deploy) -> Broker:
    """A deployment of its own with one browser slot and room for three creates in line.

    Redis database 4: 0 to 3 are the other deployments' (a worker left on one would take these launches).
    """
    broker = deploy(4, BROKER_POOL_SIZE="1", BROKER_CREATE_WAIT="90")
    broker.start_worker("fifo")
    return broker


def test_creates_queued_behind_a_full_pool_get_browsers_in_arrival_order(one_slot):
    api = Api(one_slot.url, one_slot.api_key)
    running = api.create_session()
    answers: dict[str, requests.Response] = {}

    def create(name: str) -> None:
        answers[name] = Api(one_slot.url, one_slot.api_key).post("/v1/sessions", json={})

    for place, name in enumerate(["first", "second", "third"], start=1):
        threading.Thread(target=create, args=(name,), daemon=True).start()
        wait_until(lambda: one_slot.waiting_launches() == place, 30, message=f"the {name} create to wait in line")

    served: list[str] = []
    for _ in range(3):
        api.stop_session(running["id"])
        wait_until(lambda: len(answers) > len(served), 60, message="the next create in line to get the freed slot")
        name = next(n for n in answers if n not in served)
        assert answers[name].status_code == 201, answers[name].text
        served.append(name)
        running = answers[name].json()
    api.stop_session(running["id"])
    assert served == ["first", "second", "third"]
