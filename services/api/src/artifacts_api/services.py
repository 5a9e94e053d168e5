"""Everything a request needs, opened once per process and shared by every request.

``app.make_app`` builds one ``Services`` in its ``cleanup_ctx`` and stores it under
``SERVICES``; handlers read it from the app and pass it down explicitly.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from artifacts_api.auth import Authenticator
from artifacts_api.jobsource import JobSource
from artifacts_api.links import LinkSigner
from artifacts_api.manifests import ManifestCache
from artifacts_api.metrics import Metrics
from artifacts_api.presign import Presigner
from artifacts_api.settings import ApiSettings
from artifacts_shared.retention import RecordSigner
from artifacts_shared.s3 import S3Client

__all__ = ["METRICS", "SERVICES", "SETTINGS", "Services"]


@dataclass(frozen=True, slots=True)
class Services:
    settings: ApiSettings
    s3: S3Client
    presigner: Presigner
    jobs: JobSource
    queue: Any
    """An ``arq.connections.ArqRedis`` (arq ships no types): the janitor's queue on Redis."""
    authenticator: Authenticator
    links: LinkSigner
    metrics: Metrics
    manifests: ManifestCache
    records: RecordSigner | None
    """Signs and checks ``retention.json``; None without a static S3 secret (none is written)."""
    listing_slots: asyncio.Semaphore
    """Places for big listings (``API_LISTING_CONCURRENCY``): see ``gql.context.Turn``."""

    @property
    def bucket(self) -> str:
        return self.settings.phfs_bucket


SETTINGS = web.AppKey("settings", ApiSettings)
METRICS = web.AppKey("metrics", Metrics)
SERVICES = web.AppKey("services", Services)
