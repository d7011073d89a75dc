"""Pages the tests' browsers load, served by the test itself on 127.0.0.1."""
from __future__ import annotations

import html
import random
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

TALL_PAGE = """<!doctype html><title>tall</title><body style="margin:0">
<canvas id="c" width="1600" height="{height}"></canvas>
<script>
const c = document.getElementById('c'), g = c.getContext('2d');
const img = g.createImageData(c.width, c.height); let x = 12345;
for (let i = 0; i < img.data.length; i++) {{ x = (Math.imul(x, 1103515245) + 12345) | 0; img.data[i] = i % 4 == 3 ? 255 : (x >>> 16) & 255; }}
g.putImageData(img, 0, 0);
</script></body>"""


#: Reads and (with ?write=VALUE) writes every kind of browser storage a context must keep.
STATE_PAGE = """<!doctype html><title>state</title><script>
async function idb(value) {
  const db = await new Promise((ok, err) => { const r = indexedDB.open('bb', 1);
    r.onupgradeneeded = () => r.result.createObjectStore('kv'); r.onsuccess = () => ok(r.result); r.onerror = err; });
  const tx = db.transaction('kv', value === undefined ? 'readonly' : 'readwrite'), kv = tx.objectStore('kv');
  if (value !== undefined) kv.put(value, 'marker');
  const got = await new Promise((ok) => { const r = kv.get('marker'); r.onsuccess = () => ok(r.result ?? null); });
  await new Promise((ok) => { tx.oncomplete = ok; });
  db.close(); return got;
}
async function state(write) {
  if (write !== undefined) { localStorage.setItem('marker', write); document.cookie = 'js_cookie=' + write + '; path=/; max-age=86400'; }
  return { local: localStorage.getItem('marker'), idb: await idb(write), cookie: document.cookie };
}
</script>"""


def download_bytes(size: int) -> bytes:
    """The bytes ``/download?size=`` serves: the same for the same size, different everywhere inside."""
    return random.Random(size).randbytes(size)


#: What a live view must show and pass input to: a red page, a blue button over its top-left quarter that
#: counts clicks, and an input over the left half of its lower part.
LIVE_PAGE = """<!doctype html><title>live</title>
<body style="margin:0;height:100vh;background:rgb(220,30,40)">
<button id="b" style="position:fixed;left:0;top:0;width:50vw;height:50vh;border:0;background:rgb(30,60,220)">b</button>
<input id="t" style="position:fixed;left:0;top:60vh;width:50vw;height:30vh;border:0;font-size:40px">
<script>window.clicks = 0; document.getElementById('b').onclick = () => { window.clicks += 1; };</script>"""


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.server.hits.append(url.path)  # type: ignore[attr-defined]
        self.server.heard.append((self.path, dict(self.headers)))  # type: ignore[attr-defined]
        if url.path == "/tall":
            return self._html(TALL_PAGE.format(height=int(query.get("height", 3000))))
        if url.path == "/echo-cookies":
            return self._html(f"<title>cookies</title><pre id=c>{self.headers.get('Cookie', '')}</pre>")
        if url.path == "/set-cookie":
            persistent = "; Max-Age=86400" if "persistent" in query else ""
            flags = f"; Path=/{'; HttpOnly' if 'httponly' in query else ''}{persistent}"
            extra = [("Set-Cookie", f"{query['name']}={query['value']}{flags}")]
            return self._html("<title>set</title>ok", extra)
        if url.path == "/with-image":
            return self._html(f'<!doctype html><title>image</title><img src="/pixel.png?{html.escape(query["tag"])}">')
        if url.path == "/live":
            return self._html(LIVE_PAGE)
        if url.path == "/state":
            return self._html(STATE_PAGE)
        if url.path == "/status":
            return self._html(f"<title>status</title>{query['code']}", status=int(query["code"]))
        if url.path == "/frames":
            frames = "".join(f'<iframe src="{html.escape(src)}"></iframe>' for src in parse_qs(url.query).get("src", []))
            return self._html(f"<!doctype html><title>frames</title>{frames}")
        if url.path == "/upload":
            return self._html("<!doctype html><title>upload</title><input type=file id=f multiple>")
        if url.path == "/download":
            body = download_bytes(int(query.get("size", 1000)))
            return self._send(body, [("Content-Type", "application/octet-stream"),
                                     ("Content-Disposition", f'attachment; filename="{query.get("name", "file.bin")}"')])
        if url.path == "/hold":
            # Answers only once the test releases it: keeps a navigation (and the launch waiting on it) going.
            self.server.released.wait(60)  # type: ignore[attr-defined]
            return self._html("<title>held</title>")
        title = query.get("title", "hello")
        return self._html(f"<!doctype html><title>{title}</title><h1>{title}</h1>")

    def _send(self, body: bytes, headers: list[tuple[str, str]]) -> None:
        self.send_response(200)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:  # a download the browser cancelled
            pass

    def _html(self, body: str, headers: list[tuple[str, str]] = (), status: int = 200) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class PageServer:
    def __init__(self, host: str = "127.0.0.1") -> None:
        """``host``: the address to serve on (another test host's, in tests/hosts)."""
        self.host = host
        self.httpd = ThreadingHTTPServer((host, 0), _Handler)
        self.httpd.hits = []  # type: ignore[attr-defined]
        #: Each request's path with its query, and its headers as they arrived.
        self.httpd.heard = []  # type: ignore[attr-defined]
        self.httpd.released = threading.Event()  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.httpd.server_address[1]}"

    @property
    def hits(self) -> list[str]:
        return self.httpd.hits  # type: ignore[attr-defined]

    def headers_of(self, path: str) -> list[dict[str, str]]:
        """The headers of every request for ``path`` (with its query), as the server received them."""
        return [headers for heard, headers in self.httpd.heard if heard == path]  # type: ignore[attr-defined]

    def hold(self) -> None:
        """From now on ``/hold`` answers only after :meth:`release`."""
        self.httpd.released.clear()  # type: ignore[attr-defined]

    def release(self) -> None:
        self.httpd.released.set()  # type: ignore[attr-defined]

    def close(self) -> None:
        self.release()
        self.httpd.shutdown()
        self.httpd.server_close()


@contextmanager
def html_site(render: Callable[[str, dict[str, str]], str]) -> Iterator[str]:
    """A site of a module's own pages, each GET answered ``render(path, query)`` as HTML; yields its base URL.

    For pages no other module needs (a broken fetch, a form to record, a busy page for a benchmark), so they stay
    beside what they test instead of growing :class:`PageServer`'s list.
    """

    class Handler(_Handler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            self._html(render(url.path, {k: v[0] for k, v in parse_qs(url.query).items()}))

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
