"""Pages the tests' browsers load, served by the test itself on 127.0.0.1."""
from __future__ import annotations

import threading
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


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.server.hits.append(url.path)  # type: ignore[attr-defined]
        if url.path == "/tall":
            return self._html(TALL_PAGE.format(height=int(query.get("height", 3000))))
        if url.path == "/echo-cookies":
            return self._html(f"<title>cookies</title><pre id=c>{self.headers.get('Cookie', '')}</pre>")
        if url.path == "/set-cookie":
            extra = [("Set-Cookie", f"{query['name']}={query['value']}; Path=/{'; HttpOnly' if 'httponly' in query else ''}")]
            return self._html("<title>set</title>ok", extra)
        title = query.get("title", "hello")
        return self._html(f"<!doctype html><title>{title}</title><h1>{title}</h1>")

    def _html(self, body: str, headers: list[tuple[str, str]] = ()) -> None:
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class PageServer:
    def __init__(self) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.hits = []  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def hits(self) -> list[str]:
        return self.httpd.hits  # type: ignore[attr-defined]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
