"""Why a call on a session's files failed, in the files' own terms: the service raises these and knows no HTTP.

The blueprint (app/files/resources.py) is the one place that turns each into a status and the API's JSON
error shape, so the service can be called from anywhere (a command, a test) without a request around it.
"""
from __future__ import annotations


class FilesError(Exception):
    """``message`` is for the client; ``fields`` names the request fields at fault, as the API's ``errors``."""

    def __init__(self, message: str, fields: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields


class DownloadNotFound(FilesError):
    """No such download, the downloads' retention ran out, or the archived copy cannot be read here."""


class WrongSessionState(FilesError):
    """The session is not in a state the call needs: stopping while its downloads are archived, not running
    for an upload, or stopped during the call."""


class FileTooLarge(FilesError):
    """An upload over BROKER_UPLOAD_MAX_BYTES: nothing was stored."""


class InvalidUpload(FilesError):
    """Not multipart/form-data, no ``file`` part, a malformed body or a bad file name: nothing was stored."""


class WorkerFailed(FilesError):
    """The session's worker could not be reached, or refused the call for a reason of its own."""
