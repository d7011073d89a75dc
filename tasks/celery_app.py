"""The worker's Celery application: ``celery -A tasks.celery_app worker``.

Queue names and settings come from :mod:`core.dispatch`, which the web process
uses to send; this module adds only the task modules the worker runs and the
step that shows its browser counts in ``inspect stats`` (Flower).
"""
from __future__ import annotations

from core.config import load
from core.dispatch import make_celery

config = load()
celery = make_celery(config, include=["tasks.browser", "tasks.lifecycle"])
celery.steps["worker"].add("tasks.worker_state:BrowserCounts")
