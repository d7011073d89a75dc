"""The file door (tasks/file_door.py) and the download archive (core/download_archive.py) never follow a link that a
process running as the browser's user could put in place of a session folder, the folder holding it, or a file.

Each test builds a fake session folder under tmp_path (``bb-session/{downloads,uploads}``) and a folder elsewhere
holding a file, then drives the door in-process over a socket pair, as the gateway does (tasks/gateway.py).
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import h11
import pytest

from core.download_archive import DownloadArchive
from core.files import UnsafeFolder, folder_bytes, list_folder
from core.snapshots import LocalSnapshotStore
from tasks.file_door import FileDoor

SECRET = b"the worker's own secret\n"
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file or folder another owner")


@pytest.fixture
def session(tmp_path):
    """(browser, elsewhere): a stand-in RunningBrowser whose user is this process's, and a folder off its tree."""
    temp = tmp_path / "bb-session"
    (temp / "downloads").mkdir(parents=True)
    (temp / "uploads").mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "secret.txt").write_bytes(SECRET)
    browser = SimpleNamespace(downloads_dir=temp / "downloads", uploads_dir=temp / "uploads",
                              user=SimpleNamespace(uid=os.geteuid(), gid=os.getegid()))
    return browser, elsewhere


def link_folder(folder: Path, target: Path) -> None:
    """What the browser's user could do: its own folder gone, a link in its place."""
    folder.rename(folder.with_name(folder.name + ".old"))
    folder.symlink_to(target, target_is_directory=True)


def request(sock: socket.socket) -> tuple[h11.Connection, h11.Request]:
    parser = h11.Connection(h11.SERVER)
    while True:
        event = parser.next_event()
        if event is h11.NEED_DATA:
            parser.receive_data(sock.recv(4096))
        elif isinstance(event, h11.Request):
            return parser, event


def door(browser, method: str, rest: str, body: bytes = b"", between=None) -> tuple[int, bytes]:
    """One request through FileDoor.serve: (status, body). ``between`` runs once the door is writing half the body."""
    ours, theirs = socket.socketpair()
    half = len(body) // 2 if between else len(body)
    theirs.sendall(f"{method} /session/S/files/{rest} HTTP/1.1\r\nHost: w\r\nContent-Length: {len(body)}\r\n\r\n"
                   .encode() + body[:half])
    parser, event = request(ours)
    serving = threading.Thread(target=FileDoor(1 << 20).serve, args=(ours, parser, event, rest, browser, "S"))
    serving.start()
    if between:
        deadline = time.monotonic() + 10
        while not any(n.startswith(".upload-") for n in os.listdir(browser.uploads_dir)):
            assert time.monotonic() < deadline, "the door never started the upload"
            time.sleep(0.01)
        between()
        theirs.sendall(body[half:])
    serving.join(10)
    assert not serving.is_alive(), "the door hung"
    ours.close()
    answer = b""
    while chunk := theirs.recv(65536):
        answer += chunk
    theirs.close()
    head, _, content = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), content


def test_plain_folders_still_work_both_ways(session):
    browser, _ = session
    (browser.downloads_dir / "report.pdf").write_bytes(b"%PDF" * 10)
    status, body = door(browser, "GET", "downloads")
    listing = json.loads(body)
    assert status == 200 and [(d["name"], d["size"]) for d in listing["downloads"]] == [("report.pdf", 40)]
    assert listing["bytes"] == 40
    assert door(browser, "GET", "downloads/report.pdf") == (200, b"%PDF" * 10)
    status, body = door(browser, "PUT", "uploads/in.txt", b"hello")
    stored = browser.uploads_dir / "in.txt"
    assert status == 201 and json.loads(body) == {"path": str(stored), "name": "in.txt", "size": 5}
    assert stored.read_bytes() == b"hello" and stored.stat().st_mode & 0o777 == 0o600
    assert sorted(os.listdir(browser.uploads_dir)) == ["in.txt"]


def test_a_linked_downloads_folder_lists_nothing_and_serves_404(session):
    browser, elsewhere = session
    link_folder(browser.downloads_dir, elsewhere)
    status, body = door(browser, "GET", "downloads")
    assert status == 200 and json.loads(body) == {"downloads": [], "bytes": 0}
    status, body = door(browser, "GET", "downloads/secret.txt")
    assert status == 404 and SECRET not in body and json.loads(body)["code"] == 404
    assert list_folder(browser.downloads_dir) == [] and folder_bytes(browser.downloads_dir) == 0


def test_a_linked_uploads_folder_stores_nothing_where_it_points(session):
    browser, elsewhere = session
    link_folder(browser.uploads_dir, elsewhere)
    status, body = door(browser, "PUT", "uploads/planted.sh", b"#!/bin/sh\necho owned\n")
    assert status == 409 and "nothing was stored" in json.loads(body)["message"]
    assert sorted(os.listdir(elsewhere)) == ["secret.txt"]


def test_a_linked_session_temp_folder_is_not_followed_either(session, tmp_path):
    """The temp folder holding both sits in the sticky /tmp and is the browser user's: it could be renamed away
    and replaced by a link to a tree with a ``downloads`` and ``uploads`` of that user's own."""
    browser, elsewhere = session
    (elsewhere / "downloads").mkdir()
    (elsewhere / "uploads").mkdir()
    (elsewhere / "downloads" / "secret.txt").write_bytes(SECRET)
    link_folder(browser.downloads_dir.parent, elsewhere)
    assert json.loads(door(browser, "GET", "downloads")[1]) == {"downloads": [], "bytes": 0}
    assert door(browser, "GET", "downloads/secret.txt")[0] == 404
    assert door(browser, "PUT", "uploads/x.txt", b"x")[0] == 409
    assert os.listdir(elsewhere / "uploads") == []


def test_linked_and_special_files_in_a_real_folder_are_neither_listed_nor_served(session):
    browser, elsewhere = session
    (browser.downloads_dir / "secret.txt").symlink_to(elsewhere / "secret.txt")
    os.mkfifo(browser.downloads_dir / "pipe.bin")  # opened without O_NONBLOCK, a FIFO would hang the door
    (browser.downloads_dir / "real.txt").write_bytes(b"mine")
    assert [d["name"] for d in json.loads(door(browser, "GET", "downloads")[1])["downloads"]] == ["real.txt"]
    assert door(browser, "GET", "downloads/secret.txt")[0] == 404
    assert door(browser, "GET", "downloads/pipe.bin")[0] == 404


def test_an_upload_never_writes_through_a_link_planted_under_its_name(session):
    browser, elsewhere = session
    (browser.uploads_dir / "secret.txt").symlink_to(elsewhere / "secret.txt")
    status, body = door(browser, "PUT", "uploads/secret.txt", b"overwritten?")
    assert status == 201 and json.loads(body)["name"] == "secret (1).txt"
    assert (elsewhere / "secret.txt").read_bytes() == SECRET


def test_an_upload_lands_in_the_folder_it_opened_even_if_a_link_replaces_it_midway(session):
    """Create, write, chown and rename are relative to the folder's descriptor, not its path."""
    browser, elsewhere = session
    status, body = door(browser, "PUT", "uploads/late.txt", b"0123456789" * 100,
                        between=lambda: link_folder(browser.uploads_dir, elsewhere))
    assert status == 201
    assert (browser.uploads_dir.with_name("uploads.old") / "late.txt").read_bytes() == b"0123456789" * 100
    assert sorted(os.listdir(elsewhere)) == ["secret.txt"]


@ROOT_ONLY
def test_a_folder_or_file_of_another_owner_is_not_used(session):
    """A folder not the browser user's, or a file not the folder owner's (a hard link to someone else's file)."""
    browser, _ = session
    (browser.downloads_dir / "theirs.txt").write_bytes(SECRET)
    os.chown(browser.downloads_dir / "theirs.txt", 65534, 65534)
    (browser.downloads_dir / "mine.txt").write_bytes(b"mine")
    assert [d["name"] for d in json.loads(door(browser, "GET", "downloads")[1])["downloads"]] == ["mine.txt"]
    assert door(browser, "GET", "downloads/theirs.txt")[0] == 404
    os.chown(browser.uploads_dir, 65534, 65534)
    assert door(browser, "PUT", "uploads/x.txt", b"x")[0] == 409
    assert os.listdir(browser.uploads_dir) == []


def test_the_archive_saves_nothing_from_a_linked_downloads_folder(session, tmp_path):
    browser, elsewhere = session
    store = tmp_path / "store"
    link_folder(browser.downloads_dir, elsewhere)
    with pytest.raises(UnsafeFolder):
        DownloadArchive(LocalSnapshotStore(store)).save("S", browser.downloads_dir)
    assert not store.exists() or not any(store.rglob("*secret*"))


def test_the_archive_copies_real_files_and_skips_linked_ones(session, tmp_path):
    browser, elsewhere = session
    (browser.downloads_dir / "secret.txt").symlink_to(elsewhere / "secret.txt")
    (browser.downloads_dir / "real.bin").write_bytes(b"r" * 1000)
    (browser.downloads_dir / "half.bin.crdownload").write_bytes(b"h")
    store = tmp_path / "store"
    saved = DownloadArchive(LocalSnapshotStore(store)).save("S", browser.downloads_dir, owner=os.geteuid())
    assert [(e["name"], e["size"], e["state"]) for e in saved] == [("real.bin", 1000, "complete")]
    assert sorted(p.name for p in (store / "downloads" / "S").iterdir()) == ["real.bin"]
    assert (store / "downloads" / "S" / "real.bin").read_bytes() == b"r" * 1000
    assert DownloadArchive(LocalSnapshotStore(store)).save("T", tmp_path / "missing" / "downloads") == []
