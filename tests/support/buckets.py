"""Putting test objects into a bucket and photographing what is there.

``snapshot`` records each object's size, ETag (the MD5 of its bytes for a plain PUT) and
last-modified time, so "untouched to the byte" is one equality: same content, never
rewritten.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime

from artifacts_shared.s3 import S3Client, iter_objects

Photo = dict[str, tuple[int, str, datetime]]


async def put_objects(
    s3: S3Client, bucket: str, objects: Mapping[str, bytes], *, concurrency: int = 16
) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def put(key: str, body: bytes) -> None:
        async with gate:
            await s3.put_object(Bucket=bucket, Key=key, Body=body)

    await asyncio.gather(*(put(key, body) for key, body in objects.items()))


async def snapshot(s3: S3Client, bucket: str, prefix: str = "") -> Photo:
    return {
        item.key: (item.size, item.etag, item.last_modified)
        async for item in iter_objects(s3, bucket, prefix)
    }


def under(photo: Photo, prefix: str) -> Photo:
    return {key: value for key, value in photo.items() if key.startswith(prefix)}
