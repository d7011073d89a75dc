"""The files service's failures as the API answers them (app/files/errors.py, mapped once in app/files/resources.py):
status and JSON body per failure, through ``create_app().test_client()`` on session records made straight in the
store; a stand-in file door on loopback plays the worker. tests/e2e/test_files.py covers the same answers with a
real worker and browser."""
from __future__ import annotations

import http.server
import io
import json
import threading
import time

import pytest

from app import create_app
from app.files.errors import FilesError
from app.files.resources import STATUS_OF
from core.ids import new_id, utcnow_iso
from core.store.projects import DEFAULT_PROJECT
from tests.support.settings import config_with

KEY = "bb_bootstrap-for-the-file-error-tests"
HEADERS = {"X-API-Key": KEY}


@pytest.fixture
def client(store):
    config = config_with(REDIS_URL=store.config.redis_url, BROKER_ENV="development", BROKER_SECRET_KEY="", BROKER_BOOTSTRAP_API_KEY=KEY)
    return create_app(config, store).test_client()


def session(store, status: str, **fields) -> str:
    session_id = new_id("ses")
    store.sessions.create({"id": session_id, "project": DEFAULT_PROJECT, "status": status, "createdAt": utcnow_iso(),
                           **fields}, in_line=False)
    return session_id


@pytest.fixture
def door():
    """A file door that refuses every call with the status the test sets, as tasks/file_door.py words a refusal."""
    refusal = {"status": 404, "message": "no such download"}

    class Door(http.server.BaseHTTPRequestHandler):
        def _refuse(self) -> None:
            if self.headers.get("Transfer-Encoding") == "chunked":
                while (size := int(self.rfile.readline().strip() or b"0", 16)) > 0:
                    self.rfile.read(size + 2)
                self.rfile.readline()
            body = json.dumps({"message": refusal["message"]}).encode()
            self.send_response(refusal["status"])
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PUT = _refuse

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Door)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}", refusal
    server.shutdown()
    server.server_close()


def upload(client, session_id: str, name: str):
    return client.post(f"/v1/sessions/{session_id}/uploads", headers=HEADERS, data={"file": (io.BytesIO(b"x"), name)})


def error_of(answer) -> dict:
    assert answer.is_json, answer.data
    return answer.get_json()


def test_every_failure_has_one_status():
    def subclasses(kind: type) -> set[type]:
        return {sub for child in kind.__subclasses__() for sub in {child, *subclasses(child)}}
    assert set(STATUS_OF) == subclasses(FilesError)


def test_a_stopping_session_s_downloads_are_a_409(client, store):
    session_id = session(store, "stopping")
    answer = client.get(f"/v1/sessions/{session_id}/downloads", headers=HEADERS)
    assert answer.status_code == 409
    assert error_of(answer) == {"code": 409, "status": "Conflict", "message":
                                f"Session {session_id} is stopping; its downloads are readable again once it is stopped."}


def test_downloads_past_their_retention_are_a_404(client, store):
    session_id = session(store, "stopped", downloads=[{"name": "a.txt", "size": 1, "state": "complete"}],
                         downloadsExpireEpoch=time.time() - 1)
    answer = client.get(f"/v1/sessions/{session_id}/downloads/a.txt", headers=HEADERS)
    assert answer.status_code == 404
    assert error_of(answer) == {"code": 404, "status": "Not Found", "message":
                                f"The downloads of session {session_id} were deleted (BROKER_DOWNLOAD_RETENTION)."}


def test_a_download_the_stopped_session_never_had_is_a_404(client, store):
    session_id = session(store, "stopped", downloads=[])
    answer = client.get(f"/v1/sessions/{session_id}/downloads/missing.txt", headers=HEADERS)
    assert error_of(answer) == {"code": 404, "status": "Not Found",
                                "message": f"Session {session_id} has no download named missing.txt."}


def test_an_upload_to_a_session_that_is_not_running_is_a_409(client, store):
    session_id = session(store, "stopped")
    answer = upload(client, session_id, "a.txt")
    assert error_of(answer) == {"code": 409, "status": "Conflict",
                                "message": f"Session {session_id} is stopped; uploads need a running session."}


@pytest.mark.parametrize("content_type, body, message", [
    ("text/plain", b"x", "The body must be multipart/form-data with a `file` part."),
    ("multipart/form-data; boundary=b", b"--b\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n--b--\r\n",
     "The multipart body has no `file` part (a file, with a filename)."),
])
def test_an_upload_without_a_file_part_is_a_422_naming_the_field(client, store, content_type, body, message):
    session_id = session(store, "running", gateway="127.0.0.1:1")
    answer = client.post(f"/v1/sessions/{session_id}/uploads", headers={**HEADERS, "Content-Type": content_type},
                         data=body)
    assert error_of(answer) == {"code": 422, "status": "Unprocessable Entity", "message": message,
                                "errors": {"files": {"file": ["Missing data for required field."]}}}


def test_a_bad_file_name_is_a_422_naming_the_field(client, store):
    session_id = session(store, "running", gateway="127.0.0.1:1")
    answer = upload(client, session_id, ".env")
    error = error_of(answer)
    assert error["code"] == 422 and error["message"].startswith("Bad file name: ")
    assert list(error["errors"]) == ["path"] and list(error["errors"]["path"]) == ["name"]


def test_a_worker_that_cannot_be_reached_is_a_502(client, store):
    session_id = session(store, "running", gateway="127.0.0.1:1")
    answer = client.get(f"/v1/sessions/{session_id}/downloads", headers=HEADERS)
    assert error_of(answer) == {"code": 502, "status": "Bad Gateway", "message": "The session's worker cannot be reached."}


@pytest.mark.parametrize("status, answered", [(404, 404), (409, 409), (413, 413), (422, 422), (500, 502), (403, 502)])
def test_the_file_door_s_refusals_are_answered_as_the_api_s_own(client, store, door, status, answered):
    gateway, refusal = door
    refusal.update(status=status, message=f"the door said {status}")
    session_id = session(store, "running", gateway=gateway)
    answer = client.get(f"/v1/sessions/{session_id}/downloads/a.txt", headers=HEADERS)
    assert answer.status_code == answered
    assert error_of(answer)["code"] == answered and error_of(answer)["message"] == f"the door said {status}"
    reply = upload(client, session_id, "a.txt")
    assert reply.status_code == answered and error_of(reply)["message"] == f"the door said {status}"
