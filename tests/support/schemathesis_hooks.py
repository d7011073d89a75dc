"""Hooks for the suite's schemathesis run (SCHEMATHESIS_HOOKS names this module).

They keep every request's traffic on this machine: a generated first-navigation
``url``, proxy ``server`` or proxy check ``target`` could name any host (a check
resolves its target before anything else), so each value the API would accept is
swapped for a loopback one that is just as valid (port 9, where nothing listens)
before it is sent. And the run never revokes its own key.
"""
from __future__ import annotations

import os
import re

import schemathesis

from app.sessions.schemas import FIRST_URL
from core.proxy_address import SERVER_PATTERN, TARGET_PATTERN

SAFE_URL = "http://127.0.0.1:9/"
SAFE_HOST_PORT = "127.0.0.1:9"
OWN_KEY_ID = os.environ.get("BB_SCHEMATHESIS_KEY_ID", "")
UNKNOWN_KEY_ID = "key_" + "0" * 32


@schemathesis.hook
def before_call(context, case, kwargs) -> None:
    body = case.body
    if isinstance(body, dict):
        url = body.get("url")
        if isinstance(url, str) and re.search(FIRST_URL, url):
            body["url"] = SAFE_URL
        server = body.get("server")
        if isinstance(server, str) and re.search(SERVER_PATTERN, server):
            body["server"] = f"{server.split('://', 1)[0]}://{SAFE_HOST_PORT}"
        target = body.get("target")
        if isinstance(target, str) and re.search(TARGET_PATTERN, target):
            body["target"] = SAFE_HOST_PORT
    parameters = case.path_parameters or {}
    if parameters.get("key_id") == OWN_KEY_ID:
        parameters["key_id"] = UNKNOWN_KEY_ID
