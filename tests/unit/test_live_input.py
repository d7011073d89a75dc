"""proxy/live_input.py: what of a viewer's message reaches the browser, and scaled how (the page is untrusted input)."""
from __future__ import annotations

import pytest

from proxy.live_input import input_command

VIEWPORT = (1000.0, 500.0)


def test_a_click_lands_on_the_pages_css_pixels_clamped_to_the_viewport():
    method, params = input_command({"type": "mouse", "action": "mousePressed", "x": 0.25, "y": 1.5, "button": "left",
                                    "clickCount": 1, "modifiers": 8}, VIEWPORT)
    assert method == "Input.dispatchMouseEvent"
    assert params == {"type": "mousePressed", "x": 250.0, "y": 500.0, "button": "left", "clickCount": 1,
                      "modifiers": 8}


def test_a_wheel_keeps_its_deltas():
    method, params = input_command({"type": "wheel", "x": 0.5, "y": 0.5, "deltaX": 0, "deltaY": 120}, VIEWPORT)
    assert (method, params["type"], params["x"], params["deltaY"]) == ("Input.dispatchMouseEvent", "mouseWheel",
                                                                       500.0, 120)


@pytest.mark.parametrize("message,expected_type,text", [
    ({"action": "keyDown", "key": "a", "code": "KeyA", "keyCode": 65}, "keyDown", "a"),
    ({"action": "keyDown", "key": "Enter", "code": "Enter", "keyCode": 13}, "keyDown", "\r"),
    ({"action": "keyDown", "key": "ArrowLeft", "code": "ArrowLeft", "keyCode": 37}, "rawKeyDown", ""),
    # Ctrl+C is a shortcut, not the letter c.
    ({"action": "keyDown", "key": "c", "code": "KeyC", "keyCode": 67, "modifiers": 2}, "rawKeyDown", ""),
])
def test_a_key_press_types_text_only_where_a_person_would_see_some(message, expected_type, text):
    method, params = input_command({"type": "key", **message}, VIEWPORT)
    assert method == "Input.dispatchKeyEvent"
    assert (params["type"], params["text"]) == (expected_type, text)


@pytest.mark.parametrize("message", [
    {"type": "mouse", "action": "mousePressed", "x": "0.5", "y": 0.5},
    {"type": "mouse", "action": "mouseDragged", "x": 0.5, "y": 0.5},
    {"type": "mouse", "action": "mousePressed", "x": 0.5, "y": 0.5, "button": "back"},
    {"type": "mouse", "action": "mousePressed", "x": True, "y": 0.5},
    {"type": "mouse", "action": "mousePressed", "x": float("nan"), "y": 0.5},
    {"type": "wheel", "x": 0.5, "y": 0.5, "deltaY": "100"},
    {"type": "key", "action": "keyPress", "key": "a"},
    {"type": "key", "action": "keyDown", "key": 65},
    {"type": "evaluate", "expression": "1"},
])
def test_anything_malformed_is_dropped(message):
    assert input_command(message, VIEWPORT) is None


def test_pointer_input_waits_for_a_first_frame_to_know_the_viewport():
    assert input_command({"type": "mouse", "action": "mouseMoved", "x": 0.5, "y": 0.5}, (0.0, 0.0)) is None


def test_a_click_count_out_of_range_is_no_click_and_modifiers_are_cdps_four_bits():
    _, params = input_command({"type": "mouse", "action": "mouseReleased", "x": 0, "y": 0, "button": "left",
                               "clickCount": 99, "modifiers": 0xFF}, VIEWPORT)
    assert (params["clickCount"], params["modifiers"]) == (0, 0b1111)
