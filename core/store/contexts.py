"""Context records, their synced cookies, and the hold that lets one live session use a context at a time."""
from __future__ import annotations

import time
from typing import Any

from core.ids import utcnow_iso
from core.states import LIVE_STATUSES, Status
from core.store import keys
from core.store.base import Pipeline, RecordKind, dump, load


#: A session whose stop may still commit its context's save. Once stopped (declared lost while its worker was cut
#: off, say) it no longer holds the context, so its save must not land.
SAVING_STATUSES = (Status.RUNNING, Status.STOPPING)


class SaveRefused(RuntimeError):
    """A save's commit that did not happen, and why; nothing was written."""


class ContextRecords(RecordKind):
    def create(self, record: dict) -> None:
        self._store_indexed(keys.context(record["id"]), keys.project_contexts(record["project"]), record, time.time())

    def get(self, context_id: str) -> dict | None:
        return self._load(keys.context(context_id))

    def existing(self, context_ids: list[str]) -> set[str]:
        return self._existing(context_ids, keys.context)

    def page(self, project: str, start: int, count: int) -> tuple[list[dict], int]:
        return self._page_indexed(keys.project_contexts(project), keys.context, start, count)

    def delete(self, context_id: str, project: str) -> None:
        pipe = self.redis.pipeline()
        pipe.delete(keys.context(context_id), keys.context_cookies(context_id))
        pipe.zrem(keys.project_contexts(project), context_id)
        pipe.execute()

    def claim(self, context_id: str, holder: str) -> str | None:
        """Make ``holder`` (a session id, or a delete's own id) the context's only user; the current holder if taken.

        A holder counts while its session is live, or, when it has no session
        record (a create between its claim and its record, a delete in progress),
        for a create's whole lifetime from its claim: so neither a create nor a
        delete can be overtaken, and a crash still cannot lock a context forever.
        """
        lock = keys.context_holder(context_id)

        def claim(pipe: Pipeline) -> str | None:
            held = load(pipe.get(lock))
            if held and held["holder"] != holder and self._counts(pipe, held):
                return held["holder"]
            pipe.multi()
            pipe.set(lock, dump({"holder": holder, "since": time.time()}))
            return None

        return self.redis.transaction(claim, lock, value_from_callable=True)

    def _counts(self, pipe: Pipeline, held: dict) -> bool:
        session = load(pipe.get(keys.session(held["holder"])))
        if session is not None:
            return session["status"] in LIVE_STATUSES
        return held["since"] > time.time() - self.config.create_lifetime

    def release(self, context_id: str, holder: str) -> None:
        lock = keys.context_holder(context_id)

        def release(pipe: Pipeline) -> None:
            held = load(pipe.get(lock))
            if held and held["holder"] == holder:
                pipe.multi()
                pipe.delete(lock)

        self.redis.transaction(release, lock)

    def update(self, context_id: str, **changes: Any) -> dict | None:
        key = keys.context(context_id)

        def apply(pipe: Pipeline) -> dict | None:
            record = load(pipe.get(key))
            if record is None:
                return None
            record = {**record, **changes, "updatedAt": utcnow_iso()}
            pipe.multi()
            pipe.set(key, dump(record))
            return record

        return self.redis.transaction(apply, key, value_from_callable=True)

    def cookies(self, context_id: str) -> list[dict]:
        return self._load(keys.context_cookies(context_id)) or []

    def commit_save(self, context_id: str, session_id: str, version: str, size: int, cookies: list[dict],
                    keep: int) -> list[str]:
        """Move the context to a fully written snapshot, with the cookies read for it, in one transaction.

        The snapshot pointer, the cookies and every figure the API shows (``cookieCount``, ``snapshotBytes``,
        ``lastSessionId``, ``updatedAt``) change together or not at all. Returns the versions now beyond the
        newest ``keep``. Raises :class:`SaveRefused`, with nothing written, if the context is gone or the session
        is no longer live (ended as ``worker_lost`` while its stop was still saving: its hold is gone, a newer
        session may own the context); the caller then deletes the archive it wrote.
        """
        key, session_key = keys.context(context_id), keys.session(session_id)

        def apply(pipe: Pipeline) -> list[str]:
            record = load(pipe.get(key))
            if record is None:
                raise SaveRefused("context was deleted during the save")
            session = load(pipe.get(session_key))
            if session is None or session["status"] not in SAVING_STATUSES:
                raise SaveRefused("the session was ended as worker_lost before its context was saved; "
                                  "previous snapshot kept")
            versions = [version, *record.get("snapshotVersions", [])]
            record.update(snapshotVersion=version, snapshotVersions=versions[:keep], snapshotBytes=size,
                          cookieCount=len(cookies), lastSessionId=session_id, updatedAt=utcnow_iso())
            pipe.multi()
            pipe.set(key, dump(record))
            pipe.set(keys.context_cookies(context_id), dump(cookies))
            return versions[keep:]

        return self.redis.transaction(apply, key, session_key, value_from_callable=True)
