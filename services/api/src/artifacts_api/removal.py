"""Deleting one job's artifacts by hand, in the janitor's safe order.

Artifacts first, then the metadata, then the ``expiredAt`` objects last: until they go,
an interrupted deletion leaves a folder whose expiry still says what to do with it (an
expired one is finished by the janitor's next run), never a half-deleted folder that
looks kept. A step that S3 refuses in part stops the deletion there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from artifacts_api.errors import Unavailable
from artifacts_shared.layout import (
    JobPrefix,
    expired_at_key,
    is_metadata,
    legacy_expired_at_key,
)
from artifacts_shared.s3 import S3Client, delete_keys, iter_objects

__all__ = ["delete_folder"]


async def delete_folder(s3: S3Client, bucket: str, prefix: JobPrefix) -> int:
    """Delete every object under ``prefix``; how many there were (0: nothing was stored).

    The listing streams straight into the artifacts' deletes; only the metadata keys (a
    handful) are held until the artifacts are gone.
    """
    last = {expired_at_key(prefix), legacy_expired_at_key(prefix)}
    metadata: list[str] = []
    final: list[str] = []

    async def artifacts() -> AsyncIterator[str]:
        async for stored in iter_objects(s3, bucket, prefix):
            if stored.key in last:
                final.append(stored.key)
            elif is_metadata(stored.key[len(prefix) :]):
                metadata.append(stored.key)
            else:
                yield stored.key

    deleted = 0
    for step, keys in (("artifacts", artifacts()), ("metadata", metadata), ("expiredAt", final)):
        outcome = await delete_keys(s3, bucket, keys)
        deleted += outcome.deleted
        if not outcome.ok:
            failure = outcome.failures[0]
            raise Unavailable(
                f"object storage refused to delete {len(outcome.failures)} of the {step} "
                f"objects ({failure.code} on {failure.key}); the rest of the folder is kept",
                backend="s3",
            )
    return deleted
