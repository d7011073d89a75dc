"""Browser extensions' records: one per uploaded extension, indexed by its project.

The extension's files are in the snapshot store (core/extension_files.py), so
any worker on any host can load them; the record says what the upload held.
"""
from __future__ import annotations

import time

from core.store import keys
from core.store.base import RecordKind, load


class ExtensionRecords(RecordKind):
    def create(self, record: dict) -> None:
        self._store_indexed(keys.extension(record["id"]), keys.project_extensions(record["project"]), record,
                            time.time())

    def get(self, extension_id: str) -> dict | None:
        return self._load(keys.extension(extension_id))

    def page(self, project: str, start: int, count: int) -> tuple[list[dict], int]:
        return self._page_indexed(keys.project_extensions(project), keys.extension, start, count)

    def missing(self, project: str, extension_ids: list[str]) -> list[str]:
        """Which of ``extension_ids`` the project has no extension under: another project's are missing too."""
        if not extension_ids:
            return []
        raws = self.redis.mget([keys.extension(i) for i in extension_ids])
        return [i for i, record in zip(extension_ids, (load(raw) for raw in raws))
                if record is None or record["project"] != project]

    def delete(self, extension_id: str, project: str) -> None:
        pipe = self.redis.pipeline()
        pipe.delete(keys.extension(extension_id))
        pipe.zrem(keys.project_extensions(project), extension_id)
        pipe.execute()
