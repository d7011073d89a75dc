"""File names and the relay's download-behaviour rewrite: pure functions, no processes."""
from __future__ import annotations

import json
import os
import re
import struct

import pytest

from core.files import MAX_NAME_BYTES, NAME_PATTERN, BadName, check_name, free_name, list_folder
from proxy.download_rewrite import DownloadRewriter, _unmask

FOLDER = "/tmp/bb-0123456789abcdef/downloads"


def client_frame(payload: bytes, fin: bool = True, opcode: int = 1) -> bytes:
    mask = os.urandom(4)
    size = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    head += bytes([0x80 | size]) if size < 126 else (bytes([0x80 | 126]) + struct.pack("!H", size) if size < 65536
                                                     else bytes([0x80 | 127]) + struct.pack("!Q", size))
    return head + mask + _unmask(payload, mask)


def read_frames(data: bytes) -> list[tuple[int, bytes]]:
    frames = []
    while data:
        opcode, size, offset = data[0], data[1] & 0x7F, 2
        if size == 126:
            size, offset = struct.unpack_from("!H", data, 2)[0], 4
        elif size == 127:
            size, offset = struct.unpack_from("!Q", data, 2)[0], 10
        mask = data[offset:offset + 4]
        frames.append((opcode, _unmask(data[offset + 4:offset + 4 + size], mask)))
        data = data[offset + 4 + size:]
    return frames


@pytest.mark.parametrize("name", ["report.pdf", "Résumé 2026.docx", "a b (1).tar.gz", "日本語.txt"])
def test_plain_names_pass_unchanged(name):
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "a\\b", ".env", "x\x00y", "x\ny", "x\x85y",
                                  "x" * 256, "é" * 128])
def test_names_that_are_not_one_plain_segment_are_refused(name):
    with pytest.raises(BadName):
        check_name(name)
    assert len(name) > MAX_NAME_BYTES or not re.fullmatch(NAME_PATTERN, name) or len(name.encode()) > MAX_NAME_BYTES


@pytest.mark.parametrize("name", ["report.pdf", "x" * 255, "a..b", "\u202eevil.txt"])
def test_the_url_pattern_admits_what_check_name_admits(name):
    assert re.fullmatch(NAME_PATTERN, name) and check_name(name) == name


def test_a_taken_name_gets_a_number(tmp_path):
    (tmp_path / "photo.jpg").write_bytes(b"")
    (tmp_path / "photo (1).jpg").write_bytes(b"")
    assert free_name(tmp_path, "photo.jpg") == "photo (2).jpg"
    assert free_name(tmp_path, "new.jpg") == "new.jpg"


def test_a_download_under_way_is_listed_once_in_progress_not_also_as_its_empty_placeholder(tmp_path):
    """Chromium holds the final name with an empty file while it writes ``<name>.crdownload``."""
    (tmp_path / "report.pdf").write_bytes(b"")
    (tmp_path / "report.pdf.crdownload").write_bytes(b"x" * 10)
    (tmp_path / "done.bin").write_bytes(b"y" * 3)
    listed = {(e["name"], e["state"], e["size"]) for e in list_folder(tmp_path)}
    assert listed == {("report.pdf", "in_progress", 10), ("done.bin", "complete", 3)}
    (tmp_path / "report.pdf.crdownload").rename(tmp_path / "report.pdf")
    listed = {(e["name"], e["state"], e["size"]) for e in list_folder(tmp_path)}
    assert listed == {("report.pdf", "complete", 10), ("done.bin", "complete", 3)}


@pytest.mark.parametrize("method", ["Browser.setDownloadBehavior", "Page.setDownloadBehavior"])
def test_a_download_behavior_is_pointed_at_the_session_folder(method):
    call = {"id": 3, "method": method, "sessionId": "S",
            "params": {"behavior": "allowAndName", "downloadPath": "/etc/cron.d", "eventsEnabled": True}}
    [(opcode, payload)] = read_frames(DownloadRewriter(FOLDER).feed(client_frame(json.dumps(call).encode())))
    assert opcode == 0x81
    assert json.loads(payload) == {**call, "params": {"behavior": "allow", "downloadPath": FOLDER, "eventsEnabled": True}}


def test_an_escaped_method_name_split_over_fragments_and_reads_is_still_rewritten():
    call = b'{"id":1,"method":"Browser.setDownload\\u0042ehavior","params":{"behavior":"allow","downloadPath":"/x"}}'
    wire = client_frame(call[:20], fin=False) + client_frame(b"", fin=True, opcode=9) + \
        client_frame(call[20:], fin=True, opcode=0)
    rewriter, out = DownloadRewriter(FOLDER), b""
    for i in range(0, len(wire), 7):
        out += rewriter.feed(wire[i:i + 7])
    frames = read_frames(out)
    assert [opcode for opcode, _ in frames] == [0x89, 0x81]
    assert json.loads(frames[1][1])["params"]["downloadPath"] == FOLDER


def test_other_frames_pass_byte_for_byte():
    wire = b"".join(client_frame(json.dumps({"id": i, "method": "Runtime.evaluate",
                                             "params": {"expression": "1+" * 40000 + "1"}}).encode()) for i in range(3))
    assert DownloadRewriter(FOLDER).feed(wire) == wire


@pytest.mark.parametrize("read", [1, 5, 150, 70_000, 1 << 20])
def test_frames_split_across_reads_of_any_size_pass_byte_for_byte_and_a_call_among_them_is_rewritten(read):
    call = {"id": 4, "method": "Browser.setDownloadBehavior", "params": {"behavior": "allow", "downloadPath": "/x"}}
    frames = [client_frame(json.dumps({"id": 1, "method": "Runtime.evaluate", "params": {"expression": "1"}}).encode()),
              client_frame(b"y" * 200_000), client_frame(json.dumps(call).encode()),
              client_frame(b"", opcode=9)]
    wire, rewriter, out = b"".join(frames), DownloadRewriter(FOLDER), b""
    for i in range(0, len(wire), read):
        out += rewriter.feed(memoryview(bytearray(wire[i:i + read])))
    sent = read_frames(out)
    assert out.startswith(frames[0] + frames[1]) and out.endswith(frames[3])
    assert [opcode for opcode, _ in sent] == [0x81, 0x81, 0x81, 0x89]
    assert json.loads(sent[2][1])["params"]["downloadPath"] == FOLDER


def test_deny_passes_and_keeps_no_path():
    call = {"id": 1, "method": "Browser.setDownloadBehavior", "params": {"behavior": "deny"}}
    [(_, payload)] = read_frames(DownloadRewriter(FOLDER).feed(client_frame(json.dumps(call).encode())))
    assert json.loads(payload) == call


def test_a_download_behavior_wrapped_in_send_message_to_target_is_rewritten_too():
    inner = {"id": 7, "method": "Browser.setDownloadBehavior", "params": {"behavior": "allow", "downloadPath": "/root"}}
    call = {"id": 8, "method": "Target.sendMessageToTarget", "params": {"sessionId": "S", "message": json.dumps(inner)}}
    [(_, payload)] = read_frames(DownloadRewriter(FOLDER).feed(client_frame(json.dumps(call).encode())))
    sent = json.loads(payload)
    assert sent["params"]["sessionId"] == "S"
    assert json.loads(sent["params"]["message"])["params"] == {"behavior": "allow", "downloadPath": FOLDER}


def test_exposing_the_protocol_to_a_page_is_refused():
    """Not sent on; answered for its id (tests/unit/test_client_rules.py has the other refusals)."""
    call = {"id": 9, "method": "Target.exposeDevToolsProtocol", "params": {"targetId": "T", "bindingName": "cdp"}}
    rewriter = DownloadRewriter(FOLDER)
    assert rewriter.feed(client_frame(json.dumps(call).encode())) == b""
    assert json.loads(rewriter.replies.popleft())["id"] == 9
