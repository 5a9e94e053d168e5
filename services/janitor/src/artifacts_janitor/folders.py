"""Finding the job folders: ``groups/*/jobArtifacts/*/``, by delimiter listings.

Two levels of "folder" listings (common prefixes) reach every job folder without
listing a single artifact, page by page, so memory does not grow with the bucket.
Anything that is not exactly a job folder — ``jobArtifactsOld/``, files lying directly
in ``jobArtifacts/``, names that ``layout`` refuses — is never yielded, so the deleting
code downstream cannot be pointed anywhere else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from artifacts_shared.layout import (
    GROUPS_ROOT,
    GroupPath,
    JobPrefix,
    UnsafeNameError,
    job_artifacts_root,
    parse_job_prefix,
)
from artifacts_shared.s3 import S3Client, iter_prefixes

__all__ = ["iter_job_folders"]


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
