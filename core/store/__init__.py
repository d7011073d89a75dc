"""The one layer that reads and writes Redis, split by kind of record.

``Store(config)`` opens one connection pool and hands it to each kind:
``store.sessions``, ``.contexts``, ``.proxies``, ``.api_keys``, ``.projects``,
``.workers``, ``.warm``, ``.events``, ``.recent_creates``, ``.metrics``, ``.cdp_protocol``,
``.session_events``, ``.recordings``. Key names live in
:mod:`core.store.keys`; a session's status changes only through :mod:`core.session_machine`, by the table in
:mod:`core.states`.
"""
from __future__ import annotations

import redis

from core.config import Config
from core.store.apikeys import ALL_SCOPES, ApiKeyRecords
from core.store.base import connect
from core.store.contexts import ContextRecords
from core.store.events import StopEvents
from core.store.extensions import ExtensionRecords
from core.store.metrics import MetricRecords
from core.store.moves import MoveRecords
from core.store.projects import DEFAULT_PROJECT, ProjectRecords
from core.store.protocol import CdpProtocol
from core.store.proxies import ProxyRecords
from core.store.rates import RecentCreates
from core.store.recordings import RecordingRecords
from core.store.session_events import SessionEvents
from core.store.sessions import SessionRecords
from core.store.warm import WarmOffers
from core.store.workers import WorkerRecords

__all__ = ["ALL_SCOPES", "DEFAULT_PROJECT", "Store"]


class Store:
    def __init__(self, config: Config, client: redis.Redis | None = None) -> None:
        self.config = config
        self.redis = client or connect(config)
        self.sessions = SessionRecords(self.redis, config)
        self.contexts = ContextRecords(self.redis, config)
        self.proxies = ProxyRecords(self.redis, config)
        self.api_keys = ApiKeyRecords(self.redis, config)
        self.projects = ProjectRecords(self.redis, config)
        self.workers = WorkerRecords(self.redis, config)
        self.warm = WarmOffers(self.redis, config)
        self.events = StopEvents(self.redis, config)
        self.recent_creates = RecentCreates(self.redis, config)
        self.metrics = MetricRecords(self.redis, config)
        self.cdp_protocol = CdpProtocol(self.redis, config)
        self.extensions = ExtensionRecords(self.redis, config)
        self.session_events = SessionEvents(self.redis, config)
        self.recordings = RecordingRecords(self.redis, config)
        self.moves = MoveRecords(self.redis, config)

    def ping(self) -> bool:
        return bool(self.redis.ping())
