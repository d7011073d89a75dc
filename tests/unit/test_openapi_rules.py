"""The OpenAPI document and the API's validation agree: a body the document admits is one the API takes.

Checked here for the cross-field rules (written twice: as JSON Schema in the
document, as marshmallow in the code) on cases at each rule's edges; the suite's
schemathesis run (tests/e2e/test_openapi_contract.py) then searches the rest.
"""
from __future__ import annotations


import jsonschema
import pytest
from marshmallow import ValidationError

from app import create_app
from app.proxies.schemas import ProxyCreateSchema
from app.sessions.schemas import CookieSchema
from tests.support.settings import config_with


@pytest.fixture(scope="module")
def app():
    """The API as the web process builds it (no Redis is touched to build it or its document)."""
    app = create_app(config_with(BROKER_ENV="development", BROKER_SECRET_KEY="", BROKER_BOOTSTRAP_API_KEY=""))
    with app.app_context():
        yield app


@pytest.fixture(scope="module")
def document(app) -> dict:
    with app.test_client() as client:
        return client.get("/openapi.json").json


def admits(document: dict, name: str, body: dict) -> bool:
    return jsonschema.Draft4Validator(document["components"]["schemas"][name]).is_valid(body)


def takes(schema, body: dict) -> bool:
    try:
        schema().load(body)
    except ValidationError:
        return False
    return True


COOKIES = [
    {"name": "a", "value": "b", "domain": "example.com"},
    {"name": "", "value": "b", "domain": "example.com"},
    {"name": "", "value": "", "domain": "example.com"},
    {"name": "", "value": "a=b", "domain": "example.com"},
    {"name": "", "value": "__secure-x", "domain": "example.com", "secure": True},
    {"name": "", "value": "__Http", "domain": "example.com"},
    {"name": "a", "value": "", "domain": "example.com"},
    {"name": "a", "value": "b", "domain": "a.0"},
    {"name": "a", "value": "b", "domain": "256.1.1.1"},
    {"name": "a", "value": "b", "domain": ".127.0.0.1"},
    {"name": "a", "value": "b", "domain": "example.com", "path": "/a b"},
    {"name": "a", "value": "b", "domain": "example.com", "path": "/\u20ac"},
    {"name": "a", "value": "b", "domain": "example.com", "path": "/%E2%82%AC"},
    {"name": "a", "value": "b", "domain": "example.com", "sameSite": "None"},
    {"name": "a", "value": "b", "domain": "example.com", "sameSite": "None", "secure": True},
    {"name": "__Secure-a", "value": "b", "domain": "example.com"},
    {"name": "__SECURE-a", "value": "b", "domain": "example.com", "secure": True},
    {"name": "__Host-a", "value": "b", "domain": "example.com", "secure": True},
    {"name": "__Host-a", "value": "b", "domain": ".example.com", "secure": True},
    {"name": "__Host-a", "value": "b", "domain": "example.com", "secure": True, "path": "/x"},
    {"name": "__Http-a", "value": "b", "domain": "example.com", "secure": True},
    {"name": "__Http-a", "value": "b", "domain": "example.com", "secure": True, "httpOnly": True},
    {"name": "__Host-Http-a", "value": "b", "domain": "example.com", "secure": True, "httpOnly": True},
    {"name": "__Host-Http-a", "value": "b", "domain": "example.com", "secure": True},
    {"name": "__Hostile", "value": "b", "domain": "example.com"},
    {"name": "__Http", "value": "b", "domain": "example.com"},
    {"name": " a", "value": "b", "domain": "example.com"},
    {"name": "a=", "value": "b", "domain": "example.com"},
    {"name": "a", "value": "b;", "domain": "example.com"},
]


@pytest.mark.parametrize("cookie", COOKIES)
def test_the_document_admits_exactly_the_cookies_the_api_takes(document, cookie):
    assert admits(document, "Cookie", cookie) == takes(CookieSchema, cookie)


PROXIES = [
    {"server": "http://127.0.0.1:3128"},
    {"server": "http://127.0.0.1:3128", "password": "p"},
    {"server": "http://127.0.0.1:3128", "username": None, "password": "p"},
    {"server": "http://127.0.0.1:3128", "username": "u", "password": "p"},
    {"server": "http://127.0.0.1:3128", "username": "u", "password": None},
    {"server": "SOCKS5://[::1]:1080", "username": "u"},
    {"server": ""},
    {"server": "http://127.0.0.1:0"},
    {"server": "http://127.0.0.1:3128/x"},
    {"server": "http://127.0.0.1:3128", "username": "a:b"},
    {"server": "http://127.0.0.1:3128", "username": "u", "password": "\u20ac"},
]


@pytest.mark.parametrize("body", PROXIES)
def test_the_document_admits_exactly_the_proxies_the_api_takes(document, body):
    schema = dict(document["components"]["schemas"]["ProxyCreate"])
    # OpenAPI 3.0's nullable, which Draft 4 does not know: null is admitted where nullable is true.
    schema["properties"] = {k: {**v, "type": [v["type"], "null"]} if v.get("nullable") else v
                            for k, v in schema["properties"].items()}
    assert jsonschema.Draft4Validator(schema).is_valid(body) == takes(ProxyCreateSchema, body)
