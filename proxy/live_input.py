"""A live viewer's input, turned into the CDP command that replays it on the watched tab.

The viewer sends where on its picture the pointer is (0..1 each way) and which keys; the page wants CSS pixels of
its viewport (the last frame's) and ``Input.dispatch*Event`` parameters. Anything malformed is dropped, never
passed on: the viewer is a web page, and only these fields, checked and clamped, reach the browser.
"""
from __future__ import annotations

from typing import Any

#: Viewer message types that are input (a read-only view drops them).
INPUT_TYPES = frozenset({"mouse", "wheel", "key"})
MOUSE_EVENTS = {"mousePressed", "mouseReleased", "mouseMoved"}
MOUSE_BUTTONS = {"none", "left", "middle", "right"}
KEY_EVENTS = {"keyDown", "keyUp"}
#: Keys whose press types a character although their ``key`` is a name.
TYPED_BY_NAME = {"Enter": "\r"}
MAX_TEXT = 16

Command = tuple[str, dict[str, Any]]


def input_command(message: dict, viewport: tuple[float, float]) -> Command | None:
    """The CDP method and parameters for one input message of the viewer, or None to drop it."""
    kind = message.get("type")
    if kind == "mouse":
        return _mouse(message, viewport)
    if kind == "wheel":
        return _wheel(message, viewport)
    if kind == "key":
        return _key(message)
    return None


def _point(message: dict, viewport: tuple[float, float]) -> tuple[float, float] | None:
    x, y = message.get("x"), message.get("y")
    if not _is_number(x) or not _is_number(y) or not all(viewport):
        return None
    width, height = viewport
    return min(max(x, 0.0), 1.0) * width, min(max(y, 0.0), 1.0) * height


def _mouse(message: dict, viewport: tuple[float, float]) -> Command | None:
    point = _point(message, viewport)
    action, button = message.get("action"), message.get("button", "none")
    if point is None or action not in MOUSE_EVENTS or button not in MOUSE_BUTTONS:
        return None
    count = message.get("clickCount", 0)
    return "Input.dispatchMouseEvent", {
        "type": action, "x": point[0], "y": point[1], "button": button,
        "clickCount": count if isinstance(count, int) and 0 <= count <= 3 else 0,
        "modifiers": _modifiers(message),
    }


def _wheel(message: dict, viewport: tuple[float, float]) -> Command | None:
    point = _point(message, viewport)
    dx, dy = message.get("deltaX", 0), message.get("deltaY", 0)
    if point is None or not _is_number(dx) or not _is_number(dy):
        return None
    return "Input.dispatchMouseEvent", {
        "type": "mouseWheel", "x": point[0], "y": point[1], "deltaX": dx, "deltaY": dy,
        "modifiers": _modifiers(message),
    }


def _key(message: dict) -> Command | None:
    action, key, code = message.get("action"), message.get("key"), message.get("code", "")
    key_code = message.get("keyCode", 0)
    if action not in KEY_EVENTS or not isinstance(key, str) or not isinstance(code, str) or not isinstance(key_code, int):
        return None
    modifiers = _modifiers(message)
    # Ctrl/Alt/Meta combinations are shortcuts, not text.
    text = (key if len(key) == 1 else TYPED_BY_NAME.get(key, "")) if not modifiers & 0b0111 else ""
    params: dict[str, Any] = {"key": key[:MAX_TEXT], "code": code[:MAX_TEXT], "windowsVirtualKeyCode": key_code,
                              "nativeVirtualKeyCode": key_code, "modifiers": modifiers}
    if action == "keyDown":
        params.update(type="keyDown" if text else "rawKeyDown", text=text, unmodifiedText=text)
    else:
        params["type"] = "keyUp"
    return "Input.dispatchKeyEvent", params


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _modifiers(message: dict) -> int:
    """CDP's bit field: Alt 1, Ctrl 2, Meta 4, Shift 8."""
    value = message.get("modifiers", 0)
    return value & 0b1111 if isinstance(value, int) else 0
