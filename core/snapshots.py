"""Profile snapshots: pack a stopped browser's profile, unpack it into a new one, and keep the archives.

An archive is written whole under a new version name before the context's
pointer (in Redis, by the store) moves to it, and old versions are deleted only
after that, so a crash at any point leaves the previous snapshot in force and
readable. Two backends share one small interface: a local directory (one
machine) and S3-compatible object storage through boto3 (several machines).
"""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tarfile
import time
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import urlsplit

import zstandard

from core.config import Config

ARCHIVE_SUFFIX = ".tar.zst"
ZSTD_LEVEL = 3
#: Folders that are caches or crash data: rebuilt by Chromium, never state a user would miss.
SKIPPED_DIRS = frozenset({
    "Cache", "Code Cache", "GPUCache", "ShaderCache", "GrShaderCache", "GraphiteDawnCache", "DawnCache",
    "DawnGraphiteCache", "DawnWebGPUCache", "CacheStorage", "ScriptCache", "Crashpad", "Crash Reports",
    "component_crx_cache", "BrowserMetrics", "Safe Browsing", "optimization_guide_model_store",
})
#: Files that describe the last run of the browser, not its state.
SKIPPED_FILES = frozenset({"DevToolsActivePort", "RunningChromeVersion", "BrowserMetrics-spare.pma"})
SKIPPED_PREFIXES = ("Singleton",)


class SnapshotError(RuntimeError):
    pass


class SnapshotNotHere(SnapshotError):
    """A ``file://`` snapshot saved on another host: the context is fine, this worker cannot see it."""


def new_version() -> str:
    """Sortable by time, unique across workers."""
    return f"v{int(time.time() * 1000):013d}-{secrets.token_hex(4)}"


def _kept(path: Path) -> bool:
    if path.is_dir():
        return path.name not in SKIPPED_DIRS
    return path.name not in SKIPPED_FILES and not path.name.startswith(SKIPPED_PREFIXES) and not path.is_symlink()


def pack_profile(profile: Path, archive: Path) -> int:
    """Archive the profile minus caches and locks; only call once Chromium has exited. Returns the size."""
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    with open(archive, "wb") as raw, compressor.stream_writer(raw) as zstd, tarfile.open(fileobj=zstd, mode="w|") as tar:
        stack = [profile]
        while stack:
            folder = stack.pop()
            for entry in sorted(folder.iterdir()):
                if not _kept(entry):
                    continue
                if entry.is_dir():
                    tar.add(entry, arcname=str(entry.relative_to(profile)), recursive=False)
                    stack.append(entry)
                elif entry.is_file():
                    tar.add(entry, arcname=str(entry.relative_to(profile)))
    return archive.stat().st_size


def unpack_profile(archive: Path, profile: Path) -> None:
    try:
        with open(archive, "rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as zstd, \
                tarfile.open(fileobj=zstd, mode="r|") as tar:
            tar.extractall(profile, filter="data")
    except (tarfile.TarError, zstandard.ZstdError, OSError, EOFError) as error:
        raise SnapshotError(f"the snapshot archive is unreadable: {error}") from error


class SnapshotStore(Protocol):
    def put(self, context_id: str, version: str, source: Path) -> None: ...

    def get(self, context_id: str, version: str, target: Path) -> None: ...

    def delete(self, context_id: str, version: str) -> None: ...

    def versions(self, context_id: str) -> list[str]: ...

    def put_blob(self, key: str, source: Path) -> None: ...

    def open_blob(self, key: str) -> BinaryIO: ...

    def delete_blobs(self, prefix: str) -> None: ...

    def folders(self, prefix: str = "") -> list[str]: ...


class LocalSnapshotStore:
    """``file:///path``: each archive written to a temporary name, synced, then renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, context_id: str, version: str) -> Path:
        return self.root / context_id / f"{version}{ARCHIVE_SUFFIX}"

    def put(self, context_id: str, version: str, source: Path) -> None:
        self._write(self._path(context_id, version), source)

    def put_blob(self, key: str, source: Path) -> None:
        """Any other file kept beside the snapshots (a stopped session's downloads), written as safely."""
        self._write(self.root / key, source)

    def open_blob(self, key: str) -> BinaryIO:
        try:
            return open(self.root / key, "rb")
        except FileNotFoundError as error:
            raise SnapshotNotHere(f"{key} is not in {self.root} on this host") from error

    def delete_blobs(self, prefix: str) -> None:
        """Every blob under ``prefix/``, and the folders above it left empty (a moved session's ``moves/<id>``), the
        top-level ones (``moves``, ``downloads``) kept."""
        folder = self.root / prefix
        shutil.rmtree(folder, ignore_errors=True)
        for parent in folder.parents:
            if parent.parent == self.root or self.root not in parent.parents:
                break
            try:
                parent.rmdir()
            except OSError:
                break

    def folders(self, prefix: str = "") -> list[str]:
        """Names of the folders right under ``prefix/`` (the root's by default): contexts, ``downloads``, sessions."""
        try:
            return sorted(p.name for p in (self.root / prefix).iterdir() if p.is_dir() and not p.is_symlink())
        except FileNotFoundError:
            return []

    def _hand_to_owner(self, path: Path) -> None:
        """What a root worker writes belongs to the store folder's owner: the web process (the image's user, beside
        a root worker in docker-compose.yml) deletes contexts and download archives there too."""
        if os.geteuid() != 0:
            return
        owner = self.root.stat()
        if owner.st_uid != 0:
            os.chown(path, owner.st_uid, owner.st_gid, follow_symlinks=False)

    def _make_folder(self, folder: Path) -> None:
        created = []
        while not folder.exists() and self.root in folder.parents:
            created.append(folder)
            folder = folder.parent
        for new in reversed(created):
            new.mkdir(exist_ok=True)
            self._hand_to_owner(new)

    def _write(self, final: Path, source: Path) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._make_folder(final.parent)
        partial = final.with_name(f".{final.name}.partial")
        try:
            with open(source, "rb") as src, open(partial, "wb") as dst:
                shutil.copyfileobj(src, dst, 1024 * 1024)
                dst.flush()
                os.fsync(dst.fileno())
            self._hand_to_owner(partial)
            os.replace(partial, final)
        except BaseException:
            # A full disk, say: what was written of the archive is no use to anyone, and only takes room.
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
            raise
        folder = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

    def get(self, context_id: str, version: str, target: Path) -> None:
        try:
            shutil.copyfile(self._path(context_id, version), target)
        except FileNotFoundError as error:
            raise SnapshotNotHere(
                f"its snapshot {version} is not in {self.root} on this worker's host: file:// snapshots stay on the "
                "host that saved them. With workers on several hosts, set BROKER_SNAPSHOT_URL to an s3:// store "
                "that every worker reaches (or put the file:// folder on storage every worker mounts)"
            ) from error

    def delete(self, context_id: str, version: str) -> None:
        self._path(context_id, version).unlink(missing_ok=True)
        folder = self.root / context_id
        if folder.exists() and not any(folder.iterdir()):
            folder.rmdir()

    def versions(self, context_id: str) -> list[str]:
        folder = self.root / context_id
        if not folder.exists():
            return []
        return sorted(p.name[: -len(ARCHIVE_SUFFIX)] for p in folder.iterdir() if p.name.endswith(ARCHIVE_SUFFIX)
                      and not p.name.startswith("."))


class S3SnapshotStore:
    """``s3://bucket/prefix``: an object appears whole or not at all, so no temporary name is needed."""

    def __init__(self, bucket: str, prefix: str, endpoint_url: str | None) -> None:
        import boto3

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = boto3.client("s3", endpoint_url=endpoint_url or None)

    def _key(self, context_id: str, version: str = "") -> str:
        parts = [p for p in (self.prefix, context_id) if p]
        return "/".join(parts) + "/" + (f"{version}{ARCHIVE_SUFFIX}" if version else "")

    def put(self, context_id: str, version: str, source: Path) -> None:
        self.client.upload_file(str(source), self.bucket, self._key(context_id, version))

    def get(self, context_id: str, version: str, target: Path) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.download_file(self.bucket, self._key(context_id, version), str(target))
        except ClientError as error:
            raise SnapshotError(f"snapshot {version} cannot be read: {error}") from error

    def delete(self, context_id: str, version: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(context_id, version))

    def _blob_key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_blob(self, key: str, source: Path) -> None:
        self.client.upload_file(str(source), self.bucket, self._blob_key(key))

    def open_blob(self, key: str) -> BinaryIO:
        """The object's body, streamed as it is read."""
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._blob_key(key))["Body"]
        except ClientError as error:
            raise SnapshotError(f"{key} cannot be read: {error}") from error

    def delete_blobs(self, prefix: str) -> None:
        """Every object under ``prefix/``."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                       Prefix=self._blob_key(prefix) + "/")
        for page in pages:
            for obj in page.get("Contents", []):
                self.client.delete_object(Bucket=self.bucket, Key=obj["Key"])

    def folders(self, prefix: str = "") -> list[str]:
        """Names of the "folders" (common prefixes) right under ``prefix/``, the store's prefix by default."""
        base = "/".join(p for p in (self.prefix, prefix.strip("/")) if p)
        base = f"{base}/" if base else ""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base, Delimiter="/")
        return sorted(common["Prefix"][len(base):].rstrip("/") for page in pages
                      for common in page.get("CommonPrefixes", []))

    def versions(self, context_id: str) -> list[str]:
        prefix = self._key(context_id)
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        names = [obj["Key"][len(prefix):] for page in pages for obj in page.get("Contents", [])]
        return sorted(n[: -len(ARCHIVE_SUFFIX)] for n in names if n.endswith(ARCHIVE_SUFFIX))


def open_snapshot_store(config: Config) -> SnapshotStore:
    url = urlsplit(config.snapshots.url)
    if url.scheme == "file":
        return LocalSnapshotStore(Path(url.path))
    if url.scheme == "s3":
        return S3SnapshotStore(url.netloc, url.path, config.snapshots.s3_endpoint_url)
    raise ValueError(f"BROKER_SNAPSHOT_URL must be file:///path or s3://bucket/prefix, not {config.snapshots.url!r}")
