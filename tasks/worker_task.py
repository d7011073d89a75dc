"""How a task reaches its worker: the base class of the worker's tasks (Celery's custom task class).

A task is one object per process, registered once, so it holds no state of its own; ``self.worker`` is the worker
object the worker's bootstep built at start (tasks/worker_steps.py) and attached to the task's Celery app.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from celery import Celery, Task

if TYPE_CHECKING:
    from tasks.worker import Worker

#: The app's attribute that holds its worker.
_ATTRIBUTE = "browser_worker"


def attach(app: Celery, worker: Worker) -> None:
    """The worker the app's tasks run against from now on; it stays attached once stopped (the process ends)."""
    setattr(app, _ATTRIBUTE, worker)


def attached(app: Celery) -> Worker | None:
    return getattr(app, _ATTRIBUTE, None)


class WorkerTask(Task):
    @property
    def worker(self) -> Worker:
        worker = attached(self.app)
        if worker is None:
            raise RuntimeError("no worker runs in this process: its bootstep builds it at the worker's start")
        return worker
