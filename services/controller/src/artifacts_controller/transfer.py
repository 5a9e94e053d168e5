"""Pushing local files to the bucket: bounded parallelism, multipart for large files.

Every file is read once: the sha256 is computed from the same bytes that are sent, so
the manifest describes what the bucket holds. At most ``concurrency`` requests run at
once, counting each part of a multipart upload as one request, which also bounds memory
to about ``concurrency * part_size``. Reads and hashing run in threads (hashlib releases
the GIL), so the event loop keeps the connections busy meanwhile.

Any failure cancels the rest and propagates: the caller must not write metadata then.
Multipart uploads that fail are aborted; those left by a killed process are aborted by
``abort_stale_multipart_uploads`` when the upload is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import mimetypes
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from artifacts_shared.s3 import S3Client

if TYPE_CHECKING:
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef

__all__ = [
    "MIB",
    "FileChangedError",
    "FileToUpload",
    "Tuning",
    "UploadedFile",
    "abort_stale_multipart_uploads",
    "upload_files",
]

MIB = 1024 * 1024
_MAX_PARTS = 10_000  # S3's limit per multipart upload


@dataclass(frozen=True, slots=True)
class Tuning:
    concurrency: int = 8
    multipart_threshold: int = 16 * MIB
    """Files of at least this many bytes go up in parts."""
    part_size: int = 16 * MIB
    """At least 5 MiB (S3's minimum part but the last); grown for files over 160 GB.
    16 MiB rather than boto3's 8: half the requests (each signed, each a round trip) for
    the same bytes; memory stays bounded by ``concurrency * part_size``."""

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.part_size < 5 * MIB:
            raise ValueError("part_size must be at least 5 MiB")

    def part_size_for(self, size: int) -> int:
        needed = -(-size // _MAX_PARTS)
        return max(self.part_size, -(-needed // MIB) * MIB)


@dataclass(frozen=True, slots=True)
class FileToUpload:
    path: Path
    key: str


@dataclass(frozen=True, slots=True)
class UploadedFile:
    key: str
    size: int
    sha256: str


class FileChangedError(Exception):
    """A file's size changed while it was read: its hash would describe nothing."""


async def upload_files(
    files: Sequence[FileToUpload], *, s3: S3Client, bucket: str, tuning: Tuning
) -> list[UploadedFile]:
    """Upload ``files``; the result is in the same order. The first failure propagates."""
    slots = asyncio.Semaphore(tuning.concurrency)
    results: list[UploadedFile | None] = [None] * len(files)
    pending: Iterator[int] = iter(range(len(files)))

    async def worker() -> None:
        # Workers pull from one iterator, so a million files never means a million tasks.
        for index in pending:
            item = files[index]
            results[index] = await _upload_one(
                item, s3=s3, bucket=bucket, tuning=tuning, slots=slots
            )

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(tuning.concurrency, len(files))):
                group.create_task(worker())
    except BaseExceptionGroup as failures:
        # One clear error for the caller, not a group of cancellations.
        raise failures.exceptions[0] from None
    return [result for result in results if result is not None]


def _content_type(key: str) -> str:
    guessed, _ = mimetypes.guess_type(key, strict=False)
    return guessed or "application/octet-stream"


def _read_whole(path: Path) -> tuple[bytes, str]:
    body = path.read_bytes()
    return body, hashlib.sha256(body).hexdigest()


async def _upload_one(
    item: FileToUpload, *, s3: S3Client, bucket: str, tuning: Tuning, slots: asyncio.Semaphore
) -> UploadedFile:
    size = item.path.stat().st_size
    if size >= tuning.multipart_threshold:
        return await _upload_parts(item, size, s3=s3, bucket=bucket, tuning=tuning, slots=slots)
    async with slots:
        body, sha256 = await asyncio.to_thread(_read_whole, item.path)
        await s3.put_object(
            Bucket=bucket, Key=item.key, Body=body, ContentType=_content_type(item.key)
        )
    return UploadedFile(key=item.key, size=len(body), sha256=sha256)


def _read_part(handle: IO[bytes], size: int, digest: hashlib._Hash) -> bytes:
    chunk = handle.read(size)
    digest.update(chunk)
    return chunk


async def _upload_parts(
    item: FileToUpload,
    size: int,
    *,
    s3: S3Client,
    bucket: str,
    tuning: Tuning,
    slots: asyncio.Semaphore,
) -> UploadedFile:
    part_size = tuning.part_size_for(size)
    created = await s3.create_multipart_upload(
        Bucket=bucket, Key=item.key, ContentType=_content_type(item.key)
    )
    upload_id = created["UploadId"]
    parts: list[CompletedPartTypeDef] = []
    digest = hashlib.sha256()
    sent = 0

    async def send(number: int, chunk: bytes) -> None:
        try:
            response = await s3.upload_part(
                Bucket=bucket, Key=item.key, UploadId=upload_id, PartNumber=number, Body=chunk
            )
            parts.append({"ETag": response["ETag"], "PartNumber": number})
        finally:
            slots.release()

    try:
        with item.path.open("rb") as handle:
            async with asyncio.TaskGroup() as group:
                number = 0
                while True:
                    # The slot is taken before reading, so parts in memory stay bounded.
                    await slots.acquire()
                    try:
                        chunk = await asyncio.to_thread(_read_part, handle, part_size, digest)
                    except BaseException:
                        slots.release()
                        raise
                    if not chunk:
                        slots.release()
                        break
                    number += 1
                    sent += len(chunk)
                    group.create_task(send(number, chunk))
        if sent != size:
            raise FileChangedError(f"{item.path}: {size} bytes became {sent} while uploading")
        parts.sort(key=lambda part: part["PartNumber"])
        await s3.complete_multipart_upload(
            Bucket=bucket, Key=item.key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
    except BaseException as error:
        await _abort(s3, bucket, item.key, upload_id)
        if isinstance(error, BaseExceptionGroup):
            raise error.exceptions[0] from None
        raise
    return UploadedFile(key=item.key, size=sent, sha256=digest.hexdigest())


async def _abort(s3: S3Client, bucket: str, key: str, upload_id: str) -> None:
    # Shielded: the abort must reach S3 even when we are here because of a cancellation.
    with contextlib.suppress(Exception):
        await asyncio.shield(s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id))


async def abort_stale_multipart_uploads(s3: S3Client, bucket: str, prefix: str) -> int:
    """Abort unfinished multipart uploads under ``prefix`` (left by a killed uploader)."""
    aborted = 0
    paginator = s3.get_paginator("list_multipart_uploads")
    async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for upload in page.get("Uploads", ()):
            if "Key" in upload and "UploadId" in upload:
                await _abort(s3, bucket, upload["Key"], upload["UploadId"])
                aborted += 1
    return aborted
