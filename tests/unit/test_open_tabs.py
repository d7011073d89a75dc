"""The tabs a move opens again (tasks/session_watch.py ``OpenTabs``): those open when the worker was told to stop,
whichever of the platform's signals, the browser's or the worker's, arrived first."""
from __future__ import annotations

from tasks.running_browser import SIGNAL_SPREAD
from tasks.session_watch import OpenTabs


def tabs(*urls: str) -> OpenTabs:
    open_tabs = OpenTabs()
    for number, url in enumerate(urls):
        open_tabs.opened(f"T{number}", url)
    return open_tabs


def test_tabs_are_listed_oldest_first_with_their_latest_urls():
    open_tabs = tabs("about:blank", "https://b.example/")
    open_tabs.changed("T0", "https://a.example/")
    open_tabs.changed("unknown", "https://c.example/")
    assert open_tabs.urls() == ["https://a.example/", "https://b.example/"]


def test_a_tab_closed_before_the_hold_stays_closed():
    open_tabs = tabs("https://a.example/", "https://b.example/")
    assert open_tabs.closed("T0", at=100.0) is True
    assert open_tabs.closed("T0", at=100.5) is False  # a second close is not news
    assert open_tabs.urls() == ["https://b.example/"]
    open_tabs.hold(since=100.0 + 0.1)
    assert open_tabs.urls() == ["https://b.example/"]


def test_the_closes_a_shutdown_made_before_the_worker_heard_its_signal_are_taken_back():
    """Chromium got the SIGTERM first and closed both tabs; the worker's handler ran a moment later."""
    open_tabs = tabs("https://a.example/", "https://b.example/")
    open_tabs.closed("T1", at=200.0)
    open_tabs.closed("T0", at=200.1)
    assert open_tabs.urls() == []
    open_tabs.hold(since=200.5 - SIGNAL_SPREAD)
    assert open_tabs.urls() == ["https://a.example/", "https://b.example/"]


def test_once_held_nothing_closes_or_changes_but_new_tabs_are_listed():
    open_tabs = tabs("https://a.example/")
    open_tabs.hold(since=0.0)
    assert open_tabs.closed("T0", at=300.0) is True  # still reported: the session's log says the tab closed
    open_tabs.changed("T0", "about:blank")
    open_tabs.opened("T9", "https://new.example/")
    assert open_tabs.urls() == ["https://a.example/", "https://new.example/"]


def test_closes_older_than_the_spread_are_forgotten():
    open_tabs = tabs(*(f"https://{n}.example/" for n in range(3)))
    open_tabs.closed("T0", at=10.0)
    open_tabs.closed("T1", at=10.0 + SIGNAL_SPREAD + 1)
    open_tabs.hold(since=10.0)
    assert open_tabs.urls() == ["https://1.example/", "https://2.example/"]
