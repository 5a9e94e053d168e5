"""Small async helpers on aiobotocore: the client, streamed listings, batched deletes.

One client per process (the aiobotocore README's advice: a client owns a connection pool),
opened with ``open_s3`` by whoever owns the process's resources and passed down.
Listings are async iterators that fetch one page at a time, so a caller's memory does not
grow with the number of objects under a prefix.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.utils import parse_timestamp

from artifacts_shared.settings import S3Settings

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import ObjectIdentifierTypeDef, ObjectTypeDef
else:
    S3Client = object

__all__ = [
    "DELETE_BATCH_LIMIT",
    "Deletable",
    "DeleteFailure",
    "DeleteOutcome",
    "S3Client",
    "StoredObject",
    "add_content_md5",
    "delete_keys",
    "iter_objects",
    "iter_prefixes",
    "open_s3",
    "parse_s3_timestamp",
    "s3_credentials",
]

DELETE_BATCH_LIMIT = 1000
"""S3's ``DeleteObjects`` accepts at most this many keys a request."""


@asynccontextmanager
async def open_s3(
    settings: S3Settings,
    *,
    public: bool = False,
    max_connections: int = 32,
    connect_timeout: float = 5.0,
    read_timeout: float = 60.0,
    max_attempts: int = 3,
    sign_payloads: bool = True,
    botocore_options: dict[str, Any] | None = None,
) -> AsyncIterator[S3Client]:
    """An S3 client for ``settings``; ``public=True`` signs URLs for browsers.

    The public client talks to ``S3_PUBLIC_ENDPOINT_URL`` (falling back to the private
    one): presigned URLs carry the host they were signed for, so they must be made by a
    client configured with the address the browser will use. ``sign_payloads=False``
    sends bodies as ``UNSIGNED-PAYLOAD`` (botocore's ``payload_signing_enabled``), for a
    caller that hashes its bodies itself and would otherwise hash every byte twice;
    ``botocore_options`` adds ``Config`` options of botocore's.
    """
    endpoint = settings.public_endpoint_url if public else settings.s3_endpoint_url
    # Path-style works with MinIO, Ceph RGW, moto and AWS alike; virtual hosts need DNS.
    s3_options: dict[str, Any] = {"addressing_style": "path" if endpoint else "auto"}
    if not sign_payloads:
        s3_options["payload_signing_enabled"] = False
    config = AioConfig(
        signature_version="s3v4",
        s3=s3_options,
        retries={"max_attempts": max_attempts, "mode": "standard"},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        max_pool_connections=max_connections,
        # Older S3 gateways reject the CRC checksums botocore now adds by default.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        **(botocore_options or {}),
    )
    secret = settings.s3_secret_access_key
    session = get_session()
    # botocore reads every timestamp (a listing's LastModified, one per object) with
    # dateutil: most of a listing's parsing time. Its parser factory takes another.
    session.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=parse_s3_timestamp
    )
    async with session.create_client(
        "s3",
        endpoint_url=endpoint,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=secret.get_secret_value() if secret else None,
        config=config,
    ) as client:
        client.meta.events.register("before-sign.s3.DeleteObjects", add_content_md5)
        yield client


def parse_s3_timestamp(value: str) -> datetime:
    """An S3 timestamp as an aware datetime, UTC when it names no zone.

    S3 writes ISO 8601 in bodies (``2009-10-12T17:50:30.000Z``) and RFC 1123 in headers
    (``Mon, 12 Oct 2009 17:50:30 GMT``), which the standard library reads quickly;
    anything else goes to botocore's own parser.
    """
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            parsed: datetime = parse_timestamp(value)
            return parsed
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def s3_credentials(settings: S3Settings) -> Any:
    """The credentials ``open_s3`` signs with, for code that signs requests itself.

    ``S3_ACCESS_KEY_ID``/``S3_SECRET_ACCESS_KEY`` when set, else botocore's chain
    (environment, web identity in a pod, ...), which may hand out refreshable ones: callers
    take ``await credentials.get_frozen_credentials()`` before each use. None when there
    are none.
    """
    session = get_session()
    secret = settings.s3_secret_access_key
    if settings.s3_access_key_id and secret:
        session.set_credentials(settings.s3_access_key_id, secret.get_secret_value())
    return await session.get_credentials()


def add_content_md5(request: Any, **_: Any) -> None:
    """Give ``DeleteObjects`` the ``Content-MD5`` header S3 documents as required.

    botocore now sends a CRC32 checksum instead, which AWS accepts but MinIO (and the
    gateways built on it, such as JuiceFS's) refuse with ``MissingContentMD5``. Set
    before signing, so the header is signed like the others.
    """
    body = request.body
    if isinstance(body, str):
        body = body.encode()
    if isinstance(body, bytes) and "Content-MD5" not in request.headers:
        digest = hashlib.md5(body, usedforsecurity=False).digest()
        request.headers["Content-MD5"] = base64.b64encode(digest).decode("ascii")


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    size: int
    last_modified: datetime
    etag: str

    @classmethod
    def listed(cls, item: ObjectTypeDef) -> StoredObject:
        """One entry of a ``ListObjectsV2`` page's ``Contents``."""
        return cls(
            key=item["Key"],
            size=item["Size"],
            last_modified=item["LastModified"],
            etag=item.get("ETag", "").strip('"'),
        )


async def iter_objects(
    s3: S3Client, bucket: str, prefix: str, *, page_size: int = 1000
) -> AsyncIterator[StoredObject]:
    """Every object under ``prefix``, in key order, one page in memory at a time."""
    paginator = s3.get_paginator("list_objects_v2")
    pages = paginator.paginate(
        Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": page_size}
    )
    async for page in pages:
        for item in page.get("Contents", ()):
            yield StoredObject.listed(item)


async def iter_prefixes(
    s3: S3Client, bucket: str, prefix: str, *, delimiter: str = "/", page_size: int = 1000
) -> AsyncIterator[str]:
    """The "folders" directly under ``prefix`` (common prefixes), streamed page by page."""
    paginator = s3.get_paginator("list_objects_v2")
    pages = paginator.paginate(
        Bucket=bucket,
        Prefix=prefix,
        Delimiter=delimiter,
        PaginationConfig={"PageSize": page_size},
    )
    async for page in pages:
        for item in page.get("CommonPrefixes", ()):
            yield item["Prefix"]


@dataclass(frozen=True, slots=True)
class DeleteFailure:
    key: str
    code: str
    message: str
    size: int = 0
    """The object's size when the caller handed a ``StoredObject``, else 0."""


@dataclass(slots=True)
class DeleteOutcome:
    deleted: int = 0
    bytes: int = 0
    """Bytes of the ``StoredObject`` s deleted (keys handed as plain strings count 0)."""
    requests: int = 0
    failures: list[DeleteFailure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


Deletable = str | StoredObject


async def delete_keys(
    s3: S3Client,
    bucket: str,
    keys: Iterable[Deletable] | AsyncIterable[Deletable],
    *,
    batch_size: int = DELETE_BATCH_LIMIT,
) -> DeleteOutcome:
    """Delete ``keys`` with ``DeleteObjects``, at most ``batch_size`` keys a request, in order.

    Keys are consumed lazily, so a caller can stream a listing straight into this; given
    ``StoredObject`` s (a listing's items) the outcome also counts their bytes. Keys S3
    refuses to delete are reported in ``failures``; transport errors propagate.
    """
    if not 1 <= batch_size <= DELETE_BATCH_LIMIT:
        raise ValueError(f"batch_size must be 1..{DELETE_BATCH_LIMIT}, got {batch_size}")
    outcome = DeleteOutcome()
    batch: list[Deletable] = []

    async def flush() -> None:
        objects: list[ObjectIdentifierTypeDef] = [{"Key": _key(item)} for item in batch]
        response = await s3.delete_objects(
            Bucket=bucket, Delete={"Objects": objects, "Quiet": True}
        )
        outcome.requests += 1
        refused = {e.get("Key", "?"): e for e in response.get("Errors", [])}
        for item in batch:
            error = refused.get(_key(item))
            size = item.size if isinstance(item, StoredObject) else 0
            if error is None:
                outcome.deleted += 1
                outcome.bytes += size
            else:
                code, message = error.get("Code", "?"), error.get("Message", "")
                outcome.failures.append(DeleteFailure(_key(item), code, message, size))
        batch.clear()

    if isinstance(keys, AsyncIterable):
        async for key in keys:
            batch.append(key)
            if len(batch) == batch_size:
                await flush()
    else:
        for key in keys:
            batch.append(key)
            if len(batch) == batch_size:
                await flush()
    if batch:
        await flush()
    return outcome


def _key(item: Deletable) -> str:
    return item if isinstance(item, str) else item.key
