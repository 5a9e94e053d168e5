"""Bindables of ``PhJob``: the PhJob resource (``artifacts_shared.phjob``) as GraphQL shows it."""

from __future__ import annotations

import asyncio
from typing import Any

from ariadne import ObjectType

from artifacts_api.gql.artifact import ArtifactFolder
from artifacts_api.gql.context import Info
from artifacts_api.gql.selection import selected_names
from artifacts_api.gql.user import missing_instance_type
from artifacts_api.jobs import artifacts_expire_at, retention_seconds
from artifacts_api.times import iso_utc
from artifacts_shared.expiry import to_datetime
from artifacts_shared.instance_types import InstanceType, UnknownInstanceTypeError
from artifacts_shared.layout import JobPrefix, UnsafeNameError, job_prefix
from artifacts_shared.phjob import ArtifactInput, PhJob

__all__ = ["bindables", "load_folder"]

phjob = ObjectType("PhJob")

_NEEDS_MANIFEST = frozenset({"sha256", "skipped", "skipReason", "fileCount", "totalSize", "items"})
"""Fields answered from the manifest; ``items`` is charged by its file count before listing."""


@phjob.field("id")
def resolve_id(job: PhJob, info: Info) -> str:
    return job.id


@phjob.field("displayName")
def resolve_display_name(job: PhJob, info: Info) -> str:
    return job.spec.display_name


@phjob.field("groupName")
def resolve_group_name(job: PhJob, info: Info) -> str:
    return job.spec.group_name


@phjob.field("userName")
def resolve_user_name(job: PhJob, info: Info) -> str | None:
    return job.spec.user_name


@phjob.field("phase")
def resolve_phase(job: PhJob, info: Info) -> str:
    return job.status.phase.value


@phjob.field("command")
def resolve_command(job: PhJob, info: Info) -> str:
    return job.spec.command


@phjob.field("image")
def resolve_image(job: PhJob, info: Info) -> str | None:
    return job.spec.image


@phjob.field("createTime")
def resolve_create_time(job: PhJob, info: Info) -> str | None:
    return iso_utc(job.metadata.creation_timestamp)


@phjob.field("startTime")
def resolve_start_time(job: PhJob, info: Info) -> str | None:
    return iso_utc(job.status.start_time)


@phjob.field("finishTime")
def resolve_finish_time(job: PhJob, info: Info) -> str | None:
    return iso_utc(job.status.finish_time)


@phjob.field("message")
def resolve_message(job: PhJob, info: Info) -> str | None:
    return job.status.message


@phjob.field("reason")
def resolve_reason(job: PhJob, info: Info) -> str | None:
    return job.status.reason


@phjob.field("cancel")
def resolve_cancel(job: PhJob, info: Info) -> bool:
    return job.spec.cancel


@phjob.field("groupId")
def resolve_group_id(job: PhJob, info: Info) -> str:
    return job.spec.group_name  # group ids are group names here


@phjob.field("userId")
def resolve_user_id(job: PhJob, info: Info) -> str | None:
    return job.spec.user_name  # user ids are user names here


@phjob.field("instanceType")
def resolve_instance_type(job: PhJob, info: Info) -> InstanceType | None:
    name = job.spec.instance_type
    if not name:
        return None
    try:
        return info.context.services.settings.instance_type(name)
    except UnknownInstanceTypeError:
        return missing_instance_type(name)


@phjob.field("activeDeadlineSeconds")
def resolve_active_deadline_seconds(job: PhJob, info: Info) -> int | None:
    return job.spec.active_deadline_seconds


@phjob.field("schedule")
def resolve_schedule(job: PhJob, info: Info) -> None:
    return None  # PrimeHub's recurring jobs do not exist here


@phjob.field("inputArtifacts")
def resolve_input_artifacts(job: PhJob, info: Info) -> tuple[ArtifactInput, ...] | None:
    # As recorded at creation: PhJobArtifactInputRef's fields are ArtifactInput's attributes.
    return job.spec.input_artifacts


@phjob.field("artifact")
async def resolve_artifact(job: PhJob, info: Info) -> ArtifactFolder | None:
    """The folder's reads the query needs, through the request's loaders; never a listing.

    Never null for a job that left nothing (PrimeHub's clients read ``artifact.items``
    unguarded): its ``items`` are then empty. Only a name no collector could have written a
    folder for gives null.
    """
    try:
        prefix = job_prefix(job.spec.group_name, job.id)
    except UnsafeNameError:
        return None
    return await load_folder(job, prefix, info)


async def load_folder(job: PhJob, prefix: JobPrefix, info: Info) -> ArtifactFolder:
    """``PhJobArtifact`` for ``job``, with the reads its selected fields need."""
    loaders = info.context.loaders
    wanted = selected_names(info)
    manifest = (
        asyncio.ensure_future(loaders.manifest.load(prefix))
        if not wanted.isdisjoint(_NEEDS_MANIFEST)
        else None
    )
    expired_at = (
        asyncio.ensure_future(loaders.expiry.load(prefix)) if "expiredAt" in wanted else None
    )
    try:
        reading = await expired_at if expired_at else None
        return ArtifactFolder(
            job=job,
            prefix=prefix,
            manifest=await manifest if manifest else None,
            expired_at=iso_utc(to_datetime(reading.expired_at))
            if reading is not None and reading.expired_at is not None
            else None,
        )
    finally:
        _settle(manifest, expired_at)


def _settle(*reads: asyncio.Future[Any] | None) -> None:
    """Cancel reads no longer needed; the first error raised is the one reported."""
    for read in reads:
        if read is None:
            continue
        if not read.done():
            read.cancel()
        elif not read.cancelled():
            read.exception()


@phjob.field("artifactRetentionSeconds")
def resolve_artifact_retention_seconds(job: PhJob, info: Info) -> int:
    return retention_seconds(job, info.context.services.settings)


@phjob.field("artifactExpiredAt")
def resolve_artifact_expired_at(job: PhJob, info: Info) -> str | None:
    # Kept answerable after the janitor deleted the folder and its expiredAt with it, so
    # the UI can say "expired on ..." instead of "left no artifacts".
    return iso_utc(artifacts_expire_at(job, info.context.services.settings))


bindables = [phjob]
