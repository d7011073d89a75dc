"""What /v1/session-defaults takes and answers: the browser options a create takes, and whether to record."""
from __future__ import annotations

from marshmallow import fields

from app.fields import StrictBoolean
from app.sessions.schemas import BrowserOptionsSchema, ShownBrowserOptionsSchema


class SessionDefaultsSchema(BrowserOptionsSchema):
    """The project's defaults for every create; each option a create gives replaces its default."""

    recording = StrictBoolean(
        load_default=None, allow_none=True,
        metadata={"description": "Whether the project's sessions are recorded when a create does not say; null: "
                                 "BROKER_RECORDING decides."},
    )


class ShownSessionDefaultsSchema(ShownBrowserOptionsSchema):
    recording = fields.Boolean(required=True, allow_none=True, metadata={
        "description": "As the defaults gave it; null: BROKER_RECORDING decides."})
