"""Uploaded extensions are checked whole at upload (core/extension_files.py): what passes unpacks as Chromium
loads it, what would not is refused with a reason; no browser is needed to tell."""
from __future__ import annotations

import io
import json
import struct
import zipfile

import pytest

from core.extension_files import ExtensionInvalid, blob_key, check, save, unpack
from core.snapshots import LocalSnapshotStore

MANIFEST = {"manifest_version": 3, "name": "Marker", "version": "1.2"}


def zipped(files: dict[str, bytes | str]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return out.getvalue()


def extension(prefix: str = "", manifest: dict = MANIFEST) -> bytes:
    return zipped({f"{prefix}manifest.json": json.dumps(manifest), f"{prefix}content.js": "1"})


def crx3(payload: bytes) -> bytes:
    header = b"\x0a\x00"
    return b"Cr24" + struct.pack("<II", 3, len(header)) + header + payload


def names(archive: bytes) -> set[str]:
    return set(zipfile.ZipFile(io.BytesIO(archive)).namelist())


def test_a_zip_a_zip_of_the_folder_and_a_crx_are_stored_with_the_manifest_at_the_top():
    for upload in (extension(), extension("marker/"), crx3(extension())):
        checked = check(upload, 1 << 20)
        assert names(checked.archive) == {"manifest.json", "content.js"}
        assert (checked.name, checked.version, checked.files) == ("Marker", "1.2", 2)


@pytest.mark.parametrize("upload, reason", [
    (b"not a zip", "Not a zip"),
    (zipped({"content.js": "1"}), "No manifest.json"),
    (extension(manifest={**MANIFEST, "manifest_version": 2}), "manifest_version"),
    (extension(manifest={"manifest_version": 3}), "name"),
    (zipped({"manifest.json": "{"}), "not JSON"),
    (zipped({"manifest.json": json.dumps(MANIFEST), "../evil.js": "1"}), "outside"),
    (zipped({"manifest.json": json.dumps(MANIFEST), "/etc/evil": "1"}), "outside"),
    (zipped({"manifest.json": json.dumps(MANIFEST), "big.bin": b"\0" * 5000}), "Unpacked"),
    (b"Cr24" + struct.pack("<II", 3, 999), "cut short"),
])
def test_what_chromium_would_not_load_or_that_leaves_its_folder_is_refused(upload, reason):
    with pytest.raises(ExtensionInvalid, match=reason):
        check(upload, 1200)


def test_an_upload_over_the_cap_is_refused_before_it_is_read():
    with pytest.raises(ExtensionInvalid, match="at most"):
        check(extension() + b"\0" * 100, len(extension()) + 99)


def test_a_stored_extension_unpacks_into_a_browsers_folder(tmp_path):
    store = LocalSnapshotStore(tmp_path / "store")
    save(store, "ext_" + "a" * 32, check(extension("marker/"), 1 << 20).archive)
    assert (tmp_path / "store" / blob_key("ext_" + "a" * 32)).is_file()
    unpack(store, "ext_" + "a" * 32, tmp_path / "browser" / "ext")
    assert json.loads((tmp_path / "browser" / "ext" / "manifest.json").read_text())["name"] == "Marker"
