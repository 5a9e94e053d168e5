"""Per-request DataLoaders: each S3 read a query needs, made once however often it is asked.

A page of 20 jobs that selects ``artifact`` loads 20 folders through one batch (at most
``_CONCURRENCY`` S3 requests at a time), and a query repeating a listing under 100 aliases
reads each page once. What a field *returns* is still charged to the request's
``WorkBudget`` by the field: sharing a read makes it cheaper for S3, not for the limits.
The caches live as long as the request (the loaders are made in the endpoint).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from aiodataloader import DataLoader

from artifacts_api.artifacts import FilePage, FolderPage, list_files, list_folder
from artifacts_api.manifests import ManifestIndex
from artifacts_api.services import Services
from artifacts_shared.layout import JobPrefix
from artifacts_shared.metadata_store import ExpiryReading, read_expiry, read_retention_record
from artifacts_shared.retention import RECORD_MAX_BYTES
from artifacts_shared.s3 import StoredObject

__all__ = ["FilePageKey", "FolderPageKey", "Loaders"]

K = TypeVar("K")
V = TypeVar("V")
_CONCURRENCY = 16

FilePageKey = tuple[JobPrefix, str | None, int]
"""(job prefix, StartAfter key or None, page size)."""
FolderPageKey = tuple[JobPrefix, str, str, str | None, int]
"""(job prefix, folder path, name start, continuation token or None, page size)."""


def _batched(
    load: Callable[[K], Awaitable[V]], limit: asyncio.Semaphore
) -> Callable[[list[K]], Coroutine[Any, Any, list[V]]]:
    async def load_one(key: K) -> V:
        async with limit:
            return await load(key)

    async def load_many(keys: list[K]) -> list[V]:
        return list(await asyncio.gather(*(load_one(key) for key in keys)))

    return load_many


class Loaders:
    def __init__(self, services: Services) -> None:
        self._services = services
        limit = asyncio.Semaphore(_CONCURRENCY)
        self.has_objects: DataLoader[str, bool] = DataLoader(_batched(self._has_objects, limit))
        """Whether any object's key starts with the given prefix (a job or a folder)."""
        self.manifest: DataLoader[JobPrefix, ManifestIndex | None] = DataLoader(
            _batched(services.manifests.get, limit)
        )
        self.expiry: DataLoader[JobPrefix, ExpiryReading] = DataLoader(
            _batched(self._expiry, limit)
        )
        self.retention_record: DataLoader[JobPrefix, bytes | None] = DataLoader(
            _batched(self._retention_record, limit)
        )
        """The raw ``retention.json``; its signature is checked by whoever shows it."""
        self.stored: DataLoader[str, StoredObject | None] = DataLoader(
            _batched(self._stored, limit)
        )
        """The object with exactly this key, or None."""
        self.file_page: DataLoader[FilePageKey, FilePage] = DataLoader(
            _batched(self._file_page, limit)
        )
        self.folder_page: DataLoader[FolderPageKey, FolderPage] = DataLoader(
            _batched(self._folder_page, limit)
        )

    async def _has_objects(self, key_prefix: str) -> bool:
        services = self._services
        response = await services.s3.list_objects_v2(
            Bucket=services.bucket, Prefix=key_prefix, MaxKeys=1
        )
        return bool(response.get("Contents"))

    async def _stored(self, key: str) -> StoredObject | None:
        services = self._services
        # The key itself is the first of the keys it prefixes.
        response = await services.s3.list_objects_v2(Bucket=services.bucket, Prefix=key, MaxKeys=1)
        found = [item for item in response.get("Contents", ()) if item["Key"] == key]
        return StoredObject.listed(found[0]) if found else None

    async def _expiry(self, prefix: JobPrefix) -> ExpiryReading:
        return await read_expiry(self._services.s3, self._services.bucket, prefix)

    async def _retention_record(self, prefix: JobPrefix) -> bytes | None:
        services = self._services
        return await read_retention_record(
            services.s3, services.bucket, prefix, limit=RECORD_MAX_BYTES
        )

    async def _file_page(self, key: FilePageKey) -> FilePage:
        prefix, start_after, size = key
        services = self._services
        return await list_files(
            services.s3, services.bucket, prefix, start_after=start_after, size=size
        )

    async def _folder_page(self, key: FolderPageKey) -> FolderPage:
        prefix, path, starts_with, token, size = key
        services = self._services
        return await list_folder(
            services.s3,
            services.bucket,
            prefix,
            path,
            starts_with=starts_with,
            token=token,
            size=size,
        )
