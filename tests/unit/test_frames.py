"""The relay's frame-boundary tracker, fed Chromium-shaped byte streams cut at every possible place."""
from __future__ import annotations

from wsproto.frame_protocol import FrameProtocol, Opcode

from proxy.frames import OPCODE_CLOSE, FrameTracker

SERVER = FrameProtocol(client=False, extensions=[])


def frame(payload: bytes, opcode: Opcode = Opcode.TEXT) -> bytes:
    return bytes(SERVER._serialize_frame(opcode, payload))


def test_boundaries_for_every_header_size_and_every_split():
    stream = frame(b"a" * 10) + frame(b"b" * 300) + frame(b"c" * 70000) + frame(b"", Opcode.PING)
    for cut in range(len(stream) + 1):
        tracker = FrameTracker()
        tracker.feed(stream[:cut])
        tracker.feed(stream[cut:])
        assert tracker.at_boundary


def test_inside_a_frame_is_not_a_boundary():
    data = frame(b"x" * 1000)
    for cut in range(1, len(data)):
        tracker = FrameTracker()
        tracker.feed(data[:cut])
        assert not tracker.at_boundary


def test_byte_by_byte_and_close_opcode_seen():
    tracker = FrameTracker()
    for byte in frame(b"hello") + bytes(SERVER.close(1000, "bye")):
        tracker.feed(bytes([byte]))
    assert tracker.at_boundary and tracker.last_opcode == OPCODE_CLOSE


def test_masked_frames_count_the_mask_key():
    client = FrameProtocol(client=True, extensions=[])
    data = bytes(client._serialize_frame(Opcode.TEXT, b"z" * 200))
    tracker = FrameTracker()
    tracker.feed(data[:5])
    assert not tracker.at_boundary
    tracker.feed(data[5:])
    assert tracker.at_boundary
