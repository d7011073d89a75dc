"""URL converters for resource ids: a path segment that is not an id of the right shape is a 404 at routing,
and the OpenAPI document shows each id parameter's pattern."""
from __future__ import annotations

from flask import Flask
from flask_smorest import Api
from werkzeug.routing import BaseConverter

from app.fields import ID_PATTERNS
from core.files import NAME_PATTERN

#: Converter name in URL rules → the id prefix it takes (``<ses_id:session_id>``).
CONVERTERS = {"ses_id": "ses", "ctx_id": "ctx", "prx_id": "prx", "key_id": "key", "ext_id": "ext"}


def _converter(prefix: str) -> type[BaseConverter]:
    return type(f"{prefix.capitalize()}IdConverter", (BaseConverter,), {"regex": ID_PATTERNS[prefix][1:-1]})


class FileNameConverter(BaseConverter):
    """A session file's name (core/files.py): one plain segment, so ``..`` and the like never reach a view."""

    regex = NAME_PATTERN


def register(app: Flask, api: Api) -> None:
    """Before any blueprint: rules are bound to their converters as they are added."""
    for name, prefix in CONVERTERS.items():
        converter = _converter(prefix)
        app.url_map.converters[name] = converter
        api.register_converter(converter, lambda _c, pattern=ID_PATTERNS[prefix]: {"type": "string", "pattern": pattern})
    app.url_map.converters["file_name"] = FileNameConverter
    api.register_converter(FileNameConverter, lambda _c: {"type": "string", "pattern": f"^{NAME_PATTERN}$"})
