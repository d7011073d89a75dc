"""What the event log and recording calls take and answer."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from core.store.session_events import CURSOR

PAGE_DEFAULT = 100
PAGE_MAX = 1000


class EventQuerySchema(Schema):
    since = fields.String(
        load_default=None, validate=validate.Regexp(CURSOR.pattern, error="Must be an event id (`<ms>-<n>`)."),
        metadata={"description": "An event's `id` (or the last answer's `next`): only events after it."})
    limit = fields.Integer(load_default=PAGE_DEFAULT, validate=validate.Range(min=1, max=PAGE_MAX),
                           metadata={"description": f"Most events in the answer (default {PAGE_DEFAULT})."})


class StreamQuerySchema(Schema):
    since = fields.String(
        load_default=None, validate=validate.Regexp(CURSOR.pattern, error="Must be an event id (`<ms>-<n>`)."),
        metadata={"description": "Start after this event (as `Last-Event-ID` does); without either, from the first."})


class EventPageSchema(Schema):
    sessionId = fields.String(required=True)
    events = fields.List(fields.Dict(), required=True, metadata={
        "description": "Oldest first (newest last); each has `id`, `type`, `at` and its type's fields (docs/API.md)."})
    next = fields.String(required=True, allow_none=True, metadata={
        "description": "The last event's id: the next call's `since` (null when there was none)."})
    hasMore = fields.Boolean(required=True, metadata={"description": "More events follow already."})
