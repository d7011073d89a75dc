"""One JSON error shape for every failure: ``{code, status, message[, errors]}``."""
from __future__ import annotations

import re

from flask import Flask, jsonify, request
from flask_smorest import Api, abort
from flask_smorest.pagination import PaginationMetadataSchema
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException

from app.docs import ErrorSchema
from core.store.base import STORAGE_RETRY_AFTER

JSON_METHODS = {"POST", "PUT", "PATCH"}


class BrokerApi(Api):
    """flask-smorest's Api, with a ``message`` on every error, the exception's own headers (a 405's ``Allow``),
    and no catch-all ``default`` response in the document: app/docs.py declares each status."""

    DEFAULT_ERROR_RESPONSE_NAME = None
    ERROR_SCHEMA = ErrorSchema

    def _register_pagination_header(self) -> None:
        """X-Pagination carries JSON: in OpenAPI 3 that is a header with ``content``, not a ``schema`` of type object."""
        self.spec.components.header("PAGINATION", {
            "description": "Pagination metadata, as JSON.",
            "content": {"application/json": {"schema": PaginationMetadataSchema}},
        }, lazy=True)

    def handle_http_exception(self, error: HTTPException):
        data = getattr(error, "data", None) or {}
        errors = data.get("errors") or data.get("messages")
        payload = {"code": error.code, "status": error.name, "message": data.get("message") or _message(error, errors)}
        if errors:
            payload["errors"] = errors
        headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
        return jsonify(payload), error.code, {**headers, **(data.get("headers") or {})}


def _message(error: HTTPException, errors: dict | None) -> str:
    if error.code == 400 and errors and "json" in errors:
        return "The request body is not valid JSON."
    if error.code == 422:
        return "The request did not pass validation; see errors."
    return error.description or error.name


#: The paths whose body is not JSON (multipart: app/files/resources.py, app/browser_extensions/resources.py). Matched
#: by path, not endpoint: a wrong method or a malformed id there must still get its 405 or 404, not a 400 about JSON.
NOT_JSON_PATHS = re.compile(r"^/v1/sessions/[^/]+/uploads$|^/v1/extensions$")


def require_json_body() -> None:
    """A body that is not JSON is a 400, never silently read as an empty object."""
    if request.method in JSON_METHODS and request.content_length and not request.is_json \
            and not NOT_JSON_PATHS.match(request.path):
        abort(400, message="Send the body as JSON with Content-Type: application/json.")


def storage_unavailable(error: RedisError):
    response = jsonify(code=503, status="Service Unavailable", message=f"Storage (Redis) unavailable: {error}")
    response.status_code = 503
    response.headers["Retry-After"] = STORAGE_RETRY_AFTER
    return response


def register(app: Flask) -> None:
    app.before_request(require_json_body)
    app.register_error_handler(RedisError, storage_unavailable)
