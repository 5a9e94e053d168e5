"""Pushing files to the bucket: bounded parallelism, multipart for large files, one read.

Every byte is read once, and hashed once, as it is sent: the sha256 in the manifest is of
the bytes that went up, and a file's size is what was read, even when the file changed
while it was read. A file smaller than one part goes up in one ``PutObject`` that carries
that sha256 as its checksum (``x-amz-checksum-sha256``, signed with the request), so a
server that checks checksums (AWS S3, SeaweedFS, recent MinIO) refuses bytes that differ
from what the manifest will say. The payload is not hashed a second time for the
signature (``UNSIGNED-PAYLOAD``: ``open_s3(sign_payloads=False)``): that second pass over
every byte is what made large files slower than the aws CLI. Small files and the
parts of large ones go through ``DirectPut`` where it serves: the same requests without
the client's per-call cost and copies.
Multipart parts carry no
checksum of their own (one would cost that second pass): TCP's, or TLS, covers them on
the way, and the manifest's sha256 lets a client check the whole file after download.

At most ``concurrency`` requests run at once, counting each part of a multipart upload as
one, which also bounds memory to about ``concurrency * part_size``. Large reads and their
hashing run in threads (hashlib releases the GIL), so the event loop keeps the connections
busy meanwhile; a small file is read in the loop, where a thread would cost more than the
read.

A ``Budget`` bounds the bytes read from all files together: the read that passes it raises
``LimitExceeded``, which stops every upload. Any failure stops the rest (no new file is
started) and propagates: the caller must not write metadata then. Multipart uploads that
fail are aborted; those left by a killed process are aborted by
``abort_stale_multipart_uploads`` on the retry.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import mimetypes
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from artifacts_controller.direct_put import DirectPut
from artifacts_shared.s3 import S3Client

if TYPE_CHECKING:
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef

__all__ = [
    "MIB",
    "Budget",
    "FileChangedError",
    "FileToUpload",
    "LimitExceeded",
    "Tuning",
    "UploadedFile",
    "abort_stale_multipart_uploads",
    "upload_files",
]

MIB = 1024 * 1024
_MAX_PARTS = 10_000  # S3's limit per multipart upload
_READ_IN_LOOP = 256 * 1024  # files below this are read without a thread hop


@dataclass(frozen=True, slots=True)
class Tuning:
    concurrency: int = 8
    part_size: int = 16 * MIB
    """Files of at least this many bytes go up in parts of this size: at least 5 MiB
    (S3's minimum part but the last), grown for files over 160 GB. 16 MiB rather than
    boto3's 8: half the requests for the same bytes; memory stays bounded by
    ``concurrency * part_size``."""

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
    key: str
    open: Callable[[], IO[bytes]]
    """Opens the file for reading; called once, when its upload starts."""
    size: int
    """The size when it was listed: it picks the way up (one request or parts)."""


@dataclass(frozen=True, slots=True)
class UploadedFile:
    key: str
    size: int
    sha256: str


class FileChangedError(Exception):
    """A file grew, while it was read, past what one multipart upload can hold."""


class LimitExceeded(Exception):
    """More bytes were read than the budget allows; ``read`` is how many, at the least."""

    def __init__(self, read: int, limit: int) -> None:
        super().__init__(f"{read} bytes read, over the limit of {limit}")
        self.read = read
        self.limit = limit


class Budget:
    """The bytes all files together may have: charged as they are read, before any is sent."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.read = 0

    def charge(self, count: int) -> None:
        self.read += count
        if self.read > self.limit:
            raise LimitExceeded(self.read, self.limit)


async def upload_files(
    files: Sequence[FileToUpload],
    *,
    s3: S3Client,
    bucket: str,
    tuning: Tuning,
    budget: Budget | None = None,
    direct: DirectPut | None = None,
) -> list[UploadedFile]:
    """Upload ``files``, their PUTs through ``direct`` when given; the result is in
    the same order. The first failure propagates once the requests in flight have ended
    (none is cancelled: one cancelled half-way may still land, after a caller that deletes
    what went up has looked)."""
    slots = asyncio.Semaphore(tuning.concurrency)
    results: list[UploadedFile | None] = [None] * len(files)
    pending: Iterator[int] = iter(range(len(files)))
    sender = _Sender(s3=s3, bucket=bucket, tuning=tuning, slots=slots, budget=budget, direct=direct)
    failures: list[Exception] = []

    async def worker() -> None:
        # Workers pull from one iterator, so a million files never means a million tasks.
        for index in pending:
            if failures:
                return
            try:
                results[index] = await sender.upload(files[index])
            except Exception as failure:
                failures.append(failure)
                return

    async with asyncio.TaskGroup() as group:
        for _ in range(min(tuning.concurrency, len(files))):
            group.create_task(worker())
    if failures:
        raise failures[0]
    return [result for result in results if result is not None]


def _content_type(key: str) -> str:
    guessed, _ = mimetypes.guess_type(key, strict=False)
    return guessed or "application/octet-stream"


def _read_hashed(handle: IO[bytes], size: int, digest: hashlib._Hash) -> bytes:
    chunk = handle.read(size)
    digest.update(chunk)
    return chunk


@dataclass(frozen=True, slots=True)
class _Sender:
    s3: S3Client
    bucket: str
    tuning: Tuning
    slots: asyncio.Semaphore
    budget: Budget | None
    direct: DirectPut | None

    async def _read(self, handle: IO[bytes], size: int, digest: hashlib._Hash) -> bytes:
        if size < _READ_IN_LOOP:
            chunk = _read_hashed(handle, size, digest)
        else:
            chunk = await asyncio.to_thread(_read_hashed, handle, size, digest)
        if self.budget is not None:
            self.budget.charge(len(chunk))
        return chunk

    async def upload(self, item: FileToUpload) -> UploadedFile:
        part_size = self.tuning.part_size_for(item.size)
        digest = hashlib.sha256()
        with item.open() as handle:
            async with self.slots:
                # The listed size and one byte more, to learn whether it grew since: then
                # on to a whole part, so a file that grew past one goes up in parts.
                want = min(item.size + 1, part_size)
                first = await self._read(handle, want, digest)
                if len(first) == want < part_size:
                    first += await self._read(handle, part_size - want, digest)
                if len(first) < part_size:
                    await self._put(item.key, first, digest)
                    return UploadedFile(key=item.key, size=len(first), sha256=digest.hexdigest())
            return await self._upload_parts(item, handle, first, part_size, digest)

    async def _put(self, key: str, body: bytes, digest: hashlib._Hash) -> None:
        checksum = base64.b64encode(digest.digest()).decode("ascii")
        if self.direct is not None:
            await self.direct.put(key, body, sha256=checksum, content_type=_content_type(key))
        else:
            await self.s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType=_content_type(key),
                ChecksumSHA256=checksum,
            )

    async def _upload_parts(
        self,
        item: FileToUpload,
        handle: IO[bytes],
        first: bytes,
        part_size: int,
        digest: hashlib._Hash,
    ) -> UploadedFile:
        created = await self.s3.create_multipart_upload(
            Bucket=self.bucket, Key=item.key, ContentType=_content_type(item.key)
        )
        upload_id = created["UploadId"]
        parts: list[CompletedPartTypeDef] = []

        async def send(number: int, chunk: bytes) -> None:
            try:
                if self.direct is not None:
                    etag = await self.direct.put_part(
                        item.key, chunk, upload_id=upload_id, number=number
                    )
                else:
                    response = await self.s3.upload_part(
                        Bucket=self.bucket,
                        Key=item.key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=chunk,
                    )
                    etag = response["ETag"]
                parts.append({"ETag": etag, "PartNumber": number})
            finally:
                self.slots.release()

        sent = len(first)
        try:
            async with asyncio.TaskGroup() as group:
                await self.slots.acquire()
                group.create_task(send(1, first))
                for number in range(2, _MAX_PARTS + 1):
                    # The slot is taken before reading, so parts in memory stay bounded.
                    await self.slots.acquire()
                    try:
                        chunk = await self._read(handle, part_size, digest)
                    except BaseException:
                        self.slots.release()
                        raise
                    if not chunk:
                        self.slots.release()
                        break
                    sent += len(chunk)
                    group.create_task(send(number, chunk))
                else:
                    raise FileChangedError(f"{item.key}: grew past {_MAX_PARTS} parts while read")
            parts.sort(key=lambda part: part["PartNumber"])
            await self.s3.complete_multipart_upload(
                Bucket=self.bucket,
                Key=item.key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException as error:
            await _abort(self.s3, self.bucket, item.key, upload_id)
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
