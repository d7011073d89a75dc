"""API key records on a real Redis: ids, revocation tombstones, the bootstrap key, lastUsedAt writes."""
from __future__ import annotations

import json

from core.ids import sha256_hex
from core.store import keys


def test_revoked_key_is_gone_and_its_id_lists_nowhere(store):
    record = store.api_keys.put("bb_one", name="one", project="p", scopes=["sessions:read"])
    assert record["id"].startswith("key_") and store.api_keys.get("bb_one")["id"] == record["id"]
    assert [r["id"] for r in store.api_keys.page("p", 0, 10)[0]] == [record["id"]]
    assert store.api_keys.revoke(record["id"])["name"] == "one"
    assert store.api_keys.get("bb_one") is None and store.api_keys.by_id(record["id"]) is None
    assert store.api_keys.page("p", 0, 10) == ([], 0) and store.api_keys.page(None, 0, 10) == ([], 0)
    assert store.api_keys.revoke(record["id"]) is None


def test_a_revoked_bootstrap_key_is_not_brought_back_by_a_restart(store):
    assert store.api_keys.ensure("bb_boot", name="bootstrap", project="default", scopes=["sessions:read"])
    key_id = store.api_keys.get("bb_boot")["id"]
    assert store.api_keys.ensure("bb_boot", name="bootstrap", project="default", scopes=["sessions:read"])
    assert store.api_keys.get("bb_boot")["id"] == key_id
    store.api_keys.revoke(key_id)
    assert not store.api_keys.ensure("bb_boot", name="bootstrap", project="default", scopes=["sessions:read"])
    assert store.api_keys.get("bb_boot") is None


def test_bootstrap_key_with_new_scopes_keeps_its_id(store):
    store.api_keys.ensure("bb_boot", name="bootstrap", project="default", scopes=["sessions:read"])
    key_id = store.api_keys.get("bb_boot")["id"]
    store.api_keys.ensure("bb_boot", name="bootstrap", project="default", scopes=["sessions:read", "keys:admin"])
    assert store.api_keys.get("bb_boot") == {**store.api_keys.get("bb_boot"), "id": key_id,
                                               "scopes": ["keys:admin", "sessions:read"]}
    assert store.api_keys.page("default", 0, 10)[1] == 1


def test_a_key_stored_before_ids_existed_gets_one_and_can_be_revoked(store):
    key_hash = sha256_hex("bb_legacy")
    store.redis.set(keys.api_key(key_hash), json.dumps(
        {"name": "old", "project": "p", "scopes": ["sessions:read"], "createdAt": "2025-01-01T00:00:00Z"}))
    record = store.api_keys.get("bb_legacy")
    assert record["id"] == f"key_{key_hash[:32]}" and store.api_keys.get("bb_legacy")["id"] == record["id"]
    assert [r["name"] for r in store.api_keys.page("p", 0, 10)[0]] == ["old"]
    store.api_keys.revoke(record["id"])
    assert store.api_keys.get("bb_legacy") is None


def test_last_used_is_written_once_a_minute_at_most(store):
    key_id = store.api_keys.put("bb_used", name="u", project="p", scopes=["sessions:read"])["id"]
    assert store.api_keys.last_used(key_id) is None
    store.api_keys.touch(key_id)
    first = store.api_keys.last_used(key_id)
    assert first
    store.redis.hset(keys.API_KEYS_LAST_USED, key_id, "marker")
    store.api_keys.touch(key_id)
    assert store.api_keys.last_used(key_id) == "marker"
    assert store.api_keys.page("p", 0, 10)[0][0]["lastUsedAt"] == "marker"


def test_a_page_far_past_the_end_is_empty_without_a_redis_error(store):
    store.api_keys.put("bb_one", name="one", project="p", scopes=["sessions:read"])
    assert store.api_keys.page("p", 10**20, 100) == ([], 1)
    assert store.proxies.page("p", 10**20, 100) == ([], 0)
    assert store.sessions.page("p", None, 2**70, 100) == ([], 0)
