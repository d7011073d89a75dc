"""A session's files: the one folder its browser downloads into, the one it reads uploads from, and their names.

Both folders are inside the browser's own temp folder (its HOME and TMPDIR,
tasks/chromium.py), which belongs to the browser's user alone and is deleted
with the browser: nothing of a session's files outlives it on the worker. At
stop the downloads move to the snapshot store (core/snapshots.py) and stay
readable for BROKER_DOWNLOAD_RETENTION.

A file name is one path segment a user would recognise: no separators, no
control characters, not ``.``/``..``, not hidden, at most ``MAX_NAME_BYTES``.
Names that come from a page (a download's suggested name) are sanitised into
that shape by Chromium; names that come from a caller (an upload) are refused
unless already in it, so nothing is silently renamed behind their back. In a
URL (``downloads/:name``) the same rule is the route's pattern, so a name that
breaks it is a 404 at routing, like a malformed session id.
"""
from __future__ import annotations

import mimetypes
import os
import unicodedata
from datetime import datetime, timezone
from pathlib import Path

DOWNLOADS = "downloads"
UPLOADS = "uploads"
#: Chromium writes an unfinished download as ``<name>.crdownload`` and renames it when complete.
PARTIAL_SUFFIX = ".crdownload"
#: Linux's NAME_MAX, in bytes; a name is also at most this many characters (the API's documented pattern).
MAX_NAME_BYTES = 255
#: The rule of :func:`check_name` as a regular expression (the OpenAPI pattern of a ``:name`` in a URL): not
#: starting with ``.``, no ``/`` or ``\``, no control character (C0, DEL, C1), 1 to 255 characters.
NAME_PATTERN = r"[^./\\\x00-\x1f\x7f-\x9f][^/\\\x00-\x1f\x7f-\x9f]{0,254}"
COMPLETE, IN_PROGRESS = "complete", "in_progress"


class BadName(ValueError):
    pass


def check_name(name: str) -> str:
    """``name`` unchanged if it is a plain file name; else BadName saying why."""
    if not name or name in (".", ".."):
        raise BadName("a file name may not be empty, '.' or '..'")
    if "/" in name or "\\" in name:
        raise BadName("a file name may not contain '/' or '\\'")
    if name.startswith("."):
        raise BadName("a file name may not start with '.'")
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in name):
        raise BadName("a file name may not contain control characters")
    if len(name) > MAX_NAME_BYTES or len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise BadName(f"a file name may be at most {MAX_NAME_BYTES} bytes of UTF-8")
    return name


def mime_type(name: str) -> str:
    return mimetypes.guess_type(name, strict=False)[0] or "application/octet-stream"


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def describe(path: Path) -> dict:
    """One entry of a downloads listing, as the API shows it."""
    info = path.stat()
    partial = path.name.endswith(PARTIAL_SUFFIX)
    name = path.name[: -len(PARTIAL_SUFFIX)] if partial else path.name
    return {"name": name, "size": info.st_size, "state": IN_PROGRESS if partial else COMPLETE,
            "mimeType": mime_type(name), "modifiedAt": _iso(info.st_mtime)}


def list_folder(folder: Path) -> list[dict]:
    """Plain files only, oldest first; a symlink a page could not make anyway is never followed.

    Chromium renames a finished download while the folder is being read: a file gone by the time it is
    looked at is left out (its new name is listed, or will be next time). While it downloads, Chromium
    also holds the final name with an empty file beside ``<name>.crdownload``: that placeholder is not a
    complete download (a clean-clone CI run listed one as complete, 0 bytes), so only the partial is listed.
    """
    try:
        entries = [e for e in os.scandir(folder) if e.is_file(follow_symlinks=False) and not e.name.startswith(".")]
    except FileNotFoundError:
        return []
    names = {entry.name for entry in entries}
    listed = []
    for entry in entries:
        if entry.name + PARTIAL_SUFFIX in names:
            continue
        try:
            listed.append(describe(Path(entry.path)))
        except FileNotFoundError:
            continue
    return sorted(listed, key=lambda e: (e["modifiedAt"], e["name"]))


def folder_bytes(folder: Path) -> int:
    total = 0
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return 0
    for entry in entries:
        try:
            if entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_size
        except FileNotFoundError:  # renamed by Chromium meanwhile: counted under its new name next time
            continue
    return total


def free_name(folder: Path, name: str) -> str:
    """``name``, or ``name (1).ext``, … : the first not taken in ``folder``, as Chromium names downloads."""
    stem, dot, ext = name.partition(".") if not name.startswith(".") else (name, "", "")
    candidate, n = name, 0
    while (folder / candidate).exists():
        n += 1
        candidate = f"{stem} ({n}){dot}{ext}"
    return candidate
