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

from core.files import DOWNLOADS, PARTIAL_SUFFIX, UPLOADS, BadName, check_name, folder_bytes, free_name, list_folder, mime_type
from tasks.chromium import RunningBrowser

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
                _json(client, 200, {"downloads": list_folder(browser.downloads_dir),
                                    "bytes": folder_bytes(browser.downloads_dir)})
            elif kind == DOWNLOADS and method == "GET":
                self._send_file(client, browser.downloads_dir, name)
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
    def _send_file(client: socket.socket, folder: Path, name: str) -> None:
        if (folder / (name + PARTIAL_SUFFIX)).exists():
            raise DoorError(409, f"Download {name} is still in progress.")
        try:
            # O_NOFOLLOW: a symlink (a browser's user could make one) is never followed out of the folder.
            fd = os.open(folder / name, os.O_RDONLY | os.O_NOFOLLOW)
        except (FileNotFoundError, OSError):
            raise DoorError(404, f"No download named {name}.") from None
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
        folder = browser.uploads_dir
        partial = folder / f".upload-{secrets.token_hex(8)}"
        size = 0
        try:
            with open(partial, "xb") as out:
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
            final = folder / free_name(folder, name)
            os.chown(partial, browser.user.uid, browser.user.gid)
            partial.chmod(0o600)
            os.rename(partial, final)
        except h11.RemoteProtocolError as error:
            partial.unlink(missing_ok=True)
            raise DoorError(400, f"Malformed upload ({error}).") from None
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        log.info("session %s: upload of %d bytes stored for the browser", session_id, size)
        _json(client, 201, {"path": str(final), "name": final.name, "size": size})
