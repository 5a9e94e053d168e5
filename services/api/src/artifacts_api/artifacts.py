"""A job's artifact folder as the api shows it: pages of files, folder by folder, and totals.

Two ways in, both one S3 page at a time:

- ``list_files``: the flat listing (every file, key order), a page of up to 1,000 keys per
  request, for ``items``; it resumes after a key (``StartAfter``), which means the same on
  every S3 server.
- ``list_folder``: one delimiter listing page of a folder (files and sub-folders, in the
  server's order), for ``entries``; it resumes with the server's own continuation token,
  since servers disagree on where a folder sorts (SeaweedFS puts ``sub/`` before
  ``sub-x``, AWS after).

Both skip the metadata folders ``.primehub/`` and ``.metadata/`` and keys that no
collector could have written (``..`` or empty path steps, NUL): a file name must never be
able to point a download or a zip entry outside the job's folder. SeaweedFS keeps a
folder's directory after its last object is deleted and still lists it as a common
prefix: ``list_folder`` reports such prefixes as ``unverified`` so the caller can check
them before showing a folder that holds nothing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from artifacts_shared.layout import (
    JobPrefix,
    UnsafeNameError,
    artifact_key,
    is_metadata,
    relative_name,
)
from artifacts_shared.s3 import S3Client, StoredObject, iter_objects

__all__ = [
    "MAX_PAGE",
    "ArtifactFile",
    "FilePage",
    "FolderEntry",
    "FolderPage",
    "artifact_name",
    "folder_path",
    "iter_artifact_files",
    "list_files",
    "list_folder",
]

log = logging.getLogger(__name__)

MAX_PAGE = 1000
"""S3 returns at most this many keys (and common prefixes) a request."""


@dataclass(frozen=True, slots=True)
class ArtifactFile:
    """``PhJobArtifactItem``: field names are its snake_case."""

    name: str
    key: str
    size: int
    last_modified: datetime
    sha256: str | None = None
    mode: int | None = None
    """Permission bits from the manifest (``0o777`` at most); None when it records none."""


@dataclass(frozen=True, slots=True)
class FolderEntry:
    """``PhJobArtifactFolder``: a folder inside the job's folder, e.g. ``sub/deep/``."""

    name: str
    path: str
    file_count: int | None = None
    total_size: int | None = None


@dataclass(frozen=True, slots=True)
class FilePage:
    files: list[StoredObject]
    listed: int
    """Keys S3 returned, metadata and refused ones included: what the request cost."""
    truncated: bool
    last_key: str | None


@dataclass(frozen=True, slots=True)
class FolderPage:
    files: list[StoredObject]
    folders: list[str]
    """Folder paths relative to the job folder, with their trailing slash."""
    listed: int
    next_token: str | None


def _safe(prefix: JobPrefix, relative: str) -> bool:
    try:
        artifact_key(prefix, relative)
    except UnsafeNameError as err:
        log.warning("not listing %r under %s: %s", relative, prefix, err)
        return False
    return True


def artifact_name(prefix: JobPrefix, key: str) -> str | None:
    """The artifact path of ``key`` in the job folder ``prefix``; None for metadata, keys
    outside the folder and names no collector could have written (logged)."""
    relative = relative_name(prefix, key)
    if relative is None or not _safe(prefix, relative):
        return None
    return relative


def folder_path(path: str) -> str:
    """``path`` as a folder inside a job folder (``"sub/deep/"``), or ``""`` for the top.

    Raises ``UnsafeNameError`` for what no listing may be pointed at: ``..`` and empty
    steps, absolute paths, NUL, the metadata folders.
    """
    if path in ("", "/"):
        return ""
    folder = path if path.endswith("/") else f"{path}/"
    artifact_key(JobPrefix(""), f"{folder}x")  # the same rules as a file inside it
    return folder


async def list_files(
    s3: S3Client,
    bucket: str,
    prefix: JobPrefix,
    *,
    start_after: str | None = None,
    size: int = MAX_PAGE,
) -> FilePage:
    """One page of the flat listing: the artifact files after ``start_after`` (a key)."""
    kwargs: dict[str, Any] = {"StartAfter": start_after} if start_after else {}
    response = await s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=size, **kwargs)
    contents = response.get("Contents", ())
    files = []
    for item in contents:
        relative = relative_name(prefix, item["Key"])
        if relative is not None and _safe(prefix, relative):
            files.append(StoredObject.listed(item))
    return FilePage(
        files=files,
        listed=len(contents),
        truncated=bool(response.get("IsTruncated")),
        last_key=contents[-1]["Key"] if contents else None,
    )


async def list_folder(
    s3: S3Client,
    bucket: str,
    prefix: JobPrefix,
    path: str,
    *,
    starts_with: str = "",
    token: str | None = None,
    size: int = MAX_PAGE,
) -> FolderPage:
    """One delimiter listing page of the folder ``path`` (from ``folder_path``), of the
    entries whose name starts with ``starts_with``."""
    kwargs: dict[str, Any] = {"ContinuationToken": token} if token else {}
    response = await s3.list_objects_v2(
        Bucket=bucket,
        Prefix=f"{prefix}{path}{starts_with}",
        Delimiter="/",
        MaxKeys=size,
        **kwargs,
    )
    contents = response.get("Contents", ())
    prefixes = response.get("CommonPrefixes", ())
    files = []
    for item in contents:
        relative = relative_name(prefix, item["Key"])
        if relative is not None and _safe(prefix, relative):
            files.append(StoredObject.listed(item))
    folders = []
    for common in prefixes:
        key = common.get("Prefix", "")
        if not key.startswith(prefix):
            continue
        relative = key[len(prefix) :]
        if not relative.endswith("/") or is_metadata(relative):
            continue
        if _safe(prefix, f"{relative}x"):
            folders.append(relative)
    return FolderPage(
        files=files,
        folders=folders,
        listed=len(contents) + len(prefixes),
        next_token=response.get("NextContinuationToken") if response.get("IsTruncated") else None,
    )


async def iter_artifact_files(
    s3: S3Client, bucket: str, prefix: JobPrefix
) -> AsyncIterator[tuple[str, StoredObject]]:
    """``(name, object)`` for every artifact file under ``prefix``, in key order."""
    async for stored in iter_objects(s3, bucket, prefix):
        relative = artifact_name(prefix, stored.key)
        if relative is not None:
            yield relative, stored
