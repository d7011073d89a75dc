"""Reading a deployment's /metrics as Prometheus would: parsed by prometheus_client's own parser."""
from __future__ import annotations

import requests
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

#: Every sample of one scrape, by name and sorted labels.
Figures = dict[tuple[str, tuple], float]


def scrape(url: str, **headers: str) -> Figures:
    answer = requests.get(f"{url}/metrics", headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == CONTENT_TYPE_LATEST
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(answer.text) for s in family.samples}


def figure(figures: Figures, name: str, **labels: str) -> float | None:
    return figures.get((name, tuple(sorted(labels.items()))))


def moved(before: Figures, after: Figures, name: str, **labels: str) -> float:
    """How much a sample grew between two scrapes (a sample not yet there counts as 0)."""
    return (figure(after, name, **labels) or 0) - (figure(before, name, **labels) or 0)
