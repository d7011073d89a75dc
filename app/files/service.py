"""A session's downloads and uploads, reached through the owning worker's file door while it runs, from the
snapshot store once it stopped.

Running: every call goes to the worker's gateway (core/browser_link.py
``file_door``), one HTTP request each, streamed both ways: an upload's bytes
go to the worker as they arrive, parsed out of the multipart body by
Werkzeug's sans-IO decoder, never held whole here. Stopped: the files the stop
archived (core/download_archive.py), until BROKER_DOWNLOAD_RETENTION runs out.

A call that cannot be done raises one of app/files/errors.py; the blueprint answers it.
"""
from __future__ import annotations

import http.client
import json
import logging
import time
import zipfile
from collections.abc import Iterable, Iterator
from typing import BinaryIO, NoReturn
from urllib.parse import quote, urlsplit

from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, File, MultipartDecoder, NeedData

from app.files.errors import (DownloadNotFound, FilesError, FileTooLarge, InvalidUpload, WorkerFailed,
                              WrongSessionState)
from app.sessions.service import get_visible
from core.browser_link import BrowserLinks
from core.download_archive import DownloadArchive
from core.files import COMPLETE, BadName, check_name
from core.snapshots import SnapshotError
from core.states import SessionRecord, Status
from core.store import Store

log = logging.getLogger(__name__)
CHUNK = 256 * 1024
DOOR_TIMEOUT = 60.0
#: The multipart part that carries the file.
FILE_PART = "file"
#: The file door's refusals, as the same failures here (tasks/file_door.py answers these statuses); any other is
#: the worker's own failure.
DOOR_REFUSALS: dict[int, type[FilesError]] = {404: DownloadNotFound, 409: WrongSessionState, 413: FileTooLarge,
                                              422: InvalidUpload}


class _Chunks:
    """A write-only, unseekable file for zipfile: what is written is handed on, never kept."""

    def __init__(self) -> None:
        self.pending: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.pending.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def drain(self) -> Iterator[bytes]:
        chunks, self.pending = self.pending, []
        yield from chunks


def zip_stream(files: Iterable[tuple[str, BinaryIO]]) -> Iterator[bytes]:
    """A zip of ``files`` (stored, not compressed: downloads are mostly compressed already), built as it is sent."""
    sink = _Chunks()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED) as archive:  # type: ignore[arg-type]
        for name, source in files:
            with source, archive.open(name, "w", force_zip64=True) as member:
                while chunk := source.read(CHUNK):
                    member.write(chunk)
                    yield from sink.drain()
            yield from sink.drain()
    yield from sink.drain()


def _name(name: str) -> str:
    try:
        return check_name(name)
    except BadName as error:
        raise InvalidUpload(f"Bad file name: {error}.", {"path": {"name": [str(error)]}}) from error


class SessionFiles:
    def __init__(self, store: Store, links: BrowserLinks, archive: DownloadArchive) -> None:
        self.store = store
        self.links = links
        self.archive = archive

    # -- the worker's file door ---------------------------------------------------
    def _door(self, record: SessionRecord, method: str, rest: str,
              body: Iterable[bytes] | None = None) -> http.client.HTTPResponse:
        route = self.links.file_door(record, rest)
        url = urlsplit(route.url)
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=DOOR_TIMEOUT)
        try:
            headers = dict(route.headers)
            if body is not None:
                headers["Transfer-Encoding"] = "chunked"
            conn.request(method, url.path, body=body, headers=headers, encode_chunked=body is not None)
            return conn.getresponse()
        except _Truncated:
            conn.close()
            raise
        except OSError as error:
            conn.close()
            self._gone(record, error)

    def _gone(self, record: SessionRecord, error: Exception) -> NoReturn:
        current = self.store.sessions.get(record["id"])
        if current is None or current["status"] != Status.RUNNING:
            raise WrongSessionState(f"Session {record['id']} stopped during the call; try again once it is stopped.")
        log.warning("session %s: its worker's file door cannot be reached: %s", record["id"], error)
        raise WorkerFailed("The session's worker cannot be reached.")

    @staticmethod
    def _relay_error(answer: http.client.HTTPResponse) -> NoReturn:
        """The door's JSON error, as the same failure here."""
        try:
            body = json.loads(answer.read())
            message = body["message"]
        except (ValueError, KeyError):
            message = "The session's worker refused the call."
        answer.close()
        raise DOOR_REFUSALS.get(answer.status, WorkerFailed)(message)

    # -- reads ---------------------------------------------------------------------
    def _readable(self, project: str, session_id: str) -> SessionRecord:
        record = get_visible(self.store, project, session_id)
        if record["status"] == Status.STOPPING:
            raise WrongSessionState(f"Session {session_id} is stopping; its downloads are readable again once it is stopped.")
        if record["status"] == Status.STOPPED and record.get("downloads") and \
                time.time() > record.get("downloadsExpireEpoch", 0):
            raise DownloadNotFound(f"The downloads of session {session_id} were deleted (BROKER_DOWNLOAD_RETENTION).")
        return record

    def listing(self, project: str, session_id: str) -> dict:
        record = self._readable(project, session_id)
        if record["status"] == Status.RUNNING:
            answer = self._door(record, "GET", "downloads")
            if answer.status != 200:
                self._relay_error(answer)
            downloads = json.loads(answer.read())["downloads"]
        else:
            downloads = record.get("downloads") or []
        return {"sessionId": session_id, "status": record["status"], "count": len(downloads),
                "bytes": sum(d["size"] for d in downloads), "downloadError": record.get("downloadError"),
                "downloads": downloads}

    def open_one(self, project: str, session_id: str, name: str) -> tuple[Iterator[bytes], dict]:
        """The file's bytes as they come, and its entry (name, size, mimeType); the route's pattern checked the name."""
        record = self._readable(project, session_id)
        if record["status"] == Status.RUNNING:
            answer = self._door(record, "GET", f"downloads/{quote(name)}")
            if answer.status != 200:
                self._relay_error(answer)
            entry = {"name": name, "size": int(answer.getheader("Content-Length", "0")),
                     "mimeType": answer.getheader("Content-Type")}
            return _read_all(answer), entry
        entry = next((d for d in record.get("downloads") or [] if d["name"] == name), None)
        if entry is None:
            raise DownloadNotFound(f"Session {session_id} has no download named {name}.")
        return _read_all(self._archived(session_id, name)), entry

    def _archived(self, session_id: str, name: str) -> BinaryIO:
        try:
            return self.archive.open(session_id, name)
        except SnapshotError as error:
            log.warning("session %s: archived download %s cannot be read: %s", session_id, name, error)
            raise DownloadNotFound(f"The archived download {name} of session {session_id} cannot be read here ({error}).") \
                from error

    def zip_all(self, project: str, session_id: str) -> Iterator[bytes]:
        listing = self.listing(project, session_id)
        record = self._readable(project, session_id)
        names = [d["name"] for d in listing["downloads"] if d["state"] == COMPLETE]

        def sources() -> Iterator[tuple[str, BinaryIO]]:
            for name in names:
                if record["status"] == Status.RUNNING:
                    answer = self._door(record, "GET", f"downloads/{quote(name)}")
                    if answer.status == 200:
                        yield name, answer
                    else:
                        answer.close()  # deleted or restarted meanwhile: left out
                else:
                    yield name, self._archived(session_id, name)

        return zip_stream(sources())

    # -- uploads ---------------------------------------------------------------------
    def upload(self, project: str, session_id: str, content_type: str, body: BinaryIO, max_bytes: int) -> dict:
        """Streams the ``file`` part to the worker; a body refused anywhere leaves nothing stored."""
        record = get_visible(self.store, project, session_id)
        if record["status"] != Status.RUNNING:
            raise WrongSessionState(f"Session {session_id} is {record['status']}; uploads need a running session.")
        kind, options = parse_options_header(content_type)
        if kind != "multipart/form-data" or not options.get("boundary"):
            raise InvalidUpload("The body must be multipart/form-data with a `file` part.",
                                {"files": {FILE_PART: ["Missing data for required field."]}})
        decoder = MultipartDecoder(options["boundary"].encode(), max_parts=64)
        try:
            part = _find_file_part(decoder, body)
        except ValueError as error:
            raise InvalidUpload(f"The multipart body is malformed ({error}).") from error
        if part is None:
            raise InvalidUpload("The multipart body has no `file` part (a file, with a filename).",
                                {"files": {FILE_PART: ["Missing data for required field."]}})
        name = _name(part.filename)
        sent = _Counter(max_bytes)
        try:
            answer = self._door(record, "PUT", f"uploads/{quote(name)}", sent.wrap(_part_data(decoder, body)))
        except (_Truncated, ValueError) as error:
            if sent.over:
                raise FileTooLarge(f"The file is over {max_bytes} bytes, the most accepted (BROKER_UPLOAD_MAX_BYTES).") \
                    from error
            raise InvalidUpload(f"The multipart body is malformed ({error}); nothing was stored.") from error
        if answer.status != 201:
            self._relay_error(answer)
        stored = json.loads(answer.read())
        log.info("session %s: %d bytes uploaded", session_id, stored["size"])
        return stored


class _Counter:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.over = False

    def wrap(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.size += len(chunk)
            if self.size > self.limit:
                self.over = True
                # Ending without the last chunk makes the worker see a broken upload and delete it.
                raise _Truncated
            yield chunk


class _Truncated(OSError):
    pass


def _read_all(answer: BinaryIO) -> Iterator[bytes]:
    with answer:
        while chunk := answer.read(CHUNK):
            yield chunk


def _events(decoder: MultipartDecoder, body: BinaryIO) -> Iterator[object]:
    ended = False
    while True:
        event = decoder.next_event()
        if isinstance(event, NeedData):
            if ended:
                return
            chunk = body.read(CHUNK)
            decoder.receive_data(chunk or None)
            ended = not chunk
            continue
        yield event
        if isinstance(event, Epilogue):
            return


def _find_file_part(decoder: MultipartDecoder, body: BinaryIO) -> File | None:
    """Reads (and drops) parts up to the first file named ``file``; None at the end of the body."""
    for event in _events(decoder, body):
        if isinstance(event, File) and event.name == FILE_PART and event.filename:
            return event
        if isinstance(event, Epilogue):
            return None
    return None


def _part_data(decoder: MultipartDecoder, body: BinaryIO) -> Iterator[bytes]:
    """The file part's bytes; raises _Truncated if the body ends inside it."""
    for event in _events(decoder, body):
        if isinstance(event, Data):
            if event.data:
                yield event.data
            if not event.more_data:
                return
        else:
            break
    raise _Truncated("the body ended inside the file part")
