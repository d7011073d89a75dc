"""Process-wide objects the views share, initialised once by ``create_app``."""
from __future__ import annotations

from flask import current_app

from app.config import Config
from app.crypto import SecretBox
from app.errors import BrokerApi
from app.store import Store

api = BrokerApi()


def store() -> Store:
    return current_app.extensions["broker.store"]


def config() -> Config:
    return current_app.extensions["broker.config"]


def secret_box() -> SecretBox:
    return current_app.extensions["broker.secret_box"]
