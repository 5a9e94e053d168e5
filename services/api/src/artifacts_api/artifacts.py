"""A job's artifact folder as the api shows it: files, sizes, times, sha256 and expiry.

The listing is streamed page by page (every page, however many files) and skips the
metadata folders ``.primehub/`` and ``.metadata/``. The manifest (for sha256 and the skip
reason) and ``expiredAt`` are separate reads: callers ask for them only when the query
selects a field that needs them, and they run concurrently with the listing.

Keys that no collector could have written (``..`` or empty path steps, NUL) are left out
with a warning: a file name must never be able to point a download or a zip entry
outside the job's folder.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from artifacts_api.times import iso_utc
from artifacts_shared.expiry import to_datetime
from artifacts_shared.layout import JobPrefix, UnsafeNameError, artifact_key, relative_name
from artifacts_shared.manifest import Manifest, ManifestError
from artifacts_shared.metadata_store import ExpiryState, read_expiry, read_manifest
from artifacts_shared.s3 import S3Client, StoredObject, iter_objects

__all__ = [
    "ArtifactFile",
    "ArtifactFolder",
    "artifact_name",
    "iter_artifact_files",
    "read_artifact_folder",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ArtifactFile:
    name: str
    key: str
    size: int
    last_modified: str
    sha256: str | None = None


@dataclass(frozen=True, slots=True)
class ArtifactFolder:
    """What GraphQL's ``PhJobArtifact`` resolves from; field names are its snake_case."""

    job_id: str
    key_prefix: JobPrefix
    items: list[ArtifactFile]
    expired_at: str | None
    skipped: bool
    skip_reason: str | None

    @property
    def prefix(self) -> str:
        """Without the trailing slash: PrimeHub's clients join ``f"{prefix}/{name}"``."""
        return self.key_prefix.rstrip("/")

    @property
    def file_count(self) -> int:
        return len(self.items)

    @property
    def total_size(self) -> int:
        return sum(item.size for item in self.items)


def artifact_name(prefix: JobPrefix, key: str) -> str | None:
    """The artifact path of ``key`` in the job folder ``prefix``; None for metadata, keys
    outside the folder and names no collector could have written (logged)."""
    relative = relative_name(prefix, key)
    if relative is None:
        return None
    try:
        artifact_key(prefix, relative)
    except UnsafeNameError as err:
        log.warning("not listing %r under %s: %s", relative, prefix, err)
        return None
    return relative


async def iter_artifact_files(
    s3: S3Client, bucket: str, prefix: JobPrefix
) -> AsyncIterator[tuple[str, StoredObject]]:
    """``(name, object)`` for every artifact file under ``prefix``, in key order."""
    async for stored in iter_objects(s3, bucket, prefix):
        relative = artifact_name(prefix, stored.key)
        if relative is not None:
            yield relative, stored


async def _manifest_or_none(s3: S3Client, bucket: str, prefix: JobPrefix) -> Manifest | None:
    try:
        return await read_manifest(s3, bucket, prefix)
    except ManifestError as err:
        # A garbled manifest costs the sha256 column, not the listing.
        log.warning("ignoring the manifest of %s: %s", prefix, err)
        return None


async def _expired_at(s3: S3Client, bucket: str, prefix: JobPrefix) -> str | None:
    reading = await read_expiry(s3, bucket, prefix)
    if reading.state is not ExpiryState.SET or reading.expired_at is None:
        return None
    return iso_utc(to_datetime(reading.expired_at))


async def read_artifact_folder(
    s3: S3Client,
    bucket: str,
    prefix: JobPrefix,
    *,
    job_id: str,
    with_manifest: bool,
    with_expiry: bool,
) -> ArtifactFolder:
    """The folder; no items when the job has collected nothing (yet), or it expired."""
    side_reads: dict[str, asyncio.Task[Any]] = {}
    if with_manifest:
        side_reads["manifest"] = asyncio.create_task(_manifest_or_none(s3, bucket, prefix))
    if with_expiry:
        side_reads["expiry"] = asyncio.create_task(_expired_at(s3, bucket, prefix))
    try:
        files = [item async for item in iter_artifact_files(s3, bucket, prefix)]
        manifest: Manifest | None = await side_reads["manifest"] if with_manifest else None
        expired_at: str | None = await side_reads["expiry"] if with_expiry else None
    finally:
        for task in side_reads.values():
            task.cancel()
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: the listing's own error is the one reported
    sha256 = manifest.sha256_by_name() if manifest else {}
    items = [
        ArtifactFile(
            name=name,
            key=stored.key,
            size=stored.size,
            last_modified=iso_utc(stored.last_modified) or "",
            sha256=sha256.get(name),
        )
        for name, stored in files
    ]
    skip = manifest.skip_reason if manifest else None
    return ArtifactFolder(
        job_id=job_id,
        key_prefix=prefix,
        items=items,
        expired_at=expired_at,
        skipped=bool(manifest and manifest.skipped),
        skip_reason=skip.message if skip else None,
    )
