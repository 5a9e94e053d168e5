"""The manifests the api has read, by ETag: job totals, folder totals, sha256 and modes unlisted.

A job's ``fileCount``/``totalSize``, every folder's totals in ``entries`` and each file's
``sha256`` and ``mode`` (its permission bits, never setuid, setgid or sticky) come from
``manifest.json`` (ARCHITECTURE section 3), so the first page of a 100,000-file job costs
one delimiter listing, not a full one. A manifest is immutable once
written, so each process keeps the ones it read (least recently used first out, bounded by
the number of files they hold) and asks S3 again with ``If-None-Match``: an unchanged
manifest costs a ``304`` and no parsing.

The manifest is data the job's side may have written (``phfs`` mode), and a 100,000-file
one is 14 MB of JSON: ijson's C parser reads the header (every key before ``files``,
which our writer puts last), then the files a slice at a time, yielding to the event loop
between slices, so reading one never stalls other requests. Each file entry is checked as
``ManifestFile`` would; one bad entry makes the whole manifest ignored (with a warning),
as a garbled one always was.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import ijson
from botocore.exceptions import ClientError

from artifacts_shared.layout import JobPrefix, manifest_key
from artifacts_shared.manifest import Manifest, ManifestError, permission_bits
from artifacts_shared.metadata_store import MANIFEST_MAX_BYTES
from artifacts_shared.s3 import S3Client

__all__ = ["FolderTotals", "ManifestCache", "ManifestIndex", "parse_manifest"]

log = logging.getLogger(__name__)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MODE = re.compile(r"^[0-7]{1,4}\Z")
_FILES_PER_SLICE = 2_000
"""File entries parsed between two yields to the event loop: a few milliseconds."""
_NOT_MODIFIED = frozenset({"304", "NotModified"})
_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})


@dataclass(slots=True)
class FolderTotals:
    files: int = 0
    size: int = 0


@dataclass(slots=True)
class ManifestIndex:
    """What the api needs from one manifest, indexed for lookups by name and by folder."""

    file_count: int
    total_size: int
    skipped: bool
    skip_reason: str | None
    sha256: dict[str, str] = field(default_factory=dict)
    modes: dict[str, int] = field(default_factory=dict)
    """Permission bits (``0o777`` at most) of the files whose entry records a ``mode``."""
    sizes: dict[str, int] = field(default_factory=dict)
    """Each file's size, as its entry says: what an input of one file weighs."""
    folders: dict[str, FolderTotals] = field(default_factory=dict)
    """``"sub/"`` -> the files at any depth below it."""

    def folder(self, path: str) -> FolderTotals | None:
        return self.folders.get(path)


def _check_file(entry: Any) -> tuple[str, int, str, int | None]:
    """``ManifestFile``'s rules, checked without building a model for each of 100,000 files."""
    if not isinstance(entry, dict):
        raise ManifestError("manifest.json: files: an entry is not an object")
    name, size, sha256 = entry.get("name"), entry.get("size"), entry.get("sha256")
    mode = entry.get("mode")
    if not isinstance(name, str) or not name:
        raise ManifestError("manifest.json: files: a name is missing or empty")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ManifestError(f"manifest.json: files: {name[:80]!r}: size must be a whole number")
    if not isinstance(sha256, str) or not _SHA256.match(sha256):
        raise ManifestError(f"manifest.json: files: {name[:80]!r}: sha256 must be 64 hex digits")
    if mode is not None and (not isinstance(mode, str) or not _MODE.match(mode)):
        raise ManifestError(
            f"manifest.json: files: {name[:80]!r}: mode must be 1 to 4 octal digits"
        )
    return name, size, sha256, permission_bits(mode)


def _header(raw: bytes) -> Any:
    """The document up to its ``files`` key, which our writer puts last (not the files)."""
    builder = ijson.ObjectBuilder()
    for prefix, event, value in ijson.parse(raw, use_float=True):
        if prefix == "" and event == "map_key" and value == "files":
            builder.event("end_map", None)
            break
        builder.event(event, value)
    return builder.value


def _validated(document: Any) -> Manifest:
    if not isinstance(document, dict):
        raise ManifestError("manifest.json: document: not a JSON object")
    try:
        return Manifest.model_validate({**document, "files": []})
    except ValueError as err:
        first = str(err).splitlines()[1:2] or [str(err)]
        raise ManifestError(f"manifest.json: {first[0]}") from None


async def _files(raw: bytes) -> AsyncIterator[Any]:
    for count, entry in enumerate(ijson.items(raw, "files.item", use_float=True)):
        if count % _FILES_PER_SLICE == 0:
            await asyncio.sleep(0)
        yield entry


async def parse_manifest(raw: bytes) -> ManifestIndex:
    """The index of ``raw``; raises ``ManifestError`` when it is not a manifest we read."""
    try:
        try:
            manifest = _validated(_header(raw))
        except ManifestError:
            # Keys after "files" (another writer's order): read the whole document at once.
            manifest = _validated(json.loads(raw))
        sha256: dict[str, str] = {}
        modes: dict[str, int] = {}
        sizes: dict[str, int] = {}
        folders: dict[str, FolderTotals] = {}
        async for entry in _files(raw):
            name, size, digest, mode = _check_file(entry)
            sha256[name] = digest
            if mode is not None:
                modes[name] = mode
            sizes[name] = size
            _add_to_folders(folders, name, size)
    except (ijson.JSONError, ValueError) as err:
        if isinstance(err, ManifestError):
            raise
        raise ManifestError(f"manifest.json: not valid JSON: {str(err)[:200]}") from None
    reason = manifest.skip_reason
    return ManifestIndex(
        file_count=manifest.file_count,
        total_size=manifest.total_size,
        skipped=manifest.skipped,
        skip_reason=reason.message if reason else None,
        sha256=sha256,
        modes=modes,
        sizes=sizes,
        folders=folders,
    )


def _add_to_folders(folders: dict[str, FolderTotals], name: str, size: int) -> None:
    end = name.find("/")
    while end != -1:
        totals = folders.get(name[: end + 1])
        if totals is None:
            totals = folders[name[: end + 1]] = FolderTotals()
        totals.files += 1
        totals.size += size
        end = name.find("/", end + 1)


@dataclass(slots=True)
class _Cached:
    etag: str
    index: ManifestIndex

    @property
    def weight(self) -> int:
        return len(self.index.sha256) + 1


class ManifestCache:
    """Process-wide; ``get(prefix)`` revalidates with S3 on every call."""

    def __init__(self, s3: S3Client, bucket: str, *, max_files: int = 500_000) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._max_files = max_files
        self._entries: OrderedDict[str, _Cached] = OrderedDict()
        self._weight = 0
        self._reading: dict[str, asyncio.Future[ManifestIndex | None]] = {}

    async def get(self, prefix: JobPrefix) -> ManifestIndex | None:
        """The folder's manifest; None when it has none or when it is garbled (logged)."""
        key = manifest_key(prefix)
        reading = self._reading.get(key)
        if reading is not None:
            # Another request is reading it right now: share its answer.
            return await asyncio.shield(reading)
        future: asyncio.Future[ManifestIndex | None] = asyncio.get_running_loop().create_future()
        self._reading[key] = future
        try:
            index = await self._read(key)
        except BaseException as err:
            future.set_exception(err)
            future.exception()  # retrieved here; each waiter gets it from the future
            raise
        else:
            future.set_result(index)
            return index
        finally:
            del self._reading[key]

    async def _read(self, key: str) -> ManifestIndex | None:
        cached = self._entries.get(key)
        conditions: dict[str, Any] = {"IfNoneMatch": f'"{cached.etag}"'} if cached else {}
        try:
            response = await self._s3.get_object(
                Bucket=self._bucket, Key=key, Range=f"bytes=0-{MANIFEST_MAX_BYTES}", **conditions
            )
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code")
            if cached is not None and code in _NOT_MODIFIED:
                self._entries.move_to_end(key)
                return cached.index
            if code in _NOT_FOUND:
                self._forget(key)
                return None
            raise
        etag = str(response.get("ETag", "")).strip('"')
        async with response["Body"] as body:
            raw = await body.read()
        try:
            if len(raw) > MANIFEST_MAX_BYTES:
                raise ManifestError(f"manifest.json: larger than {MANIFEST_MAX_BYTES} bytes")
            index = await parse_manifest(raw)
        except ManifestError as err:
            # A garbled manifest costs the sha256 column and the totals, not the listing.
            log.warning("ignoring %s: %s", key, err)
            self._forget(key)
            return None
        self._store(key, _Cached(etag=etag, index=index))
        return index

    def _store(self, key: str, entry: _Cached) -> None:
        self._forget(key)
        if not entry.etag or entry.weight > self._max_files:
            return  # too big to keep: read again next time
        self._entries[key] = entry
        self._weight += entry.weight
        while self._weight > self._max_files:
            _, oldest = self._entries.popitem(last=False)
            self._weight -= oldest.weight

    def _forget(self, key: str) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._weight -= old.weight
