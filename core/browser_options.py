"""A session's browser options as the web process stores them and the worker reads them.

The create's options (viewport, user agent, locale, time zone, geolocation, extra
headers, blocked resource types, extensions) are merged with the project's stored
defaults once, at create, into the record's ``browserOptions``: what the worker
applies is exactly what the answer shows. Extensions, the time zone and the locale are
given at launch (flags and Chromium's environment), so a session naming one launches
cold; every other option is applied over CDP (tasks/browser_options.py), so a warm
browser serves it.
"""
from __future__ import annotations

from typing import Any

from core.crypto import SecretBox

#: Every option a create (or a project's defaults) may name.
OPTION_NAMES: tuple[str, ...] = (
    "viewport", "userAgent", "locale", "timezoneId", "geolocation", "extraHTTPHeaders", "blockResources",
    "extensionIds",
)
#: Options that only a launch can give a browser (flags on Chromium's command line, its environment).
LAUNCH_OPTIONS: tuple[str, ...] = ("extensionIds", "locale", "timezoneId")
#: ``blockResources`` names → CDP's ``Network.ResourceType``.
RESOURCE_TYPES: dict[str, str] = {"image": "Image", "media": "Media", "font": "Font"}


def merged(defaults: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """Per option, the create's own value wins; options neither names are left out. A whole option is replaced,
    never merged field by field: a create's ``viewport`` or ``extraHTTPHeaders`` is the one the session gets, and
    an empty list or object given by the create clears the project's default."""
    chosen = {name: defaults[name] for name in OPTION_NAMES if name in defaults}
    chosen.update({name: given[name] for name in OPTION_NAMES if name in given})
    return {name: value for name, value in chosen.items() if value not in (None, [], {})}


def sealed(options: dict[str, Any], box: SecretBox) -> dict[str, Any]:
    """The options as records and project defaults keep them: extra headers' values encrypted (they often carry
    credentials, as a proxy's password does), their names readable for answers."""
    if not options.get("extraHTTPHeaders"):
        return options
    return {**options, "extraHTTPHeaders": {name: box.encrypt(value)
                                            for name, value in options["extraHTTPHeaders"].items()}}


def opened(options: dict[str, Any], box: SecretBox) -> dict[str, Any]:
    """What the worker applies: ``sealed``'s values decrypted."""
    if not options.get("extraHTTPHeaders"):
        return options
    return {**options, "extraHTTPHeaders": {name: box.decrypt(value)
                                            for name, value in options["extraHTTPHeaders"].items()}}


def needs_launch(options: dict[str, Any]) -> bool:
    """A warm browser was started without these, so a session naming them launches cold."""
    return any(options.get(name) for name in LAUNCH_OPTIONS)


def shown(options: dict[str, Any]) -> dict[str, Any]:
    """The options as answers show them: extra headers by name only (they often carry credentials)."""
    view = {name: options.get(name) for name in OPTION_NAMES if name != "extraHTTPHeaders"}
    view["extraHTTPHeaderNames"] = sorted(options.get("extraHTTPHeaders") or {})
    return view
