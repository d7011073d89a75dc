"""A person's browser, for the pages the broker serves to people (live view, dashboard).

Playwright launches its own headless Chromium with the flags every Chromium here
needs; it is not a session and the broker knows nothing of it. Playwright ends it
(and its temporary profile) when the test closes it.
"""
from __future__ import annotations

import base64
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import Browser, Page

from tasks.chromium_flags import BASE_FLAGS
from tests.support.processes import TEST_FLAGS

CHROMIUM = "/usr/bin/chromium"
#: Repaints every animation frame with a new colour: the screencast has something to send all the time.
ANIMATE = """(() => { let n = 0; const step = () => {
  document.body.style.background = `rgb(${n % 256}, ${(n * 7) % 256}, 120)`; n += 1; requestAnimationFrame(step); };
  requestAnimationFrame(step); })()"""


def person_flags() -> list[str]:
    """The flags every Chromium here needs, and no lookups of outside hosts."""
    return [*BASE_FLAGS, "--disable-crash-reporter", TEST_FLAGS.replace('"', "")]


@contextmanager
def own_temp() -> Iterator[dict[str, str]]:
    """The environment for a Chromium a test launches itself: a TMPDIR of its own, removed afterwards.

    Chromium puts its singleton socket in an ``org.chromium.Chromium.*`` folder under TMPDIR and leaves it
    there when it is ended from outside; in the shared /tmp the suite left three or more per run. The folder
    is short-named because a socket's path must fit in 108 bytes (pytest's ``tmp_path`` often does not).
    """
    with tempfile.TemporaryDirectory(prefix="person-") as temp:
        yield {**os.environ, "TMPDIR": temp}


def wait_frames(page: Page, more_than: int = 0, timeout: float = 30) -> int:
    """Waits until the viewer has shown more than ``more_than`` frames; how many it has."""
    page.wait_for_function("n => window.liveView && window.liveView.frames > n", arg=more_than, timeout=timeout * 1000)
    return page.evaluate("window.liveView.frames")


#: Decodes a PNG with the person's browser's own decoder and reads pixels (no image library needed).
READ_PIXELS = """async ([png, points]) => {
  const image = new Image();
  image.src = 'data:image/png;base64,' + png;
  await image.decode();
  const canvas = document.createElement('canvas');
  canvas.width = image.width; canvas.height = image.height;
  const context = canvas.getContext('2d');
  context.drawImage(image, 0, 0);
  return points.map(([x, y]) => Array.from(context.getImageData(x, y, 1, 1).data.slice(0, 3)));
}"""


def pixels(browser: Browser, png: bytes, points: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """The colours of a screenshot at ``points`` (x, y in the picture's pixels)."""
    page = browser.new_page()
    try:
        return [tuple(rgb) for rgb in page.evaluate(READ_PIXELS, [base64.b64encode(png).decode(), points])]
    finally:
        page.close()


def near(colour: tuple[int, int, int], expected: tuple[int, int, int], tolerance: int = 40) -> bool:
    """JPEG frames shift colours a little."""
    return all(abs(a - b) <= tolerance for a, b in zip(colour, expected))
