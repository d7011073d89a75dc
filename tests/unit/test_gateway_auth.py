"""The gateway credential: bound to one session and one purpose, made only with the deployment's secret."""
from __future__ import annotations


import pytest

from core.crypto import MissingSecretKey
from core.gateway_auth import GatewayKey
from tests.support.settings import config_with

SECRET = "a-long-enough-test-secret"


def test_a_credential_opens_its_own_session_and_purpose_only():
    key = GatewayKey(SECRET)
    credential = key.credential("ses_a")
    assert key.verify("ses_a", credential)
    assert not key.verify("ses_b", credential)
    assert not key.verify("ses_a", credential, purpose="upload")
    assert not key.verify("ses_a", None) and not key.verify("ses_a", "")


def test_another_secret_makes_other_credentials():
    assert GatewayKey(SECRET).credential("ses_a") != GatewayKey(SECRET + "x").credential("ses_a")
    assert SECRET not in GatewayKey(SECRET).credential("ses_a")


def test_no_secret_outside_development_refuses_to_start():
    with pytest.raises(MissingSecretKey):
        GatewayKey.from_config(config_with(BROKER_SECRET_KEY="", BROKER_ENV="production"))
