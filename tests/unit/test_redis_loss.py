"""What the broker does when Redis loses its data (issue 25 item 2), on a real Redis emptied under it: the bootstrap
key comes back at its first use and at /readyz, a worker's heartbeat tells it the store forgot it, and snapshot-store
folders whose record is gone are deleted only after the grace. tests/e2e/test_redis_loss.py runs it end to end."""
from __future__ import annotations


import pytest

from app import create_app
from app.auth import bootstrap_key_state
from core.orphan_files import OrphanFiles
from core.snapshots import LocalSnapshotStore
from tests.support.settings import config_with

KEY = "bb_bootstrap-for-the-unit-tests"


@pytest.fixture
def app(store):
    config = config_with(REDIS_URL=store.config.redis_url, BROKER_ENV="development", BROKER_SECRET_KEY="", BROKER_BOOTSTRAP_API_KEY=KEY)
    return create_app(config, store)


def test_the_bootstrap_key_lost_with_redis_serves_its_first_request(app, store):
    client = app.test_client()
    assert client.get("/v1/sessions", headers={"X-API-Key": KEY}).status_code == 200
    store.redis.flushdb()
    assert client.get("/v1/sessions", headers={"X-API-Key": KEY}).status_code == 200
    assert store.api_keys.get(KEY)["scopes"] == sorted(store.api_keys.get(KEY)["scopes"])
    store.redis.flushdb()
    assert client.get("/v1/sessions", headers={"X-API-Key": KEY + "x"}).status_code == 401
    assert store.api_keys.get(KEY) is None, "another key's miss stores the bootstrap key"


def test_readyz_stores_a_lost_bootstrap_key_before_it_answers(app, store):
    store.redis.flushdb()
    store.workers.heartbeat("w@host", {})
    assert app.test_client().get("/readyz").status_code == 200
    assert store.api_keys.get(KEY) is not None


def test_a_revoked_bootstrap_key_stays_revoked(app, store):
    assert bootstrap_key_state(store, app.extensions["broker.config"]) == "stored"
    store.api_keys.revoke(store.api_keys.get(KEY)["id"])
    assert bootstrap_key_state(store, app.extensions["broker.config"]) == "revoked"
    assert app.test_client().get("/v1/sessions", headers={"X-API-Key": KEY}).status_code == 401
    assert store.api_keys.get(KEY) is None
    store.workers.heartbeat("w@host", {})
    assert app.test_client().get("/readyz").status_code == 200


def test_a_heartbeat_says_whether_the_store_knew_the_worker(store):
    assert not store.workers.heartbeat("w@host", {})
    assert store.workers.heartbeat("w@host", {})
    store.redis.flushdb()
    assert not store.workers.heartbeat("w@host", {})


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_folders_whose_record_is_gone_are_deleted_after_the_grace(store, tmp_path):
    blobs = LocalSnapshotStore(tmp_path)
    recorded_context, lost_context = "ctx_" + "a" * 32, "ctx_" + "b" * 32
    recorded_session, lost_session, back_session = "ses_" + "c" * 32, "ses_" + "d" * 32, "ses_" + "e" * 32
    for folder in (recorded_context, lost_context, f"downloads/{recorded_session}", f"downloads/{lost_session}",
                   f"downloads/{back_session}", "not-ours"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "file").write_bytes(b"x")
    store.contexts.create({"id": recorded_context, "project": "p"})
    store.redis.set(f"bb:session:{recorded_session}", "{}")
    clock = Clock()
    orphans = OrphanFiles(blobs, store, grace=60, clock=clock)
    assert orphans.sweep() == []
    clock.now = 59
    assert orphans.sweep() == []
    store.redis.set(f"bb:session:{back_session}", "{}")  # Redis restored from a backup within the grace
    assert orphans.sweep() == []
    store.redis.delete(f"bb:session:{back_session}")
    clock.now = 60
    assert sorted(orphans.sweep()) == [lost_context, f"downloads/{lost_session}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([recorded_context, "downloads", "not-ours"])
    assert sorted(p.name for p in (tmp_path / "downloads").iterdir()) == sorted([recorded_session, back_session])
    clock.now = 119
    assert orphans.sweep() == [], "the clock of a folder whose record came back starts again"
    clock.now = 120
    assert orphans.sweep() == [f"downloads/{back_session}"]


def test_the_s3_store_lists_and_deletes_folders_as_the_local_one(store, tmp_path, monkeypatch):
    """The same sweep over s3:// (moto in process): folders are the common prefixes under the store's prefix."""
    import boto3
    from moto import mock_aws

    from core.snapshots import S3SnapshotStore

    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket="bb-snapshots")
        blobs = S3SnapshotStore("bb-snapshots", "/broker/", None)
        source = tmp_path / "file"
        source.write_bytes(b"x")
        lost_context, lost_session = "ctx_" + "b" * 32, "ses_" + "d" * 32
        for key in (f"{lost_context}/v1.tar.zst", f"downloads/{lost_session}/a.bin", "not-ours/file"):
            blobs.put_blob(key, source)
        assert blobs.folders() == sorted([lost_context, "downloads", "not-ours"])
        assert blobs.folders("downloads") == [lost_session]
        clock = Clock()
        orphans = OrphanFiles(blobs, store, grace=1, clock=clock)
        assert orphans.sweep() == []
        clock.now = 1
        assert sorted(orphans.sweep()) == [lost_context, f"downloads/{lost_session}"]
        assert blobs.folders() == ["not-ours"]
