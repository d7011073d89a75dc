"""API keys for tests that need another project or fewer scopes, written straight into the deployment's store.

The command-line path (``python -m app keys create``) has tests of its own in
test_auth.py; everything else makes its keys here, without a process start each.
"""
from __future__ import annotations

import secrets
from collections.abc import Iterable

from tests.support.processes import Broker


def make_key(broker: Broker, *, scopes: str | Iterable[str], project: str) -> str:
    """``scopes`` as the CLI takes them (``"a,b"``) or as a sequence."""
    if isinstance(scopes, str):
        scopes = scopes.split(",")
    key = "bb_" + secrets.token_urlsafe(24)
    broker.store().api_keys.put(key, name="test", project=project, scopes=scopes)
    return key
