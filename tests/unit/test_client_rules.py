"""The relay's client rules (proxy/download_rewrite.py) read frames as Chromium does: every variant Chromium accepts is
rewritten or refused, never passed on as it came. One test starts a real Chromium to show the variants matter."""
from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from proxy.download_rewrite import PROTOCOL_ERROR, REFUSED_CODE, UNSUPPORTED_DATA, DownloadRewriter
from proxy.relay import RelayConnection
from tests.support.viewer import own_temp
from tests.unit.test_files import client_frame, read_frames

FOLDER = "/tmp/bb-0123456789abcdef/downloads"
CHROMIUM = "/usr/bin/chromium"
#: What Python's json takes as whitespace, and what Chromium's crdtp parser takes besides (json.cc IsSpaceOrNewLine).
PYTHON_SPACE, CHROMIUM_ONLY_SPACE = [" ", "\t", "\r", "\n"], ["\f", "\v"]
DOWNLOAD_TOKENS = ['{', '"id"', ':', '5', ',', '"method"', ':', '"Browser.setDownloadBehavior"', ',', '"params"', ':',
                   '{', '"behavior"', ':', '"allow"', ',', '"downloadPath"', ':', '"/etc/cron.d"', '}', '}']


def spaced(tokens: list[str], space: str, gap: int | None) -> bytes:
    """The tokens with ``space`` at one gap (0: before the first, len: after the last), or at every gap if None."""
    parts = []
    for i, token in enumerate(tokens):
        parts.append(space if gap is None or gap == i else "")
        parts.append(token)
    parts.append(space if gap is None or gap == len(tokens) else "")
    return "".join(parts).encode()


def outcome(wire: bytes, rewriter: DownloadRewriter | None = None, read: int = 0) -> tuple[str, dict | None]:
    """``("sent", message)``, ``("refused", reply)`` or ``("closed", None)``; fails if the call went on unchanged."""
    rewriter = rewriter or DownloadRewriter(FOLDER)
    out = b""
    for i in range(0, len(wire), read or len(wire)):
        out += rewriter.feed(memoryview(bytearray(wire[i:i + (read or len(wire))])))
    sent = [payload for opcode, payload in read_frames(out) if opcode & 0x0F in (0, 1)]
    if rewriter.close_with:
        assert not sent
        return "closed", None
    if rewriter.replies:
        assert not sent, "a refused call must not reach Chromium"
        [reply] = rewriter.replies
        return "refused", json.loads(reply)
    [payload] = sent
    assert out != wire or b"/etc/cron.d" not in payload, "passed on unchanged"
    return "sent", json.loads(payload)


def assert_rewritten_or_refused(wire: bytes, call_id: int = 5, read: int = 0) -> str:
    kind, message = outcome(wire, read=read)
    if kind == "sent":
        assert message["params"] == {"behavior": "allow", "downloadPath": FOLDER}
    else:
        assert message["id"] in (call_id, 0) and message["error"]["code"] == REFUSED_CODE
        assert message["error"]["message"].startswith("refused by Browser Broker: ")
    return kind


@pytest.mark.parametrize("space", PYTHON_SPACE + CHROMIUM_ONLY_SPACE, ids=repr)
@pytest.mark.parametrize("gap", [*range(len(DOWNLOAD_TOKENS) + 1), None])
def test_whitespace_anywhere_around_a_download_call_is_rewritten_or_refused(space, gap):
    kind = assert_rewritten_or_refused(client_frame(spaced(DOWNLOAD_TOKENS, space, gap)))
    assert kind == ("sent" if space in PYTHON_SPACE else "refused")


def test_a_form_feed_after_the_call_is_answered_with_its_id():
    """The bypass the notes describe: Python's json refuses ``{...}\\f``, Chromium runs it."""
    kind, reply = outcome(client_frame(spaced(DOWNLOAD_TOKENS, "\f", len(DOWNLOAD_TOKENS))))
    assert kind == "refused" and reply["id"] == 5 and "strict JSON" in reply["error"]["message"]


@pytest.mark.parametrize("payload, kind", [
    (rb'{"id":5,"method":"Browser.setDownload\u0042ehavior","params":{"behavior":"allow",'
     rb'"downloadPath":"/etc/cron.d"}}', "sent"),
    (rb'{"id":5,"\u006dethod":"\u0042\u0072owser.setDownloadBehavior","params":{"behavior":"allow",'
     rb'"downloadPath":"/etc/cron.d"}}', "sent"),
    (rb'{"id":5,"method":"Page.set\u0044ownload\u0042ehavior","params":{"behavior":"allowAndName",'
     rb'"\u0064ownloadPath":"/etc/cron.d"}}', "sent"),
    (rb'{"id":5,"method":"\u0054ethering.bind","params":{"port":9999}}', "refused"),
    (rb'{"id":5,"method":"Target.expose\u0044evToolsProtocol","params":{"targetId":"T"}}', "refused"),
    (rb'{"id":5,"method":"Target.create\u0042rowserContext","params":{"proxyServer":"socks5://127.0.0.1:1"}}',
     "refused"),
    (rb'{"id":5,"method":"Target.createBrowserContext","params":{"\u0070roxyServer":"http://127.0.0.1:1"}}', "refused"),
])
def test_escaped_method_and_key_names_are_read_as_chromium_decodes_them(payload, kind):
    got, message = outcome(client_frame(payload))
    assert got == kind
    if kind == "sent":
        assert message["params"]["downloadPath"] == FOLDER and message["params"]["behavior"] == "allow"
    else:
        assert message["id"] == 5


@pytest.mark.parametrize("payload", [
    b'{"id":5,"method":"Runtime.evaluate","method":"Browser.setDownloadBehavior","params":{"behavior":"allow",'
    b'"downloadPath":"/etc/cron.d"}}',
    b'{"id":5,"method":"Browser.setDownloadBehavior","method":"Runtime.evaluate","params":{"behavior":"allow",'
    b'"downloadPath":"/etc/cron.d"}}',
    b'{"id":5,"method":"Browser.setDownloadBehavior","params":{"behavior":"allow","downloadPath":"/x",'
    b'"downloadPath":"/etc/cron.d"}}',
    b'\xef\xbb\xbf{"id":5,"method":"Browser.setDownloadBehavior","params":{"behavior":"allow","downloadPath":"/etc"}}',
    b'{"id":5,"method":"Browser.setDownloadBehavior","params":{"behavior":"allow","downloadPath":"/etc"},"x":NaN}',
    b'{"id":5,"method":"Browser.setDownloadBehavior","params":{"behavior":"allow","downloadPath":"/etc\xff"}}',
    b'{"id":5,"method":"Browser.setDownloadBehavior","params":{"behavior":"allow","downloadPath":"/etc\\v"}}',
    b'{"id":5,"method":"Browser.setDownloadBehavior","params":{"behavior":"allow","downloadPath":"/etc"}} // x',
    b'{"id":5.0,"method":"Browser.setDownloadBehavior","params":{"behavior":"allow","downloadPath":"/etc"}}',
    b'{"id":true,"method":"Browser.setDownloadBehavior","params":{"behavior":"allow","downloadPath":"/etc"}}',
    b'{"id":4294967301,"method":"Browser.setDownloadBehavior","params":{"behavior":"allow","downloadPath":"/etc"}}',
    b'[{"id":5,"method":"Browser.setDownloadBehavior","params":{"behavior":"allow","downloadPath":"/etc"}}]',
    b'{"id":5,"method":["Browser.setDownloadBehavior"],"params":{"behavior":"allow","downloadPath":"/etc"}}',
    b'{"id":5,"method":"Runtime.evaluate","params":{"x":' + b'[' * 100_000 + b']' * 100_000 + b',"y":"\\u0041"}}',
], ids=["duplicate method, rule last", "duplicate method, rule first", "duplicate path", "BOM", "NaN",
        "invalid UTF-8", "\\v escape", "comment", "float id", "bool id", "id past int32", "array",
        "method not a string", "deep"])
def test_what_cannot_be_read_strictly_is_refused(payload):
    kind, reply = outcome(client_frame(payload))
    assert kind == "refused" and reply["error"]["code"] == REFUSED_CODE


@pytest.mark.parametrize("space", CHROMIUM_ONLY_SPACE, ids=repr)
@pytest.mark.parametrize("read", [1, 3, 1000])
def test_fragmented_messages_with_chromium_whitespace_are_refused_at_any_split(space, read):
    call = spaced(DOWNLOAD_TOKENS, space, None)
    wire = (client_frame(call[:10], fin=False) + client_frame(b"", opcode=9)
            + client_frame(call[10:40], fin=False, opcode=0) + client_frame(call[40:], opcode=0))
    rewriter = DownloadRewriter(FOLDER)
    out = b"".join(rewriter.feed(wire[i:i + read]) for i in range(0, len(wire), read))
    assert [opcode for opcode, _ in read_frames(out)] == [0x89]  # the ping passes, the message does not
    assert json.loads(rewriter.replies[0])["id"] == 5


def test_a_lone_continuation_frame_is_a_whole_message_to_chromium_so_it_is_read_as_one():
    """net/server/web_socket_encoder.cc treats opcode 0 like text: a FIN continuation with no message open runs."""
    call = b'{"id":5,"method":"Browser.setDownloadBehavior","params":{"behavior":"allow","downloadPath":"/etc/cron.d"}}'
    assert assert_rewritten_or_refused(client_frame(call, opcode=0)) == "sent"
    assert assert_rewritten_or_refused(client_frame(call + b"\f", opcode=0)) == "refused"


@pytest.mark.parametrize("opcode", [2, 3, 7, 0xB, 0xF])
def test_binary_and_reserved_frames_close_the_client_and_nothing_from_them_on_is_sent(opcode):
    call = b'{"id":5,"method":"Browser.setDownloadBehavior","params":{"behavior":"allow","downloadPath":"/etc/cron.d"}}'
    before = client_frame(b'{"id":1,"method":"Runtime.evaluate","params":{"expression":"1"}}')
    rewriter = DownloadRewriter(FOLDER)
    out = rewriter.feed(before + client_frame(call, opcode=opcode) + client_frame(call))
    assert out == before and rewriter.close_with[0] == UNSUPPORTED_DATA
    assert rewriter.feed(client_frame(call)) == b""


def test_a_frame_with_reserved_bits_closes_the_client():
    """RSV1 is permessage-deflate's bit; no extension is agreed on either leg, so Chromium cannot inflate it either."""
    call = b'{"id":5,"method":"Browser.setDownloadBehavior","params":{"behavior":"allow","downloadPath":"/etc"}}'
    frame = bytearray(client_frame(call))
    frame[0] |= 0x40
    rewriter = DownloadRewriter(FOLDER)
    assert rewriter.feed(bytes(frame)) == b"" and rewriter.close_with[0] == PROTOCOL_ERROR


def wrapped(inner: bytes | str, depth: int = 1) -> bytes:
    message = inner if isinstance(inner, str) else inner.decode()
    for level in range(depth):
        message = json.dumps({"id": 80 + level, "method": "Target.sendMessageToTarget",
                              "params": {"sessionId": f"S{level}", "message": message}})
    return message.encode()


@pytest.mark.parametrize("inner, kind", [
    (spaced(DOWNLOAD_TOKENS, "", None), "sent"),
    (spaced(DOWNLOAD_TOKENS, "\f", len(DOWNLOAD_TOKENS)), "refused"),
    (spaced(DOWNLOAD_TOKENS, "\v", 3), "refused"),
    (b'{"id":5,"method":"\\u0054ethering.bind","params":{"port":9999}}', "refused"),
    (b'{"id":5,"method":"Tethering.bind","params":{"port":9999}}', "refused"),
    (b'{"id":5,"method":"Target.exposeDevToolsProtocol","params":{"targetId":"T"}}', "refused"),
    (b'{"id":5,"method":"Target.createBrowserContext","params":{"proxyBypassList":"<-loopback>"}}', "refused"),
    (b'{"id":5,"method":"Runtime.evaluate","method":"Browser.setDownloadBehavior","params":{"behavior":"deny"}}',
     "refused"),
])
@pytest.mark.parametrize("depth", [1, 2])
def test_rules_hold_inside_send_message_to_target(inner, kind, depth):
    got, message = outcome(client_frame(wrapped(inner, depth)))
    assert got == kind
    if kind == "refused":
        assert message["id"] == 80 + depth - 1
        return
    for _ in range(depth):
        message = json.loads(message["params"]["message"])
    assert message["params"] == {"behavior": "allow", "downloadPath": FOLDER}


@pytest.mark.parametrize("call", [
    {"method": "Tethering.bind", "params": {"port": 9222}},
    {"method": "Tethering.unbind", "params": {"port": 9222}},
    {"method": "Target.exposeDevToolsProtocol", "params": {"targetId": "T", "bindingName": "cdp"}},
    {"method": "Target.createBrowserContext", "params": {"proxyServer": "http://10.0.0.1:3128"}},
    {"method": "Target.createBrowserContext", "params": {"proxyServer": "http://1.2.3.4:1", "proxyBypassList": "*"}},
    {"method": "Target.createBrowserContext", "params": {"disposeOnDetach": True, "proxyBypassList": "<-loopback>"}},
])
def test_guarded_methods_are_answered_with_an_error_for_their_id_and_session(call):
    kind, reply = outcome(client_frame(json.dumps({"id": 9, "sessionId": "FLAT", **call}).encode()))
    assert kind == "refused"
    assert reply["id"] == 9 and reply["sessionId"] == "FLAT" and reply["error"]["code"] == -32600


@pytest.mark.parametrize("call", [
    {"id": 9, "method": "Target.createBrowserContext", "params": {"disposeOnDetach": True}},
    {"id": 9, "method": "Runtime.evaluate", "params": {"expression": "'caf\\u00e9 Tethering'"}},
    {"id": 9, "method": "Target.getBrowserContexts"},
])
def test_calls_that_only_look_guarded_pass_byte_for_byte(call):
    wire = client_frame(json.dumps(call).encode())
    assert DownloadRewriter(FOLDER).feed(wire) == wire


def test_without_a_download_folder_a_download_is_refused_and_deny_passes():
    allow = client_frame(spaced(DOWNLOAD_TOKENS, "", None))
    kind, reply = outcome(allow, DownloadRewriter(None))
    assert kind == "refused" and reply["id"] == 5
    deny = {"id": 6, "method": "Browser.setDownloadBehavior", "params": {"behavior": "deny"}}
    assert outcome(client_frame(json.dumps(deny).encode()), DownloadRewriter(None)) == ("sent", deny)


# --- The relay writes the answer between Chromium's frames -------------------------------------------------------


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Unmasked (server→client) frames, whole ones only."""
    frames = []
    while len(data) >= 2:
        size, offset = data[1] & 0x7F, 2
        if size == 126:
            size, offset = struct.unpack_from("!H", data, 2)[0], 4
        elif size == 127:
            size, offset = struct.unpack_from("!Q", data, 2)[0], 10
        if len(data) < offset + size:
            break
        frames.append((data[0], data[offset:offset + size]))
        data = data[offset + size:]
    return frames


def receive_for(sock: socket.socket, seconds: float) -> bytes:
    sock.settimeout(0.05)
    got, deadline = b"", time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(1 << 20)
        except TimeoutError:
            continue
        if not chunk:
            break
        got += chunk
    return got


@pytest.fixture
def relay():
    """A RelayConnection between two socket pairs, its pumps on plain threads: (client end, browser end, conn)."""
    client_end, relay_client = socket.socketpair()
    browser_end, relay_browser = socket.socketpair()
    conn = RelayConnection("s", "c", relay_client, relay_browser, ping_interval=30, downloads=FOLDER)
    pumps = [threading.Thread(target=conn._client_to_browser, daemon=True),
             threading.Thread(target=conn._browser_to_client, daemon=True)]
    for pump in pumps:
        pump.start()
    yield client_end, browser_end, conn
    client_end.close()
    browser_end.close()
    for pump in pumps:
        pump.join(5)
    relay_client.close()
    relay_browser.close()


def test_the_relay_answers_a_refused_call_between_two_of_chromiums_frames(relay):
    client_end, browser_end, _ = relay
    big = bytes([0x81, 127]) + struct.pack("!Q", 300_000) + b"x" * 300_000
    browser_end.sendall(big[:100_000])
    assert receive_for(client_end, 0.3) == big[:100_000]
    client_end.sendall(client_frame(spaced(DOWNLOAD_TOKENS, "\f", len(DOWNLOAD_TOKENS))))
    assert receive_for(client_end, 0.3) == b"", "an answer in the middle of Chromium's frame would corrupt it"
    browser_end.sendall(big[100_000:] + bytes([0x81, 2]) + b"{}")
    frames = server_frames(big[:100_000] + receive_for(client_end, 0.5))
    assert frames[0] == (0x81, b"x" * 300_000) and len(frames) == 3 and (0x81, b"{}") in frames[1:]
    [reply] = [json.loads(payload) for _, payload in frames[1:] if payload != b"{}"]
    assert reply["id"] == 5 and reply["error"]["code"] == REFUSED_CODE
    assert receive_for(browser_end, 0.2) == b"", "nothing of the refused call reached the browser"


def test_the_relay_answers_at_once_when_chromium_is_quiet(relay):
    client_end, browser_end, _ = relay
    start = time.monotonic()
    client_end.sendall(client_frame(b'{"id":7,"method":"Tethering.bind","params":{"port":1}}'))
    client_end.settimeout(2)
    data = client_end.recv(4096)
    assert time.monotonic() - start < 1
    [(opcode, payload)] = server_frames(data)
    assert opcode == 0x81 and json.loads(payload)["id"] == 7
    ordinary = client_frame(b'{"id":8,"method":"Runtime.evaluate","params":{"expression":"1"}}')
    client_end.sendall(ordinary)
    assert receive_for(browser_end, 0.3) == ordinary


def test_the_relay_closes_a_client_that_sends_a_binary_frame(relay):
    client_end, browser_end, conn = relay
    client_end.sendall(client_frame(spaced(DOWNLOAD_TOKENS, "", None), opcode=2))
    frames = server_frames(receive_for(client_end, 1))
    assert frames[-1][0] == 0x88 and struct.unpack("!H", frames[-1][1][:2])[0] == UNSUPPORTED_DATA
    assert receive_for(browser_end, 0.3) == b""  # nothing sent, then the browser leg ended
    assert conn.rewriter.close_with[0] == UNSUPPORTED_DATA


# --- Chromium itself --------------------------------------------------------------------------------------------


@pytest.fixture
def chromium_env() -> Iterator[dict[str, str]]:
    with own_temp() as env:
        yield env


@pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason="needs a real Chromium at /usr/bin/chromium")
def test_chromium_itself_runs_calls_with_form_feeds_and_vertical_tabs(tmp_path, chromium_env):
    """Why the variants matter: Chromium answers each of these ids (Python's json refuses every one), and the
    relay's rules refuse every one instead of passing it on."""
    import websocket

    profile = tmp_path / "profile"
    proc = subprocess.Popen([CHROMIUM, "--headless=new", "--remote-debugging-port=0", f"--user-data-dir={profile}",
                             "--no-sandbox", "about:blank"], env=chromium_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    family: list[psutil.Process] = []
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            assert time.monotonic() < deadline and proc.poll() is None, "Chromium did not start"
            time.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        family = psutil.Process(proc.pid).children(recursive=True)
        ws = websocket.create_connection(f"ws://127.0.0.1:{port}{path}", suppress_origin=True, timeout=10)
        target = tmp_path / "elsewhere"
        try:
            deny = '"method":"Browser.setDownloadBehavior","params":{"behavior":"deny"}'
            calls = {
                1: '{"id":1,' + deny + '}\f',
                2: '{"id":2,' + deny + '}\v',
                3: '{\f"id"\v:\f3,\v"method"\f:\v"Browser.setDownloadBehavior",\f"params":{"behavior"\v:"deny"}\f}',
                4: json.dumps({"id": 4, "method": "Browser.setDownloadBehavior",
                               "params": {"behavior": "allow", "downloadPath": str(target)}}) + "\f",
            }
            for text in calls.values():
                with pytest.raises(ValueError):
                    json.loads(text)
                ws.send(text)
            answers = {}
            while len(answers) < len(calls):
                message = json.loads(ws.recv())
                if "id" in message:
                    answers[message["id"]] = message
            assert all(answers[i] == {"id": i, "result": {}} for i in calls), answers
        finally:
            ws.close()
        for call_id, text in calls.items():
            kind, reply = outcome(client_frame(text.encode()))
            assert kind == "refused" and reply["id"] == call_id
    finally:
        for process in [psutil.Process(proc.pid), *family]:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        proc.wait(10)
        psutil.wait_procs(family, timeout=10)
        shutil.rmtree(profile, ignore_errors=True)
