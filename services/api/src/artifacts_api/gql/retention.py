"""Bindables of a folder's retention: ``PhJobArtifact.retention``, and changing or deleting it.

The rules (who may set what, the write order) live in ``artifacts_api.retention`` and
``artifacts_api.removal``; the sentence in ``artifacts_shared.retention``, which the
janitor's run result uses too.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from ariadne import MutationType, ObjectType

from artifacts_api.errors import BadUserInput, NotFound
from artifacts_api.gql.artifact import ArtifactFolder
from artifacts_api.gql.context import Info
from artifacts_api.gql.phjob import load_folder
from artifacts_api.jobs import visible_job
from artifacts_api.removal import delete_folder
from artifacts_api.retention import job_retention, parse_expiry, set_expiry
from artifacts_api.times import iso_utc
from artifacts_shared.cleanup_result import SkippedFolder
from artifacts_shared.expiry import to_datetime
from artifacts_shared.expiry_index import ExpiryIndex
from artifacts_shared.layout import JobPrefix, UnsafeNameError, job_prefix
from artifacts_shared.metadata_store import ExpiryState
from artifacts_shared.phjob import PhJob
from artifacts_shared.retention import Retention, skipped_sentence

__all__ = ["bindables"]

artifact = ObjectType("PhJobArtifact")
retention = ObjectType("PhJobArtifactRetention")
skipped = ObjectType("PhJobArtifactCleanupSkipped")
mutation = MutationType()


@artifact.field("retention")
async def resolve_retention(folder: ArtifactFolder, info: Info) -> Retention:
    loaders = info.context.loaders
    reading, raw = await asyncio.gather(
        loaders.expiry.load(folder.prefix), loaders.retention_record.load(folder.prefix)
    )
    stored = reading.state is not ExpiryState.MISSING or await loaders.has_objects.load(
        folder.prefix
    )
    return job_retention(
        folder.job,
        folder.prefix,
        reading,
        raw,
        stored=stored,
        services=info.context.services,
        now=time.time(),
    )


@retention.field("expiredAt")
def resolve_expired_at(value: Retention, info: Info) -> str | None:
    return iso_utc(to_datetime(value.expired_at)) if value.expired_at is not None else None


@retention.field("changedAt")
def resolve_changed_at(value: Retention, info: Info) -> str | None:
    if value.changed_at is None:
        return None
    return iso_utc(datetime.fromtimestamp(value.changed_at, tz=UTC))


@retention.field("state")
def resolve_state(value: Retention, info: Info) -> str:
    return value.state.value


async def _job_folder(info: Info, where: dict[str, Any]) -> tuple[PhJob, JobPrefix]:
    job = await visible_job(info.context.services.jobs, info.context.identity, where["id"])
    try:
        return job, job_prefix(job.spec.group_name, job.id)
    except UnsafeNameError:
        raise NotFound(f"job {job.id} has no artifacts") from None


@mutation.field("setPhJobArtifactExpiry")
async def resolve_set_expiry(
    _: None, info: Info, *, where: dict[str, Any], expired_at: str | None = None
) -> ArtifactFolder:
    wanted = parse_expiry(expired_at)
    job, prefix = await _job_folder(info, where)
    await set_expiry(info.context.services, info.context.identity, job, prefix, wanted)
    return await load_folder(job, prefix, info)


@mutation.field("deletePhJobArtifact")
async def resolve_delete(_: None, info: Info, *, where: dict[str, Any]) -> bool:
    job, prefix = await _job_folder(info, where)
    if not job.status.finished:
        raise BadUserInput(
            f"job {job.id} has not ended: cancel it first, its artifacts are collected as it ends",
            field="where",
        )
    services = info.context.services
    deleted = await delete_folder(services.s3, services.bucket, prefix) > 0
    await ExpiryIndex(services.queue).remove(prefix)
    return deleted


@skipped.field("retention")
def resolve_skipped_retention(folder: SkippedFolder, info: Info) -> str:
    """The janitor's sentence; for results of janitors older than it, the same from the reason."""
    if folder.retention:
        return folder.retention
    settings = info.context.services.settings
    return skipped_sentence(
        folder.reason,
        None,
        None,
        detail=folder.detail,
        now=time.time(),
        daily_at=settings.janitor_daily_at,
    )


bindables = [artifact, retention, skipped, mutation]
