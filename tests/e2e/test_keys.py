"""API keys managed by operators (CLI) and by keys:admin keys (/v1/keys): listed, revoked, rotated, expiring."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from core.ids import iso_at
from tests.support.api import Api
from tests.support.processes import ROOT, end_process, wait_until


def cli(broker, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app", "keys", *args], cwd=ROOT, env=broker.env,
                          capture_output=True, text=True, check=check)


def cli_key(broker, *args: str) -> tuple[str, str]:
    """A new key from ``keys create``: the key (stdout) and its id (from the note on stderr)."""
    out = cli(broker, "create", *args)
    key_id = next(part.split("=", 1)[1] for part in out.stderr.split() if part.startswith("id="))
    return out.stdout.strip(), key_id


@pytest.fixture(scope="module")
def admin(broker) -> Api:
    key, _ = cli_key(broker, "--name", "admin", "--project", "keys-a",
                     "--scopes", "keys:admin,sessions:read,contexts:read,contexts:write")
    return Api(broker.url, key)


def test_cli_lists_every_field_but_the_key(broker):
    key, key_id = cli_key(broker, "--name", "listed", "--project", "keys-list", "--scopes", "sessions:read",
                          "--expires-at", "2099-01-02T03:04:05+02:00")
    assert Api(broker.url, key).get("/v1/sessions").status_code == 200
    out = cli(broker, "list", "--project", "keys-list").stdout
    header, *rows = out.strip().split("\n")
    assert header.split("\t") == ["id", "name", "project", "scopes", "createdAt", "lastUsedAt", "expiresAt"]
    row = dict(zip(header.split("\t"), rows[0].split("\t")))
    assert row["id"] == key_id and row["name"] == "listed" and row["project"] == "keys-list"
    assert row["scopes"] == "sessions:read" and row["expiresAt"] == "2099-01-02T01:04:05Z"
    assert row["lastUsedAt"] != "-" and row["createdAt"].endswith("Z")
    assert key not in out and key not in cli(broker, "list").stdout


def test_cli_revoke_refuses_the_next_request_on_every_web_process(broker):
    key, key_id = cli_key(broker, "--name", "leaked", "--project", "keys-revoke", "--scopes", "sessions:read")
    second, second_url = broker.start_another_web()
    try:
        here, there = Api(broker.url, key), Api(second_url, key)
        assert here.get("/v1/sessions").status_code == 200 and there.get("/v1/sessions").status_code == 200
        cli(broker, "revoke", key_id)
        for web in (here, there):
            answer = web.get("/v1/sessions")
            assert answer.status_code == 401 and answer.json()["message"] == "Unknown or revoked API key."
    finally:
        end_process(second)
    assert key_id not in cli(broker, "list").stdout
    assert cli(broker, "revoke", key_id, check=False).returncode == 1


def test_cli_rotate_gives_a_new_key_and_revokes_the_old(broker):
    old, old_id = cli_key(broker, "--name", "rotating", "--project", "keys-rotate", "--scopes", "sessions:read,proxies:read")
    out = cli(broker, "rotate", old_id)
    new = out.stdout.strip()
    assert new != old and new.startswith("bb_")
    assert Api(broker.url, old).get("/v1/sessions").status_code == 401
    assert Api(broker.url, new).get("/v1/proxies").status_code == 200
    rows = cli(broker, "list", "--project", "keys-rotate").stdout.strip().split("\n")[1:]
    assert len(rows) == 1 and rows[0].split("\t")[1:4] == ["rotating", "keys-rotate", "proxies:read,sessions:read"]


def test_expired_key_is_401(broker):
    ends = time.time() + 3
    soon = iso_at(ends)
    broker.store().api_keys.put("bb_brief", name="brief", project="keys-expiry", scopes=["sessions:read"],
                                expires_at=soon, expires_epoch=ends)
    caller = Api(broker.url, "bb_brief")
    assert caller.get("/v1/sessions").status_code == 200
    wait_until(lambda: caller.get("/v1/sessions").status_code == 401, 10, interval=0.5, message="the key to expire")
    assert caller.get("/v1/sessions").json()["message"] == f"This API key expired at {soon}."


def test_admin_key_creates_lists_and_revokes_keys_of_its_own_project(broker, admin):
    created = admin.post("/v1/keys", json={"name": "ci", "scopes": ["contexts:read"], "expiresAt": "2099-06-01T00:00:00Z"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert set(body) == {"id", "name", "scopes", "createdAt", "lastUsedAt", "expiresAt", "key"}
    assert body["scopes"] == ["contexts:read"] and body["expiresAt"] == "2099-06-01T00:00:00Z" and body["lastUsedAt"] is None
    new = Api(broker.url, body["key"])
    assert new.get("/v1/contexts").status_code == 200
    assert new.get("/v1/sessions").status_code == 403
    listed = admin.get("/v1/keys").json()
    assert {k["id"] for k in listed} >= {body["id"]} and all("key" not in k for k in listed)
    shown = admin.get(f"/v1/keys/{body['id']}").json()
    assert shown["lastUsedAt"] and shown["name"] == "ci"
    assert body["key"] not in admin.get("/v1/keys").text
    assert admin.delete(f"/v1/keys/{body['id']}").status_code == 204
    assert new.get("/v1/contexts").status_code == 401
    assert admin.get(f"/v1/keys/{body['id']}").status_code == 404
    assert admin.delete(f"/v1/keys/{body['id']}").status_code == 404


def test_admin_key_cannot_grant_scopes_it_lacks_nor_see_other_projects(broker, admin):
    before = {k["id"] for k in admin.get("/v1/keys").json()}
    refused = admin.post("/v1/keys", json={"name": "escalate", "scopes": ["sessions:write"]})
    assert refused.status_code == 403 and "sessions:write" in refused.json()["message"]
    _, foreign_id = cli_key(broker, "--name", "foreign", "--project", "keys-b", "--scopes", "sessions:read")
    assert admin.get(f"/v1/keys/{foreign_id}").status_code == 404
    assert admin.delete(f"/v1/keys/{foreign_id}").status_code == 404
    assert foreign_id in cli(broker, "list", "--project", "keys-b").stdout
    assert {k["id"] for k in admin.get("/v1/keys").json()} == before


def test_admin_key_cannot_mint_a_key_that_outlives_it(broker):
    """A key that expires makes keys that expire no later: none that never expires, none that ends after it."""
    key, _ = cli_key(broker, "--name", "mortal", "--project", "keys-mortal", "--scopes", "keys:admin,contexts:read",
                     "--expires-at", "2090-01-01T00:00:00Z")
    mortal = Api(broker.url, key)
    before = {k["id"] for k in mortal.get("/v1/keys").json()}
    for expiry in ({}, {"expiresAt": None}, {"expiresAt": "2090-01-01T00:00:01Z"},
                   {"expiresAt": "2090-01-01T00:30:00+00:29"}, {"expiresAt": "2199-01-01T00:00:00Z"}):
        refused = mortal.post("/v1/keys", json={"name": "longer", "scopes": ["contexts:read"], **expiry})
        assert refused.status_code == 403, (expiry, refused.text)
        assert refused.json()["code"] == 403
        assert "outlive" in refused.json()["message"] and "2090-01-01T00:00:00Z" in refused.json()["message"]
        assert {k["id"] for k in mortal.get("/v1/keys").json()} == before
    for expiry in ("2090-01-01T00:00:00Z", "2090-01-01T00:30:00+00:30", "2040-01-01T00:00:00Z"):
        made = mortal.post("/v1/keys", json={"name": "shorter", "scopes": ["contexts:read"], "expiresAt": expiry})
        assert made.status_code == 201, (expiry, made.text)
        assert mortal.delete(f"/v1/keys/{made.json()['id']}").status_code == 204


def test_keys_api_needs_the_keys_admin_scope(broker):
    key, _ = cli_key(broker, "--name", "plain", "--project", "keys-a", "--scopes", "sessions:read,sessions:write")
    plain = Api(broker.url, key)
    assert plain.get("/v1/keys").status_code == 403
    assert plain.post("/v1/keys", json={"name": "x", "scopes": ["sessions:read"]}).status_code == 403
    assert Api(broker.url, None).get("/v1/keys").status_code == 401


BAD_KEY_BODIES = [
    ({}, "name"), ({"name": "x"}, "scopes"), ({"name": "", "scopes": ["contexts:read"]}, "name"),
    ({"name": "x", "scopes": []}, "scopes"), ({"name": "x", "scopes": ["sessions:fly"]}, "scopes"),
    ({"name": "x", "scopes": ["contexts:read"], "expiresAt": "tomorrow"}, "expiresAt"),
    ({"name": "x", "scopes": ["contexts:read"], "expiresAt": "2030-02-30T00:00:00Z"}, "expiresAt"),
    ({"name": "x", "scopes": ["contexts:read"], "expiresAt": "2030-01-01T00:00:00"}, "expiresAt"),
    ({"name": "x", "scopes": ["contexts:read"], "key": "bb_mine"}, "key"),
]


@pytest.mark.parametrize("body,field", BAD_KEY_BODIES)
def test_invalid_key_body_is_422_and_creates_nothing(admin, body, field):
    before = {k["id"] for k in admin.get("/v1/keys").json()}
    answer = admin.post("/v1/keys", json=body)
    assert answer.status_code == 422, answer.text
    assert field in answer.json()["errors"]["json"]
    assert {k["id"] for k in admin.get("/v1/keys").json()} == before


def test_expiry_in_the_past_makes_a_key_that_is_already_expired(broker, admin):
    body = admin.post("/v1/keys", json={"name": "past", "scopes": ["contexts:read"],
                                        "expiresAt": "2001-01-01T00:00:00+05:00"}).json()
    assert body["expiresAt"] == "2000-12-31T19:00:00Z"
    assert Api(broker.url, body["key"]).get("/v1/contexts").status_code == 401
    admin.delete(f"/v1/keys/{body['id']}")


def test_keys_are_stored_only_as_hashes(broker, admin):
    key = admin.post("/v1/keys", json={"name": "hashed", "scopes": ["contexts:read"]}).json()["key"]
    redis = broker.store().redis
    assert not redis.keys(f"*{key}*")
    assert not [k for k in redis.keys("bb:apikey*") if redis.type(k) == "string" and key in redis.get(k)]
