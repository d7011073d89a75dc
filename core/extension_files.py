"""Uploaded browser extensions: checked once at upload, kept as a plain zip in the snapshot store, unpacked per launch.

Kept beside the snapshots (``extensions/<id>/extension.zip``, file:// or s3://) so
any worker that reaches the store can load one. A ``.crx`` is stored as the zip
inside it: Chromium's ``--load-extension`` takes an unpacked folder, and signatures
mean nothing to it there. Every check happens at upload, so a launch never meets
an extension it cannot unpack: a manifest v3 at the top (or in the one folder the
zip holds), no path that leaves the folder, and caps on the size before and after
unpacking (a zip bomb is refused by its declared sizes, and again while it is read).
"""
from __future__ import annotations

import io
import json
import shutil
import struct
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from core.snapshots import SnapshotStore

FOLDER = "extensions"
ARCHIVE = "extension.zip"
MANIFEST = "manifest.json"
CRX_MAGIC = b"Cr24"
#: The largest upload (zip or .crx) stored: within BROKER_MAX_BODY_BYTES's default, above most extensions' size.
MAX_BYTES = 5 * 1024 * 1024
#: Most files one extension may hold.
MAX_FILES = 5000
#: Unpacked, an extension may hold this many times its upload cap.
UNPACKED_FACTOR = 4


class ExtensionInvalid(ValueError):
    """What is wrong with an upload, for a person (the API's 422 message)."""


@dataclass(frozen=True)
class CheckedExtension:
    """An upload that passed: its zip (files at the top), and what its manifest says."""

    archive: bytes
    name: str
    version: str
    files: int
    unpacked_bytes: int


def blob_key(extension_id: str) -> str:
    return f"{FOLDER}/{extension_id}/{ARCHIVE}"


def _zip_of(data: bytes) -> bytes:
    """A ``.crx`` (version 2 or 3) is a header and then a zip; anything else must be a zip itself."""
    if not data.startswith(CRX_MAGIC):
        return data
    if len(data) < 12:
        raise ExtensionInvalid("The .crx file is cut short.")
    version, first = struct.unpack_from("<II", data, 4)
    if version == 3:
        start = 12 + first
    elif version == 2 and len(data) >= 16:
        start = 16 + first + struct.unpack_from("<I", data, 12)[0]
    else:
        raise ExtensionInvalid(f"Unknown .crx version {version}.")
    if start > len(data):
        raise ExtensionInvalid("The .crx file is cut short.")
    return data[start:]


def _top_folder(names: list[str]) -> str:
    """The folder every entry sits in, when the manifest is not at the top (a zip of the extension's folder)."""
    if MANIFEST in names:
        return ""
    tops = {name.split("/", 1)[0] for name in names}
    if len(tops) == 1 and f"{next(iter(tops))}/{MANIFEST}" in names:
        return next(iter(tops)) + "/"
    raise ExtensionInvalid(f"No {MANIFEST} at the top of the archive (nor in the one folder it holds).")


def check(data: bytes, max_bytes: int = MAX_BYTES) -> CheckedExtension:
    """The upload as it will be stored, or ExtensionInvalid saying why not."""
    if len(data) > max_bytes:
        raise ExtensionInvalid(f"The file is {len(data)} bytes; at most {max_bytes}.")
    try:
        source = zipfile.ZipFile(io.BytesIO(_zip_of(data)))
        entries = [e for e in source.infolist() if not e.is_dir()]
    except (zipfile.BadZipFile, ValueError, struct.error) as error:
        raise ExtensionInvalid(f"Not a zip or .crx file: {error}.") from error
    if len(entries) > MAX_FILES:
        raise ExtensionInvalid(f"The extension holds {len(entries)} files; at most {MAX_FILES}.")
    limit = max_bytes * UNPACKED_FACTOR
    if sum(e.file_size for e in entries) > limit:
        raise ExtensionInvalid(f"Unpacked, the extension would take more than {limit} bytes.")
    prefix = _top_folder([e.filename for e in entries])
    out, total = io.BytesIO(), 0
    try:
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
            for entry in entries:
                path = PurePosixPath(entry.filename[len(prefix):])
                if not entry.filename.startswith(prefix) or path.is_absolute() or ".." in path.parts \
                        or "\\" in entry.filename or not path.parts:
                    raise ExtensionInvalid(f"The archive names a path outside the extension: {entry.filename!r}.")
                content = source.read(entry)
                total += len(content)
                if total > limit:
                    raise ExtensionInvalid(f"Unpacked, the extension would take more than {limit} bytes.")
                target.writestr(str(path), content)
        manifest = json.loads(source.read(prefix + MANIFEST).decode("utf-8-sig"))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, RuntimeError, OSError, EOFError) as error:
        raise ExtensionInvalid(f"The archive cannot be read: {error}.") from error
    except ValueError as error:
        raise ExtensionInvalid(f"{MANIFEST} is not JSON: {error}.") from error
    if not isinstance(manifest, dict) or manifest.get("manifest_version") != 3:
        raise ExtensionInvalid(f"{MANIFEST} must say \"manifest_version\": 3 (Chromium no longer loads version 2).")
    name, version = manifest.get("name"), manifest.get("version")
    if not isinstance(name, str) or not name or not isinstance(version, str) or not version:
        raise ExtensionInvalid(f"{MANIFEST} must give a \"name\" and a \"version\".")
    return CheckedExtension(out.getvalue(), name[:200], version[:50], len(entries), total)


def save(store: SnapshotStore, extension_id: str, archive: bytes) -> None:
    with tempfile.NamedTemporaryFile(prefix="bb-extension-") as scratch:
        scratch.write(archive)
        scratch.flush()
        store.put_blob(blob_key(extension_id), Path(scratch.name))


def delete(store: SnapshotStore, extension_id: str) -> None:
    store.delete_blobs(f"{FOLDER}/{extension_id}")


def unpack(store: SnapshotStore, extension_id: str, target: Path) -> None:
    """Into ``target`` (created), for one browser; the archive was checked at upload, paths included."""
    target.mkdir(parents=True, exist_ok=True)
    with store.open_blob(blob_key(extension_id)) as blob, tempfile.TemporaryFile() as scratch:
        shutil.copyfileobj(blob, scratch)
        scratch.seek(0)
        with zipfile.ZipFile(scratch) as archive:
            archive.extractall(target)
