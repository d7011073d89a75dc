"""What the OpenAPI document says beyond the schemas: every error an operation can answer, ids, links.

Each operation declares each status it can answer and nothing it cannot; no
catch-all ``default`` response hides an undocumented one. Every ``/v1``
operation can answer 401 and 403 (the key), 413 (the body limit, before
anything else) and 503 (Redis unreachable); the rest are per operation. A
create's answer links to the operations that read and delete what it made,
so clients (and the suite's schemathesis run) can follow them.
"""
from __future__ import annotations

from collections.abc import Callable

from flask_smorest import Api, Blueprint
from marshmallow import Schema, fields

from core.config import Config

COMMON = (401, 403, 413, 503)
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before trying again.", "required": True,
                               "schema": {"type": "integer", "minimum": 1}}}
ALLOW = {"Allow": {"description": "The methods this path takes.", "required": True, "schema": {"type": "string"}}}
DESCRIPTIONS = {
    400: "The body is not JSON (malformed, or sent without Content-Type: application/json).",
    401: "No X-API-Key header, or a key that is unknown, revoked or expired.",
    403: "The key lacks the scope this operation needs.",
    404: "No such resource in the key's project.",
    409: "The resource's state does not allow this now.",
    413: "The request body is over BROKER_MAX_BODY_BYTES; refused before it is read.",
    422: "The request did not pass validation; `errors` names each field.",
    429: "A limit of the project or the key was reached.",
    502: "The session's browser could not be reached.",
    503: "No capacity in time, or storage (Redis) unreachable.",
}


def register_schemas(api: Api, with_rules: dict[str, tuple[type[Schema], dict]]) -> None:
    """Before the blueprints: schemas whose cross-field rules (a ``validates_schema``) the document states as
    JSON Schema beside their fields, under the names the blueprints' references will use."""
    for name, (schema, rules) in with_rules.items():
        api.spec.components.schema(name, rules, schema=schema)


def state_limits(api: Api, config: Config) -> None:
    """After the blueprints: limits the deployment configures, into the schemas that obey them."""
    api.spec.components.schemas["CookiesWrite"]["properties"]["cookies"]["maxItems"] = config.sessions.cookie_max_count


class ErrorSchema(Schema):
    """The one error shape: ``{code, status, message[, errors]}``."""

    code = fields.Integer(required=True, metadata={"description": "The HTTP status code."})
    status = fields.String(required=True, metadata={"description": "The HTTP status name."})
    message = fields.String(required=True, metadata={"description": "What went wrong, for a person."})
    errors = fields.Dict(metadata={"description": "Per location (json, query) and field, what failed validation."})


#: The error answers' schema by reference (app.errors registers ErrorSchema as "Error"): every decorator that
#: stacks on a view deep-copies what the ones before it documented, and a marshmallow Schema instance per error
#: answer made create_app cost 0.24 s of CPU (~240 error answers); by reference it costs 0.09-0.14 s, and the
#: document is the same, byte for byte.
ERROR_REF = {"$ref": "#/components/schemas/Error"}


def responds(blp: Blueprint, operation_id: str, *codes: int, common: tuple[int, ...] = COMMON,
             **descriptions: str) -> Callable:
    """Names the operation and declares its error answers: the ``common`` ones and ``codes``.

    ``descriptions`` (``d404="…"``) say what a code means for this operation.
    """

    def decorate(view: Callable) -> Callable:
        for code in sorted({*common, *codes}, reverse=True):
            headers = RETRY_AFTER if code in (429, 503) else None
            description = descriptions.get(f"d{code}", DESCRIPTIONS[code])
            view = blp.alt_response(code, schema=ERROR_REF, description=description, headers=headers)(view)
        return blp.doc(operationId=operation_id)(view)

    return decorate


def links_to(status: int, *operations: tuple[str, str], parameter: str) -> dict:
    """``@blp.doc(**links_to(201, ("getSession", "GetSession"), …, parameter="session_id"))``: the new id feeds them."""
    links = {name: {"operationId": operation_id, "parameters": {parameter: "$response.body#/id"}}
             for operation_id, name in operations}
    return {"responses": {str(status): {"links": links}}}
