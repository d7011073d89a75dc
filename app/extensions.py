"""Process-wide objects the views share, initialised once by ``create_app``."""
from __future__ import annotations

from flask import current_app

from core.browser_link import BrowserLinks
from core.config import Config
from app.errors import BrokerApi
from core.crypto import SecretBox
from core.egress import EgressPolicy
from core.session_machine import SessionMachine
from core.store import Store
from core.tokens import ConnectTokens, LiveViewTokens

api = BrokerApi()


def store() -> Store:
    return current_app.extensions["broker.store"]


def machine() -> SessionMachine:
    return current_app.extensions["broker.machine"]


def config() -> Config:
    return current_app.extensions["broker.config"]


def secret_box() -> SecretBox:
    return current_app.extensions["broker.secret_box"]


def connect_tokens() -> ConnectTokens:
    return current_app.extensions["broker.connect_tokens"]


def links() -> BrowserLinks:
    return current_app.extensions["broker.links"]


def live_view_tokens() -> LiveViewTokens:
    return current_app.extensions["broker.live_view_tokens"]


def egress() -> EgressPolicy:
    """What the web process may dial on a tenant's say (a proxy check): core.egress, BROKER_EGRESS_ALLOW."""
    return current_app.extensions["broker.egress"]
