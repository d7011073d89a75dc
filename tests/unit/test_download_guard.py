"""tasks/downloads.py's guard on core.cdp, against a real headless Chromium (tests/unit/test_cdp.py's): the cap holds
even when a download finishes before its cancel lands, the race a busy worker loses now and then."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import tasks.downloads
from core.cdp import CdpConnection
from tasks.downloads import DownloadGuard
from tests.support.pages import PageServer
from tests.unit.test_cdp import browser_url  # noqa: F401 - the module's Chromium

CAP = 1024 * 1024


@dataclass
class Browser:
    """What the guard needs of a started browser."""
    url: str
    downloads_dir: Path

    def ws_url(self) -> str:
        return self.url


@pytest.fixture(scope="module")
def pages():
    server = PageServer()
    yield server
    server.close()


def download(browser_url: str, pages: PageServer, name: str, size: int) -> None:
    with CdpConnection(browser_url) as cdp:
        target = cdp.call("Target.createTarget", {"url": f"{pages.base}/page"})["targetId"]
        cdp.call("Page.navigate", {"url": f"{pages.base}/download?size={size}&name={name}"}, cdp.attach(target))


def wait_for(predicate, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_a_download_that_finishes_before_its_cancel_lands_is_removed(browser_url, pages, tmp_path, monkeypatch):  # noqa: F811
    (tmp_path / "kept.bin").write_bytes(b"k" * 1000)
    looked = threading.Event()
    real = tasks.downloads.folder_bytes

    def slow_first_look(folder):
        """The guard's first look at the folder waits until the download is complete: the race, lost."""
        if not looked.is_set():
            looked.set()
            wait_for(lambda: (tmp_path / "big.bin").exists() and (tmp_path / "big.bin").stat().st_size > CAP)
        return real(folder)

    monkeypatch.setattr(tasks.downloads, "folder_bytes", slow_first_look)
    said: list[str] = []
    guard = DownloadGuard(Browser(browser_url, tmp_path), CAP, said.append)
    try:
        download(browser_url, pages, "big.bin", CAP + 1)
        assert wait_for(lambda: said and sorted(p.name for p in tmp_path.iterdir()) == ["kept.bin"]), \
            sorted(p.name for p in tmp_path.iterdir())
        assert len(said) == 1 and "BROKER_DOWNLOAD_MAX_BYTES" in said[0]
    finally:
        guard.close()


def test_a_download_within_the_cap_is_left_alone(browser_url, pages, tmp_path):  # noqa: F811
    said: list[str] = []
    guard = DownloadGuard(Browser(browser_url, tmp_path), CAP, said.append)
    try:
        download(browser_url, pages, "small.bin", 5000)
        assert wait_for(lambda: [p.name for p in tmp_path.iterdir()] == ["small.bin"]
                        and (tmp_path / "small.bin").stat().st_size == 5000)
        time.sleep(0.5)
        assert not said
    finally:
        guard.close()
