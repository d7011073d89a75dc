"""What a checkpoint compares and copies (tasks/checkpoints.py): a fingerprint that changes with the profile's files,
tabs and cookies and with nothing else, and a copy of a live profile that leaves caches and locks out."""
from __future__ import annotations

import os
from pathlib import Path

from tasks.checkpoints import copy_live_profile, profile_fingerprint

TABS = ["https://example.com/"]
COOKIES = [{"name": "sid", "value": "1", "domain": "example.com"}]


def profile(root: Path) -> Path:
    (root / "Default" / "Local Storage" / "leveldb").mkdir(parents=True)
    (root / "Default" / "Local Storage" / "leveldb" / "000003.log").write_bytes(b"marker")
    (root / "Default" / "Cache").mkdir()
    (root / "Default" / "Cache" / "data_0").write_bytes(b"cached")
    (root / "SingletonLock").symlink_to("host-123")
    (root / "DevToolsActivePort").write_text("9222")
    return root


def test_the_fingerprint_changes_with_a_kept_file_the_tabs_or_the_cookies_only(tmp_path):
    root = profile(tmp_path / "p")
    first = profile_fingerprint(root, TABS, COOKIES)
    assert profile_fingerprint(root, TABS, COOKIES) == first
    (root / "Default" / "Cache" / "data_1").write_bytes(b"more cache")
    (root / "DevToolsActivePort").write_text("9333")
    assert profile_fingerprint(root, TABS, COOKIES) == first, "caches and run files are not state"
    assert profile_fingerprint(root, TABS + ["about:blank"], COOKIES) != first
    assert profile_fingerprint(root, TABS, [{**COOKIES[0], "value": "2"}]) != first
    log = root / "Default" / "Local Storage" / "leveldb" / "000003.log"
    log.write_bytes(b"marker, then more")
    assert profile_fingerprint(root, TABS, COOKIES) != first
    changed = profile_fingerprint(root, TABS, COOKIES)
    os.utime(log, ns=(1, 1))
    assert profile_fingerprint(root, TABS, COOKIES) != changed, "same size, newer write"


def test_a_live_profile_is_copied_without_caches_locks_or_run_files(tmp_path):
    root = profile(tmp_path / "p")
    copy = tmp_path / "copy"
    copy_live_profile(root, copy)
    copied = sorted(str(p.relative_to(copy)) for p in copy.rglob("*"))
    assert copied == ["Default", "Default/Local Storage", "Default/Local Storage/leveldb",
                      "Default/Local Storage/leveldb/000003.log"]
    assert (copy / "Default" / "Local Storage" / "leveldb" / "000003.log").read_bytes() == b"marker"
