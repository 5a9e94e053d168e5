"""Finding the job folders: ``groups/*/jobArtifacts/*/``, by delimiter listings.

Two levels of "folder" listings (common prefixes) reach every job folder without
listing a single artifact, page by page, so memory does not grow with the bucket.
Anything that is not exactly a job folder — ``jobArtifactsOld/``, files lying directly
in ``jobArtifacts/``, names that ``layout`` refuses — is never yielded, so the deleting
code downstream cannot be pointed anywhere else.

Some servers (SeaweedFS and the JuiceFS gateway, whose S3 sits on a file system) keep a
folder as a directory after its last object is deleted, and a delimiter listing still shows
it (SeaweedFS removes it itself a couple of minutes later, JuiceFS never). Such a folder
holds nothing and is not a job folder; ``leftover_markers`` names the directory keys that
remove it. Deleting a directory key is harmless elsewhere: on AWS S3 no such object exists,
and SeaweedFS and JuiceFS leave a directory that still holds objects.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass

from artifacts_shared.layout import (
    GROUPS_ROOT,
    GroupPath,
    JobPrefix,
    ObjectKey,
    UnsafeNameError,
    job_artifacts_root,
    parse_job_prefix,
)
from artifacts_shared.s3 import S3Client, StoredObject, iter_objects, iter_prefixes

__all__ = [
    "FolderPage",
    "first_page",
    "iter_job_folders",
    "leftover_markers",
    "newest_object_time",
]


@dataclass(frozen=True, slots=True)
class FolderPage:
    """The first page of a folder's listing; ``complete`` when it holds every object."""

    objects: list[StoredObject]
    complete: bool


async def first_page(s3: S3Client, bucket: str, prefix: JobPrefix) -> FolderPage:
    """One ``ListObjectsV2`` of the folder: a whole small folder, or the start of a large one."""
    response = await s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    objects = [StoredObject.listed(item) for item in response.get("Contents", ())]
    return FolderPage(objects, complete=not response.get("IsTruncated", False))


async def newest_object_time(s3: S3Client, bucket: str, prefix: JobPrefix) -> float | None:
    """When the folder's newest object was written, None when it holds none."""
    newest: float | None = None
    async for stored in iter_objects(s3, bucket, prefix):
        stamp = stored.last_modified.timestamp()
        newest = stamp if newest is None else max(newest, stamp)
    return newest


async def iter_job_folders(
    s3: S3Client, bucket: str, *, refused: Callable[[str], None]
) -> AsyncIterator[JobPrefix]:
    """Every job folder in ``bucket``; ``refused`` hears of look-alikes that are skipped."""
    async for group_folder in iter_prefixes(s3, bucket, GROUPS_ROOT):
        group = group_folder[len(GROUPS_ROOT) : -1]
        try:
            root = job_artifacts_root(GroupPath(group))
        except UnsafeNameError:
            refused(group_folder)
            continue
        async for folder in iter_prefixes(s3, bucket, root):
            if parse_job_prefix(folder) is None:
                refused(folder)
                continue
            yield JobPrefix(folder)


def _directory_markers(prefix: JobPrefix, relative_dirs: Iterable[str]) -> list[ObjectKey]:
    """The directory keys of an emptied folder, deepest first, the folder itself last.

    ``relative_dirs`` are the folders its objects lay in (``sub/deeper/``), relative to
    ``prefix``; a directory is removed only once empty, so children go first.
    """
    every = {""}
    for relative in relative_dirs:
        parts = relative.strip("/").split("/")
        every.update("/".join(parts[:depth]) + "/" for depth in range(1, len(parts) + 1))
    every.discard("/")
    ordered = sorted(every, key=lambda name: (-name.count("/"), name))
    return [ObjectKey(f"{prefix}{name}") for name in ordered]


async def leftover_markers(s3: S3Client, bucket: str, prefix: JobPrefix) -> list[ObjectKey] | None:
    """The directory keys left of a folder that holds no object; None when it holds one.

    JuiceFS's gateway lists an empty directory as an object named ``dir/``; SeaweedFS shows
    one only in a delimiter listing; either way it is no artifact.
    """
    found: list[str] = []
    async for item in iter_objects(s3, bucket, prefix):
        if not item.key.endswith("/"):
            return None
        found.append(item.key[len(prefix) :])
    pending = [str(prefix)]
    while pending:
        folder = pending.pop()
        async for child in iter_prefixes(s3, bucket, folder):
            found.append(child[len(prefix) :])
            pending.append(child)
    return _directory_markers(prefix, found)
