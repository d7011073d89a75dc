"""The Proxies API as API.md states it: status codes, fields, tenants, scopes, the password kept secret, bad input that changes nothing."""
from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time

import pytest
import requests

from core.crypto import SecretBox, UnreadableSecret
from tests.support.api import ISO_Z, Api
from tests.support.keys import make_key
from tests.support.processes import ROOT, SECRET_KEY, end_process, free_port, wait_until

PROXY_FIELDS = {"id", "server", "username", "name", "createdAt"}


def proxy_ids(api: Api) -> set[str]:
    answer = api.get("/v1/proxies")
    assert answer.status_code == 200, answer.text
    return {p["id"] for p in answer.json()}


def test_create_answers_201_without_the_password(api, proxy_factory):
    password = "pw-" + secrets.token_urlsafe(12)
    answer = api.post("/v1/proxies", json={"server": "HTTP://Proxy.Example.com:8080/", "username": "alice",
                                           "password": password, "name": "office"})
    assert answer.status_code == 201, answer.text
    proxy = answer.json()
    api.delete(f"/v1/proxies/{proxy['id']}")
    assert set(proxy) == PROXY_FIELDS
    assert re.fullmatch(r"prx_[0-9a-f]{32}", proxy["id"])
    assert proxy["server"] == "http://proxy.example.com:8080"
    assert proxy["username"] == "alice" and proxy["name"] == "office"
    assert ISO_Z.match(proxy["createdAt"])
    assert password not in answer.text


def test_get_and_list_never_show_the_password(api, proxy_factory):
    password = "pw-" + secrets.token_urlsafe(12)
    first = proxy_factory(server="socks5://127.0.0.1:1080", username="bob", password=password)
    second = proxy_factory(server="https://[::1]:3128")
    one = api.get(f"/v1/proxies/{first['id']}")
    assert one.status_code == 200 and one.json() == first
    listed = api.get("/v1/proxies")
    ids = [p["id"] for p in listed.json()]
    assert ids.index(second["id"]) < ids.index(first["id"])
    assert second["server"] == "https://[::1]:3128" and second["username"] is None and second["name"] is None
    spec = api.get("/openapi.json")
    assert {"/v1/proxies", "/v1/proxies/{proxy_id}", "/v1/proxies/{proxy_id}/check"} <= set(spec.json()["paths"])
    for text in (one.text, listed.text, spec.text):
        assert password not in text
    assert all(set(p) == PROXY_FIELDS for p in listed.json())


def test_password_is_stored_encrypted(broker, api, proxy_factory):
    password = "pw-" + secrets.token_urlsafe(12)
    proxy = proxy_factory(server="http://127.0.0.1:3128", username="carol", password=password)
    store = broker.store()
    raw = store.redis.get(f"bb:proxy:{proxy['id']}")
    assert raw and password not in raw
    everything = [store.redis.dump(key) or b"" for key in store.redis.keys("*")]
    assert not any(password.encode() in blob for blob in everything)
    record = json.loads(raw)
    box = SecretBox(SECRET_KEY)
    assert box.decrypt(record["passwordCiphertext"]) == password


def test_delete_answers_204_then_404(api):
    proxy = api.post("/v1/proxies", json={"server": "http://127.0.0.1:3128"}).json()
    assert api.delete(f"/v1/proxies/{proxy['id']}").status_code == 204
    assert api.get(f"/v1/proxies/{proxy['id']}").status_code == 404
    assert api.delete(f"/v1/proxies/{proxy['id']}").status_code == 404
    assert proxy["id"] not in proxy_ids(api)


@pytest.mark.parametrize("path", ["/v1/proxies/prx_00000000000000000000000000000000", "/v1/proxies/nope"])
def test_unknown_proxy_is_404(api, path):
    for method, url in (("GET", path), ("DELETE", path), ("POST", path + "/check")):
        answer = api.request(method, url, json={} if method == "POST" else None)
        assert answer.status_code == 404, (method, answer.text)
        assert answer.json()["code"] == 404 and answer.json()["message"]


def test_other_projects_proxies_are_404(broker, api, proxy_factory):
    other = Api(broker.url, make_key(broker, scopes=("proxies:read", "proxies:write", "sessions:write",
                                                     "sessions:read"), project="elsewhere"))
    mine = proxy_factory(server="http://127.0.0.1:3128")
    assert other.get(f"/v1/proxies/{mine['id']}").status_code == 404
    assert other.delete(f"/v1/proxies/{mine['id']}").status_code == 404
    assert other.post(f"/v1/proxies/{mine['id']}/check", json={}).status_code == 404
    assert mine["id"] not in proxy_ids(other)
    before = broker.footprint()
    assert other.post("/v1/sessions", json={"proxyId": mine["id"]}).status_code == 404
    assert broker.footprint() == before
    assert api.get(f"/v1/proxies/{mine['id']}").json() == mine


def test_scopes_are_required(broker, api, proxy_factory):
    sessions_only = Api(broker.url, make_key(broker, scopes=("sessions:read", "sessions:write"), project="default"))
    reader = Api(broker.url, make_key(broker, scopes=("proxies:read",), project="default"))
    existing = proxy_factory(server="http://127.0.0.1:3128")
    before = proxy_ids(api)
    assert sessions_only.get("/v1/proxies").status_code == 403
    assert sessions_only.get(f"/v1/proxies/{existing['id']}").status_code == 403
    denied = reader.post("/v1/proxies", json={"server": "http://127.0.0.1:3129"})
    assert denied.status_code == 403 and "proxies:write" in denied.json()["message"]
    assert reader.delete(f"/v1/proxies/{existing['id']}").status_code == 403
    assert reader.post(f"/v1/proxies/{existing['id']}/check", json={}).status_code == 403
    assert reader.get(f"/v1/proxies/{existing['id']}").status_code == 200
    assert proxy_ids(api) == before
    assert Api(broker.url, None).get("/v1/proxies").status_code == 401


BAD_BODIES = [
    ({}, "server"),
    ({"server": 42}, "server"),
    ({"server": ""}, "server"),
    ({"server": "ftp://127.0.0.1:21"}, "server"),
    ({"server": "socks4://127.0.0.1:1080"}, "server"),
    ({"server": "127.0.0.1:3128"}, "server"),
    ({"server": "http://alice:s3cret-in-url@127.0.0.1:3128"}, "server"),
    ({"server": "http://127.0.0.1:3128/path"}, "server"),
    ({"server": "http://127.0.0.1:3128?x=1"}, "server"),
    ({"server": "http://127.0.0.1:0"}, "server"),
    ({"server": "http://127.0.0.1:65536"}, "server"),
    ({"server": "http://127.0.0.1:port"}, "server"),
    ({"server": "http://127.0.0.1"}, "server"),
    ({"server": "http://bad_host:3128"}, "server"),
    ({"server": "http://[nope]:3128"}, "server"),
    ({"server": "http://127.0.0.1:3128", "username": "a:b", "password": "x"}, "username"),
    ({"server": "http://127.0.0.1:3128", "username": ""}, "username"),
    ({"server": "http://127.0.0.1:3128", "username": "u" * 256}, "username"),
    ({"server": "http://127.0.0.1:3128", "username": 7}, "username"),
    ({"server": "http://127.0.0.1:3128", "username": "u", "password": "line\nbreak"}, "password"),
    ({"server": "http://127.0.0.1:3128", "password": "orphan"}, "password"),
    ({"server": "http://127.0.0.1:3128", "username": "u", "password": "€uro"}, "password"),
    ({"server": "http://127.0.0.1:3128", "name": "n" * 201}, "name"),
    ({"server": "http://127.0.0.1:3128", "color": "blue"}, "color"),
]


@pytest.mark.parametrize("body,field", BAD_BODIES)
def test_invalid_create_body_is_422_and_saves_nothing(api, body, field):
    before = proxy_ids(api)
    answer = api.post("/v1/proxies", json=body)
    assert answer.status_code == 422, answer.text
    payload = answer.json()
    assert payload["code"] == 422 and payload["message"]
    assert field in payload["errors"]["json"]
    assert "s3cret-in-url" not in answer.text
    assert proxy_ids(api) == before


@pytest.mark.parametrize("server", ["socks5://127.0.0.1:1080", "http://127.0.0.1:3128"])
def test_credentials_are_printable_ascii_for_every_scheme(api, server):
    """One rule the OpenAPI pattern states: SOCKS5 counts bytes, HTTP proxies disagree on Basic's charset."""
    before = proxy_ids(api)
    for body in ({"username": "u", "password": "€uro"}, {"username": "ü", "password": "p"}):
        answer = api.post("/v1/proxies", json={"server": server, **body})
        assert answer.status_code == 422 and set(answer.json()["errors"]["json"]) & {"username", "password"}
    assert proxy_ids(api) == before


@pytest.mark.parametrize("data,content_type", [("{not json", "application/json"), ("server=x", "text/plain")])
def test_malformed_body_is_400_and_saves_nothing(api, data, content_type):
    before = proxy_ids(api)
    answer = api.post("/v1/proxies", data=data, headers={"Content-Type": content_type})
    assert answer.status_code == 400, answer.text
    assert proxy_ids(api) == before


def test_unknown_proxy_id_on_session_create_is_404_and_starts_nothing(broker, api):
    before = broker.footprint()
    answer = api.post("/v1/sessions", json={"proxyId": "prx_00000000000000000000000000000000"})
    assert answer.status_code == 404, answer.text
    assert "prx_00000000000000000000000000000000" in answer.json()["message"]
    assert broker.footprint() == before
    assert not broker.store().redis.keys("bb:proxy:prx_00000000000000000000000000000000*")


def test_deleting_a_proxy_in_use_is_409_until_its_session_stops(api, proxy_factory, session_factory):
    proxy = proxy_factory(server="http://127.0.0.1:3128")
    session = session_factory(api, proxyId=proxy["id"])
    assert session["proxyId"] == proxy["id"]
    refused = api.delete(f"/v1/proxies/{proxy['id']}")
    assert refused.status_code == 409, refused.text
    assert session["id"] not in refused.text
    assert api.get(f"/v1/proxies/{proxy['id']}").json() == proxy
    api.stop_session(session["id"])
    assert api.delete(f"/v1/proxies/{proxy['id']}").status_code == 204


BAD_CHECKS = [{"target": "no-port"}, {"target": "127.0.0.1:0"}, {"target": "127.0.0.1:70000"}, {"target": 5},
              {"target": "http://127.0.0.1:80"}, {"timeout": 3}]


@pytest.mark.parametrize("body", BAD_CHECKS)
def test_invalid_check_body_is_422(api, proxy_factory, body):
    proxy = proxy_factory(server="http://127.0.0.1:3128")
    answer = api.post(f"/v1/proxies/{proxy['id']}/check", json=body)
    assert answer.status_code == 422, answer.text
    assert api.get(f"/v1/proxies/{proxy['id']}").json() == proxy


def test_check_of_a_proxy_that_is_down_reports_unreachable(api, proxy_factory, pages):
    proxy = proxy_factory(server=f"http://127.0.0.1:{free_port()}", username="u", password="p")
    answer = api.post(f"/v1/proxies/{proxy['id']}/check", json={"target": pages.base.removeprefix("http://")})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["reachable"] is False and result["latencyMs"] is None and result["error"]
    assert ISO_Z.match(result["checkedAt"])


@pytest.fixture(scope="module")
def policed(deploy) -> Api:
    """A web process (Redis database 44) with the egress policy's default: public addresses only, nothing opened."""
    broker = deploy(44, BROKER_EGRESS_ALLOW="")
    return Api(broker.url, broker.api_key)


@pytest.fixture
def listener():
    """A TCP port on 127.0.0.1 that notes whether anything connected to it."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(1)
    yield server
    server.close()


def dialled(server: socket.socket) -> bool:
    try:
        server.accept()[0].close()
        return True
    except socket.timeout:
        return False


def test_check_dials_no_proxy_address_the_egress_policy_refuses(policed, listener):
    port = listener.getsockname()[1]
    for server in (f"http://127.0.0.1:{port}", f"socks5://localhost:{port}"):
        proxy = policed.post("/v1/proxies", json={"server": server, "username": "u", "password": "p"}).json()
        # A public target, so only the proxy's own address is in question.
        answer = policed.post(f"/v1/proxies/{proxy['id']}/check", json={"target": "93.184.215.14:443"})
        assert answer.status_code == 403, answer.text
        assert answer.json()["code"] == 403 and "proxy's address" in answer.json()["message"]
        assert "egress policy" in answer.json()["message"]
        assert not dialled(listener)
        assert policed.delete(f"/v1/proxies/{proxy['id']}").status_code == 204


def test_check_asks_for_no_target_the_egress_policy_refuses(policed, listener):
    """Judged before anything is dialled: the proxy (a public address) is never contacted."""
    proxy = policed.post("/v1/proxies", json={"server": "http://93.184.215.14:3128"}).json()
    port = listener.getsockname()[1]
    for target in (f"127.0.0.1:{port}", f"localhost:{port}", "169.254.169.254:80", "10.0.0.1:22", "[::1]:80"):
        started = time.monotonic()
        answer = policed.post(f"/v1/proxies/{proxy['id']}/check", json={"target": target})
        assert answer.status_code == 403, (target, answer.text)
        assert "check target" in answer.json()["message"] and "egress policy" in answer.json()["message"]
        assert time.monotonic() - started < 2, "a refused target answers at once, without a dial"
    assert not dialled(listener)


def _start_without_secret(args: list[str], **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("BROKER_SECRET_KEY", "BROKER_ENV")}
    environment.update({"PORT": str(free_port()), "BROKER_BIND": "127.0.0.1", "REDIS_URL": "redis://127.0.0.1:1/0", **env})
    return subprocess.run(args, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120)


def test_web_and_worker_refuse_to_start_without_a_secret_outside_development(tmp_path):
    web = _start_without_secret([sys.executable, "-m", "web"])
    assert web.returncode != 0 and "BROKER_SECRET_KEY" in web.stderr
    worker = _start_without_secret([sys.executable, "-m", "celery", "-A", "tasks.celery_app", "worker",
                                    "-n", f"nosecret-{free_port()}@test", "--without-gossip", "--without-mingle"],
                                   BROKER_STATE_DIR=str(tmp_path))
    assert worker.returncode != 0 and "BROKER_SECRET_KEY" in worker.stdout + worker.stderr


def test_development_mode_runs_without_a_secret(redis_server, tmp_path):
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if k != "BROKER_SECRET_KEY"}
    environment.update({"BROKER_ENV": "development", "PORT": str(port), "BROKER_BIND": "127.0.0.1",
                        "REDIS_URL": redis_server.url(5), "BROKER_STATE_DIR": str(tmp_path)})
    web = subprocess.Popen([sys.executable, "-m", "web"], cwd=ROOT, env=environment,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: _healthy(port) or web.poll() is not None, 30, message="the development web process")
        assert web.poll() is None and _healthy(port)
    finally:
        end_process(web)
    assert "development mode" in web.stderr.read()


def _healthy(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok
    except requests.RequestException:
        return False


def test_a_password_stored_under_another_secret_cannot_be_read():
    token = SecretBox(SECRET_KEY).encrypt("hunter2")
    with pytest.raises(UnreadableSecret):
        SecretBox("another-secret-of-enough-length").decrypt(token)
    assert SecretBox(SECRET_KEY).decrypt(token) == "hunter2"


def test_web_refuses_a_short_secret():
    web = _start_without_secret([sys.executable, "-m", "web"], BROKER_SECRET_KEY="short")
    assert web.returncode != 0 and "at least 16 characters" in web.stderr
