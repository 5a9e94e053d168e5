"""Bindables of ``PhJob``: the PhJob resource (``artifacts_shared.phjob``) as GraphQL shows it."""

from __future__ import annotations

from datetime import timedelta

from ariadne import ObjectType

from artifacts_api.artifacts import ArtifactFolder, read_artifact_folder
from artifacts_api.gql.context import Info
from artifacts_api.gql.selection import selected_names
from artifacts_api.times import iso_utc
from artifacts_shared.layout import UnsafeNameError, job_prefix
from artifacts_shared.phjob import PhJob

__all__ = ["bindables"]

phjob = ObjectType("PhJob")

_NEEDS_MANIFEST = frozenset({"sha256", "skipped", "skipReason"})


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


@phjob.field("cancel")
def resolve_cancel(job: PhJob, info: Info) -> bool:
    return job.spec.cancel


@phjob.field("artifact")
async def resolve_artifact(job: PhJob, info: Info) -> ArtifactFolder | None:
    services = info.context.services
    try:
        prefix = job_prefix(job.spec.group_name, job.id)
    except UnsafeNameError:
        return None  # a name no collector could have written a folder for
    wanted = selected_names(info)
    return await read_artifact_folder(
        services.s3,
        services.bucket,
        prefix,
        job_id=job.id,
        with_manifest=not wanted.isdisjoint(_NEEDS_MANIFEST),
        with_expiry="expiredAt" in wanted,
    )


@phjob.field("artifactRetentionSeconds")
def resolve_artifact_retention_seconds(job: PhJob, info: Info) -> int:
    own = job.spec.artifact.retention_seconds if job.spec.artifact else None
    # The controller applies the same rule (contract.effective_policy) with the same setting.
    return info.context.services.settings.artifact_retention_seconds if own is None else own


@phjob.field("artifactExpiredAt")
def resolve_artifact_expired_at(job: PhJob, info: Info) -> str | None:
    # Kept answerable after the janitor deleted the folder and its expiredAt with it, so
    # the UI can say "expired on ..." instead of "left no artifacts".
    finished = job.status.finish_time
    retention = resolve_artifact_retention_seconds(job, info)
    if not job.status.finished or finished is None or retention == 0:
        return None
    return iso_utc(finished + timedelta(seconds=retention))


bindables = [phjob]
