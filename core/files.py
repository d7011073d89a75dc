"""A session's files: the one folder its browser downloads into, the one it reads uploads from, and their names.

Both folders are inside the browser's own temp folder (its HOME and TMPDIR,
tasks/launchers/base.py), which belongs to the browser's user alone and is deleted
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

The worker (root, when browsers have users of their own) reads and writes these
folders, which the browser's user owns: anything running as that user could put
a link where a folder or file was, to make the worker read or write where the
link points. So nothing here follows a link: a folder is opened with O_NOFOLLOW
(:func:`open_folder`, owner checked), and every step after that (list, stat,
open, create, rename) is relative to its descriptor, with O_NOFOLLOW again; a
file is read only if it is a regular file of the folder's owner.
"""
from __future__ import annotations

import errno
import logging
import mimetypes
import os
import stat
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
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

log = logging.getLogger(__name__)


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


class UnsafeFolder(Exception):
    """A session folder (or the temp folder holding it) that is a link or not a directory, or that is not its
    expected owner's: something running as the browser's user put it there, so it is not used at all."""


class UnsafeFile(Exception):
    """A session file that is a link, not a regular file, or not owned by its folder's owner (a hard link to
    someone else's file): never read."""


#: A session folder is opened with these: only a directory, and never through a link.
FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: A session file is read with these: never through a link, and a FIFO the browser's user made does not block.
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def open_folder(folder: Path, owner: int | None = None) -> int:
    """A descriptor of ``folder`` (the caller closes it), opened so that no link is followed; FileNotFoundError
    if it is not there, UnsafeFolder if it is a link, not a directory, or not ``owner``'s (None: any owner).

    The browser's user owns both a session folder and the temp folder that holds it (tasks/launchers/base.py), and
    the temp folder sits in the sticky /tmp, where its owner may rename it: so both are opened with O_NOFOLLOW,
    the session folder relative to the temp folder's descriptor. Every later step (list, stat, open, create,
    rename) is relative to the descriptor returned, so replacing a name with a link afterwards changes nothing.
    """
    try:
        parent = os.open(folder.parent, FOLDER_FLAGS)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafeFolder(f"{folder.parent} is a link or not a directory") from None
        raise
    try:
        fd = os.open(folder.name, FOLDER_FLAGS, dir_fd=parent)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafeFolder(f"{folder} is a link or not a directory") from None
        raise
    finally:
        os.close(parent)
    found = os.fstat(fd).st_uid
    if owner is not None and found != owner:
        os.close(fd)
        raise UnsafeFolder(f"{folder} belongs to uid {found}, not to the browser's user ({owner})")
    return fd


@contextmanager
def opened_folder(folder: Path | int, owner: int | None = None) -> Iterator[int]:
    """:func:`open_folder` as a context; a descriptor already open is used as it is (and left open)."""
    if isinstance(folder, int):
        yield folder
        return
    fd = open_folder(folder, owner)
    try:
        yield fd
    finally:
        os.close(fd)


def open_file(folder: int, name: str) -> int:
    """A descriptor to read ``name`` of the open ``folder`` (the caller closes it); FileNotFoundError if there is
    no such file, UnsafeFile if it is a link, not a regular file, or not the folder owner's."""
    try:
        fd = os.open(name, READ_FLAGS, dir_fd=folder)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise UnsafeFile(f"{name} is a link") from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.fstat(folder).st_uid:
        os.close(fd)
        raise UnsafeFile(f"{name} is not a plain file of the folder's owner")
    os.set_blocking(fd, True)
    return fd


def exists(folder: int, name: str) -> bool:
    """Whether ``name`` is taken in the open ``folder``, by anything (a link too, never followed)."""
    try:
        os.stat(name, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def describe(name: str, info: os.stat_result) -> dict:
    """One entry of a downloads listing, as the API shows it."""
    partial = name.endswith(PARTIAL_SUFFIX)
    shown = name[: -len(PARTIAL_SUFFIX)] if partial else name
    return {"name": shown, "size": info.st_size, "state": IN_PROGRESS if partial else COMPLETE,
            "mimeType": mime_type(shown), "modifiedAt": _iso(info.st_mtime)}


def _plain_files(folder: int) -> list[tuple[str, os.stat_result]]:
    """The folder's plain files of its owner (no link, no hidden name), each with its stat; a file gone by the
    time it is looked at is left out (Chromium renames a finished download while the folder is being read)."""
    owner = os.fstat(folder).st_uid
    found = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_file(follow_symlinks=False):
                    info = entry.stat(follow_symlinks=False)
                    if info.st_uid == owner:
                        found.append((entry.name, info))
            except FileNotFoundError:
                continue
    return found


def list_folder(folder: Path | int, owner: int | None = None) -> list[dict]:
    """Plain files only, oldest first; ``folder`` is a path (opened by :func:`open_folder`) or an open descriptor.

    A folder that is not there, or is not safe to read (:class:`UnsafeFolder`), lists nothing. While it
    downloads, Chromium also holds the final name with an empty file beside ``<name>.crdownload``: that
    placeholder is not a complete download (a clean-clone CI run listed one as complete, 0 bytes), so only the
    partial is listed.
    """
    try:
        with opened_folder(folder, owner) as fd:
            files = _plain_files(fd)
    except FileNotFoundError:
        return []
    except UnsafeFolder as error:
        log.warning("not listing a session folder: %s", error)
        return []
    names = {name for name, _ in files}
    listed = [describe(name, info) for name, info in files if name + PARTIAL_SUFFIX not in names]
    return sorted(listed, key=lambda e: (e["modifiedAt"], e["name"]))


def folder_bytes(folder: Path | int, owner: int | None = None) -> int:
    """What the folder's plain files take (0 if it is not there or not safe to read)."""
    try:
        with opened_folder(folder, owner) as fd:
            return sum(info.st_size for _, info in _plain_files(fd))
    except FileNotFoundError:
        return 0
    except UnsafeFolder as error:
        log.warning("not counting a session folder: %s", error)
        return 0


def free_name(folder: Path | int, name: str) -> str:
    """``name``, or ``name (1).ext``, … : the first not taken in ``folder``, as Chromium names downloads."""
    stem, dot, ext = name.partition(".") if not name.startswith(".") else (name, "", "")
    candidate, n = name, 0
    while (exists(folder, candidate) if isinstance(folder, int) else os.path.lexists(folder / candidate)):
        n += 1
        candidate = f"{stem} ({n}){dot}{ext}"
    return candidate
