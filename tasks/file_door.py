"""A session's files on the worker, over plain HTTP behind the gateway's credential check (tasks/gateway.py).

The web process reaches a session's files only here, whichever host it runs on
(core/browser_link.py ``file_door``): the gateway has already checked the
``files`` credential made for this very session id and found the session's
browser on this worker, so a request can only ever name that browser's two
folders, and every name is checked (core/files.py) before any path is built::

    GET /session/<id>/files/downloads          → {"downloads": [...], "bytes": n}
    GET /session/<id>/files/downloads/<name>   → the file's bytes (sendfile: kernel to socket)
    PUT /session/<id>/files/uploads/<name>     → {"path", "name", "size"}, the path as the browser sees it

An upload is written under a hidden temporary name, counted against
BROKER_UPLOAD_MAX_BYTES as it arrives, and renamed into place (as the browser's
user, readable by it alone) only once complete: a refused or broken upload
leaves nothing. Errors are the API's JSON shape, relayed as they stand.

The browser's user owns both folders and could put a link in place of either,
or of a file in them, to make this (root) worker read or write where it points.
Each folder is opened once per request without following links and checked to
be that user's (core/files.py ``open_folder``); everything after is relative to
that descriptor. A downloads folder that fails lists nothing and serves 404; an
uploads folder that fails stores nothing (409).
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import socket
from pathlib import Path
from urllib.parse import unquote

import h11

from core.files import (DOWNLOADS, PARTIAL_SUFFIX, UPLOADS, BadName, UnsafeFile, UnsafeFolder, check_name, exists,
                        folder_bytes, free_name, list_folder, mime_type, open_file, open_folder)
from tasks.running_browser import RunningBrowser

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
PHRASES = {200: "OK", 201: "Created", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           409: "Conflict", 411: "Length Required", 413: "Request Entity Too Large", 422: "Unprocessable Entity",
           500: "Internal Server Error"}


class DoorError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _head(status: int, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {PHRASES.get(status, 'OK')}", *(f"{k}: {v}" for k, v in headers), "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _json(client: socket.socket, status: int, body: dict) -> None:
    data = json.dumps(body).encode()
    client.sendall(_head(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]) + data)


def _error(client: socket.socket, status: int, message: str) -> None:
    _json(client, status, {"code": status, "status": PHRASES.get(status, ""), "message": message})


class FileDoor:
    def __init__(self, upload_max_bytes: int) -> None:
        self.upload_max_bytes = upload_max_bytes

    def serve(self, client: socket.socket, parser: h11.Connection, request: h11.Request, rest: str,
              browser: RunningBrowser, session_id: str) -> None:
        """``rest``: the target after ``/session/<id>/files/``. Answers, then the caller closes the connection."""
        method = request.method.decode()
        kind, _, raw_name = rest.partition("?")[0].partition("/")
        try:
            name = check_name(unquote(raw_name)) if raw_name else ""
            if kind == DOWNLOADS and method == "GET" and not name:
                self._list(client, browser, session_id)
            elif kind == DOWNLOADS and method == "GET":
                self._send_file(client, browser, name, session_id)
            elif kind == UPLOADS and method == "PUT" and name:
                self._receive(client, parser, request, browser, name, session_id)
            else:
                raise DoorError(404, "No such file route.")
        except BadName as error:
            if method == "GET":  # no file can have that name: the API's pattern let it through, the disk would not
                _error(client, 404, f"No download named {unquote(raw_name)}.")
            else:
                _error(client, 422, f"Bad file name: {error}.")
        except DoorError as error:
            _error(client, error.status, str(error))
        except OSError:
            raise  # the connection itself broke: nothing to answer on
        except Exception:
            log.exception("session %s: file door failed on %s %s", session_id, method, kind)
            _error(client, 500, "The worker could not serve the session's files.")

    @staticmethod
    def _folder(folder: Path, browser: RunningBrowser, session_id: str) -> int | None:
        """The session folder's descriptor (the caller closes it), or None if it is missing or not safe to use."""
        try:
            return open_folder(folder, browser.user.uid)
        except FileNotFoundError:
            return None
        except UnsafeFolder as error:
            log.warning("session %s: %s; not used", session_id, error)
            return None

    def _list(self, client: socket.socket, browser: RunningBrowser, session_id: str) -> None:
        folder = self._folder(browser.downloads_dir, browser, session_id)
        if folder is None:
            _json(client, 200, {"downloads": [], "bytes": 0})
            return
        try:
            listed, size = list_folder(folder), folder_bytes(folder)
        finally:
            os.close(folder)
        _json(client, 200, {"downloads": listed, "bytes": size})

    def _send_file(self, client: socket.socket, browser: RunningBrowser, name: str, session_id: str) -> None:
        folder = self._folder(browser.downloads_dir, browser, session_id)
        if folder is None:
            raise DoorError(404, f"No download named {name}.")
        try:
            if exists(folder, name + PARTIAL_SUFFIX):
                raise DoorError(409, f"Download {name} is still in progress.")
            # O_NOFOLLOW, a regular file of the folder's owner: a link (a browser's user could make one) is never read.
            fd = open_file(folder, name)
        except (OSError, UnsafeFile):
            raise DoorError(404, f"No download named {name}.") from None
        finally:
            os.close(folder)
        with os.fdopen(fd, "rb") as file:
            size = os.fstat(fd).st_size
            client.sendall(_head(200, [("Content-Type", mime_type(name)), ("Content-Length", str(size))]))
            client.sendfile(file)

    def _receive(self, client: socket.socket, parser: h11.Connection, request: h11.Request, browser: RunningBrowser,
                 name: str, session_id: str) -> None:
        declared = next((int(v) for k, v in request.headers if k == b"content-length" and v.isdigit()), None)
        if declared is not None and declared > self.upload_max_bytes:
            raise DoorError(413, f"The file is {declared} bytes; at most {self.upload_max_bytes} are accepted "
                                 "(BROKER_UPLOAD_MAX_BYTES).")
        folder = self._folder(browser.uploads_dir, browser, session_id)
        if folder is None:
            raise DoorError(409, "The session's upload folder is not a plain folder of its browser's user; "
                                 "nothing was stored.")
        try:
            final, size = self._store(client, parser, browser, folder, name)
        finally:
            os.close(folder)
        log.info("session %s: upload of %d bytes stored for the browser", session_id, size)
        _json(client, 201, {"path": str(browser.uploads_dir / final), "name": final, "size": size})

    def _store(self, client: socket.socket, parser: h11.Connection, browser: RunningBrowser, folder: int,
               name: str) -> tuple[str, int]:
        """Writes the body into the open uploads ``folder``, all relative to it; the name it got and its size."""
        partial = f".upload-{secrets.token_hex(8)}"
        size = 0
        # O_EXCL | O_NOFOLLOW: a new file of this worker's, never whatever a link there points at.
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=folder)
        try:
            with os.fdopen(fd, "wb") as out:
                while True:
                    event = parser.next_event()
                    if event is h11.NEED_DATA:
                        data = client.recv(CHUNK)
                        if not data:
                            raise DoorError(400, "The upload ended before its last byte.")
                        parser.receive_data(data)
                    elif isinstance(event, h11.Data):
                        size += len(event.data)
                        if size > self.upload_max_bytes:
                            raise DoorError(413, f"The file is over {self.upload_max_bytes} bytes, the most accepted "
                                                 "(BROKER_UPLOAD_MAX_BYTES).")
                        out.write(event.data)
                    elif isinstance(event, h11.EndOfMessage):
                        break
                    else:
                        raise DoorError(400, "Malformed upload.")
                os.fchown(fd, browser.user.uid, browser.user.gid)
                os.fchmod(fd, 0o600)
            final = free_name(folder, name)
            os.rename(partial, final, src_dir_fd=folder, dst_dir_fd=folder)
        except h11.RemoteProtocolError as error:
            _remove(folder, partial)
            raise DoorError(400, f"Malformed upload ({error}).") from None
        except BaseException:
            _remove(folder, partial)
            raise
        return final, size


def _remove(folder: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=folder)
    except FileNotFoundError:
        pass
