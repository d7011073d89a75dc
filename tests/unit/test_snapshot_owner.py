"""A root worker's snapshots and archives belong to the store folder's owner, who must be able to delete them.

docker-compose.yml's documented root worker writes to the snapshots volume that the web process, running as the
image's user, deletes from (DELETE /v1/contexts/:id, expired download archives).
"""
from __future__ import annotations

import os
import pwd
import tempfile
from pathlib import Path

import pytest

from core.snapshots import LocalSnapshotStore


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root worker hands its files to another owner")
def test_a_root_workers_files_and_folders_belong_to_the_stores_owner():
    owner = pwd.getpwnam("broker")
    # Not under pytest's tmp_path, whose parents only root may enter.
    with tempfile.TemporaryDirectory(prefix="bb-owner-") as folder:
        check(Path(folder), owner)


def check(tmp_path: Path, owner: pwd.struct_passwd) -> None:
    tmp_path.chmod(0o755)
    root = tmp_path / "snapshots"
    root.mkdir()
    os.chown(root, owner.pw_uid, owner.pw_gid)
    source = tmp_path / "archive"
    source.write_bytes(b"x" * 10)

    store = LocalSnapshotStore(root)
    store.put("ctx_1", "v1", source)
    store.put_blob("downloads/ses_1/a.txt", source)

    written = [root / "ctx_1", root / "ctx_1" / "v1.tar.zst", root / "downloads", root / "downloads" / "ses_1",
               root / "downloads" / "ses_1" / "a.txt"]
    assert {p: (p.stat().st_uid, p.stat().st_gid) for p in written} == {p: (owner.pw_uid, owner.pw_gid) for p in written}
    # What the store's owner can then do, as the web process does.
    pid = os.fork()
    if pid == 0:
        try:
            os.setgid(owner.pw_gid)
            os.setuid(owner.pw_uid)
            store.delete("ctx_1", "v1")
            store.delete_blobs("downloads/ses_1")
            os._exit(0 if not (root / "ctx_1").exists() and not (root / "downloads" / "ses_1").exists() else 1)
        except BaseException:
            os._exit(2)
    assert os.waitpid(pid, 0)[1] == 0
