"""Reading and writing a job folder's metadata objects in the bucket.

The rule every writer follows: artifact objects first, then ``manifest.json``, then
``expiredAt`` last, so an ``expiredAt`` exists only for a complete folder.
Readers accept PrimeHub's legacy ``.metadata/expiredAt`` when ours is absent.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from enum import StrEnum

from botocore.exceptions import ClientError

from artifacts_shared.expiry import MAX_BYTES, InvalidExpiredAt, format_expired_at, parse_expired_at
from artifacts_shared.layout import (
    JobPrefix,
    ObjectKey,
    expired_at_key,
    legacy_expired_at_key,
    manifest_key,
    retention_record_key,
)
from artifacts_shared.manifest import Manifest
from artifacts_shared.s3 import S3Client

__all__ = [
    "ExpiryReading",
    "ExpiryState",
    "delete_expired_at",
    "read_expiry",
    "read_manifest",
    "read_retention_record",
    "write_expired_at",
    "write_manifest",
    "write_retention_record",
]

_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})
MANIFEST_MAX_BYTES = 512 * 1024 * 1024
"""A manifest of a million files is about 150 MB; beyond this it is not one of ours."""


class ExpiryState(StrEnum):
    SET = "set"
    MISSING = "missing"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class ExpiryReading:
    """What a job folder says about its expiry; ``expired_at`` is set only for ``SET``."""

    state: ExpiryState
    expired_at: int | None = None
    key: ObjectKey | None = None
    detail: str = ""


async def _read_small(s3: S3Client, bucket: str, key: str, limit: int) -> bytes | None:
    """The object's bytes, None when it does not exist, ``limit + 1`` bytes when too big."""
    try:
        response = await s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{limit}")
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in _NOT_FOUND | {"InvalidRange"}:
            # An empty object answers a ranged GET with InvalidRange on some gateways.
            if err.response["Error"]["Code"] == "InvalidRange":
                return b""
            return None
        raise
    async with response["Body"] as body:
        return await body.read()


async def read_expiry(s3: S3Client, bucket: str, prefix: JobPrefix) -> ExpiryReading:
    for key in (expired_at_key(prefix), legacy_expired_at_key(prefix)):
        raw = await _read_small(s3, bucket, key, MAX_BYTES)
        if raw is None:
            continue
        if len(raw) > MAX_BYTES:
            return ExpiryReading(ExpiryState.INVALID, key=key, detail="larger than 64 bytes")
        try:
            return ExpiryReading(ExpiryState.SET, parse_expired_at(raw), key=key)
        except InvalidExpiredAt as err:
            return ExpiryReading(ExpiryState.INVALID, key=key, detail=str(err))
    return ExpiryReading(ExpiryState.MISSING, detail="no expiredAt")


def _sha256(body: bytes) -> str:
    """The body's ``x-amz-checksum-sha256``: the server refuses a body that differs, which
    also covers a client that does not hash its payloads for the signature."""
    return base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


async def write_expired_at(s3: S3Client, bucket: str, prefix: JobPrefix, expired_at: int) -> None:
    body = format_expired_at(expired_at).encode()
    await s3.put_object(
        Bucket=bucket,
        Key=expired_at_key(prefix),
        Body=body,
        ContentType="text/plain",
        ChecksumSHA256=_sha256(body),
    )


async def delete_expired_at(s3: S3Client, bucket: str, prefix: JobPrefix) -> None:
    """Remove both ``expiredAt`` objects (ours and PrimeHub's): the folder is kept."""
    await s3.delete_objects(
        Bucket=bucket,
        Delete={
            "Objects": [{"Key": expired_at_key(prefix)}, {"Key": legacy_expired_at_key(prefix)}],
            "Quiet": True,
        },
    )


async def read_retention_record(
    s3: S3Client, bucket: str, prefix: JobPrefix, *, limit: int
) -> bytes | None:
    """The raw ``retention.json`` (at most ``limit + 1`` bytes), None when there is none.

    Raw on purpose: whoever reads it checks its signature (``retention.RecordSigner``).
    """
    return await _read_small(s3, bucket, retention_record_key(prefix), limit)


async def write_retention_record(s3: S3Client, bucket: str, prefix: JobPrefix, body: bytes) -> None:
    await s3.put_object(
        Bucket=bucket,
        Key=retention_record_key(prefix),
        Body=body,
        ContentType="application/json",
    )


async def read_manifest(s3: S3Client, bucket: str, prefix: JobPrefix) -> Manifest | None:
    """The folder's manifest, None when there is none; ``ManifestError`` when it is garbage."""
    raw = await _read_small(s3, bucket, manifest_key(prefix), MANIFEST_MAX_BYTES)
    if raw is None:
        return None
    return Manifest.from_json(raw)


async def write_manifest(s3: S3Client, bucket: str, prefix: JobPrefix, manifest: Manifest) -> None:
    body = manifest.to_json()
    await s3.put_object(
        Bucket=bucket,
        Key=manifest_key(prefix),
        Body=body,
        ContentType="application/json",
        ChecksumSHA256=_sha256(body),
    )
