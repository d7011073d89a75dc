"""Request limits: oversized bodies refused unread (413), session creates per key per minute capped (429).

The body limit is WSGI middleware in front of Flask, so it runs before
anything reads the request: a declared Content-Length over BROKER_MAX_BODY_BYTES
is answered at once, and a chunked body is read at most one byte past the limit
(then refused, or handed on as an ordinary body of known length). No body
larger than the limit is ever held in memory. gevent then drains whatever the
client still sends, in 16 KiB reads, so a client that writes its whole body
before reading (most do) still gets the 413 rather than a reset.
"""
from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterable

from flask_smorest import abort

from app.auth import current_key
from app.extensions import config, store

TOO_LARGE = "413 Request Entity Too Large"


#: Uploads have a limit of their own (BROKER_UPLOAD_MAX_BYTES) and are streamed, never held.
UPLOADS = re.compile(r"^/v1/sessions/[^/]+/uploads$")
#: Room for the multipart framing around an upload's file.
MULTIPART_SLACK = 1024 * 1024


class BodyLimit:
    def __init__(self, app: Callable, limit: int, upload_limit: int) -> None:
        self.app = app
        self.limit = limit
        self.upload_limit = upload_limit + MULTIPART_SLACK

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        declared = environ.get("CONTENT_LENGTH", "")
        upload = UPLOADS.match(environ.get("PATH_INFO", "")) is not None
        limit = self.upload_limit if upload else self.limit
        if declared.isdigit() and int(declared) > limit:
            return self._refuse(start_response, f"The request body is {declared} bytes; at most {limit} are accepted.")
        if upload:
            # Counted part by part as it streams (app/files/service.py): a chunked upload is not read ahead here.
            return self.app(environ, start_response)
        if environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
            body = environ["wsgi.input"].read(self.limit + 1)
            if len(body) > self.limit:
                return self._refuse(start_response, f"The request body is over {self.limit} bytes, the most accepted.")
            environ.update({"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))})
            del environ["HTTP_TRANSFER_ENCODING"]
        return self.app(environ, start_response)

    @staticmethod
    def _refuse(start_response: Callable, message: str) -> list[bytes]:
        body = json.dumps({"code": 413, "status": "Request Entity Too Large", "message": message}).encode()
        start_response(TOO_LARGE, [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                                   ("Connection", "close")])
        return [body]


def count_session_create() -> None:
    """A create over the caller's key's share of the last minute is a 429 and counts nothing."""
    limit = config().web.session_creates_per_minute
    if not limit:
        return
    wait = store().recent_creates.take(current_key()["id"], limit)
    if wait is not None:
        abort(429, message=f"This API key may create {limit} sessions a minute; try again in {wait} s.",
              headers={"Retry-After": str(wait)})
