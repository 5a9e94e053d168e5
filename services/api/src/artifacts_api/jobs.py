"""Job rules shared by GraphQL and the zip route: ids, who may see a job, what may be created.

Every way into a job goes through ``visible_job``, so the id check, the existence check
and the group check happen in the same order everywhere: a malformed id is
``BAD_USER_INPUT``, an unknown one ``NOT_FOUND``, another group's ``FORBIDDEN``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from artifacts_api.errors import ApiError, BadUserInput, NotFound, Unavailable
from artifacts_api.identity import Identity
from artifacts_api.inputs import (
    check_input_size,
    input_prefixes,
    parse_input_requests,
    resolve_input,
)
from artifacts_api.jobsource import JobExistsError, JobSource
from artifacts_api.services import Services
from artifacts_api.settings import ApiSettings
from artifacts_shared.input_holds import InputHolds
from artifacts_shared.instance_types import UnknownInstanceTypeError
from artifacts_shared.layout import UnsafeNameError, group_path
from artifacts_shared.phjob import (
    ArtifactInput,
    ArtifactOverrides,
    JobId,
    PhJob,
    PhJobMetadata,
    PhJobSpec,
    is_job_id,
    new_job_id,
)

__all__ = [
    "JobRequest",
    "artifacts_expire_at",
    "create_job",
    "limit_size_mb",
    "parse_job_id",
    "retention_seconds",
    "visible_job",
]

_MAX_COMMAND = 64 * 1024
_MAX_DISPLAY_NAME = 256
_MAX_IMAGE = 512
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CREATE_ATTEMPTS = 3


def parse_job_id(value: str) -> JobId:
    if not is_job_id(value):
        raise BadUserInput(
            f"{value[:80]!r} is not a job id (expected one like job-202009250153-34s0ti)",
            field="id",
        )
    return JobId(value)


async def visible_job(jobs: JobSource, identity: Identity, job_id: str) -> PhJob:
    """The job ``identity`` asked for, or the error that explains why it cannot have it."""
    job = await jobs.get(parse_job_id(job_id))
    if job is None:
        # The Kubernetes wording in brackets is what PrimeHub's SDK looks for to say "not found".
        raise NotFound(f'there is no job {job_id} (phjobs.primehub.io "{job_id}" not found)')
    identity.require_access(job.spec.group_name, f"job {job_id}")
    return job


def retention_seconds(job: PhJob, settings: ApiSettings) -> int:
    """How long the job's artifacts (and its log) are kept after it ends; 0: until deleted."""
    own = job.spec.artifact.retention_seconds if job.spec.artifact else None
    # The controller applies the same rule (contract.effective_policy) with the same setting.
    return settings.artifact_retention_seconds if own is None else own


def limit_size_mb(job: PhJob, settings: ApiSettings) -> int:
    """The job's artifact size limit in MB, which its input artifacts must fit too."""
    own = job.spec.artifact.limit_size_mb if job.spec.artifact else None
    # The controller's rule (contract.effective_policy), with the same ARTIFACT_LIMIT_SIZE_MB.
    return settings.artifact_limit_size_mb if own is None else own


def artifacts_expire_at(job: PhJob, settings: ApiSettings) -> datetime | None:
    """When the job's artifacts expire(d) by its retention: None while it runs, or when kept.

    Still answers after the janitor deleted the folder and its ``expiredAt`` with it.
    """
    finished = job.status.finish_time
    retention = retention_seconds(job, settings)
    if not job.status.finished or finished is None or retention == 0:
        return None
    return finished + timedelta(seconds=retention)


@dataclass(frozen=True, slots=True)
class JobRequest:
    """``PhJobCreateInput`` as received: ours and PrimeHub's fields."""

    display_name: str
    command: str
    group_name: str | None = None
    image: str | None = None
    artifact_retention_seconds: int | None = None
    group_id: str | None = None
    instance_type: str | None = None
    active_deadline_seconds: int | None = None
    input_artifacts: Sequence[Mapping[str, Any]] | None = None
    """``PhJobArtifactInput`` s as received: ``{"job_id": ..., "path": ...}``."""

    @classmethod
    def like(cls, job: PhJob) -> JobRequest:
        """A request for a job like ``job``: ``rerunPhJob`` (its inputs resolved again)."""
        spec = job.spec
        inputs = [
            {"job_id": source.job_id, "path": source.path} for source in spec.input_artifacts or ()
        ]
        return cls(
            display_name=spec.display_name,
            command=spec.command,
            group_name=spec.group_name,
            image=spec.image,
            artifact_retention_seconds=spec.artifact.retention_seconds if spec.artifact else None,
            instance_type=spec.instance_type,
            active_deadline_seconds=spec.active_deadline_seconds,
            input_artifacts=inputs or None,
        )


def _display_name(value: str) -> str:
    name = value.strip()
    if not name:
        raise BadUserInput("displayName must not be empty", field="displayName")
    if len(name) > _MAX_DISPLAY_NAME or _CONTROL.search(name):
        raise BadUserInput(
            f"displayName must be at most {_MAX_DISPLAY_NAME} characters without control "
            "characters",
            field="displayName",
        )
    return name


def _group_name(request: JobRequest, identity: Identity) -> str:
    # PrimeHub's clients send groupId; group ids are group names here.
    named, given_id = request.group_name, request.group_id
    if named and given_id and named != given_id:
        raise BadUserInput(
            f"groupName {named[:80]!r} and groupId {given_id[:80]!r} name different groups; "
            "give one",
            field="groupName",
        )
    value = named or given_id
    if not value:
        raise BadUserInput("groupName (or PrimeHub's groupId) is required", field="groupName")
    try:
        group_path(value)
    except UnsafeNameError as err:
        raise BadUserInput(f"groupName: {err}", field="groupName") from None
    identity.require_access(value, "a job")
    return value


def _instance_type(value: str | None, group: str, settings: ApiSettings) -> str | None:
    if not value:
        return None
    try:
        preset = settings.instance_type(value)
    except UnknownInstanceTypeError as err:
        raise BadUserInput(f"instanceType: {err}", field="instanceType") from None
    if not preset.offered_to(group):
        raise BadUserInput(
            f"instanceType {value!r} is not offered to group {group!r}", field="instanceType"
        )
    return preset.name


def _deadline(value: int | None) -> int | None:
    if value is None or value == 0:
        return None  # PrimeHub's 0: no deadline
    if value < 0:
        raise BadUserInput(
            f"activeDeadlineSeconds must be 0 (no limit) or more, got {value}",
            field="activeDeadlineSeconds",
        )
    return value


def _command(value: str) -> str:
    if not value.strip():
        raise BadUserInput("command must not be empty", field="command")
    if len(value.encode()) > _MAX_COMMAND or "\x00" in value:
        raise BadUserInput(
            f"command must be at most {_MAX_COMMAND} bytes without NUL characters",
            field="command",
        )
    return value


def _image(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None  # the controller's default image
    image = value.strip()
    if len(image) > _MAX_IMAGE or any(char.isspace() for char in image):
        raise BadUserInput(
            f"image must be an image reference of at most {_MAX_IMAGE} characters without spaces",
            field="image",
        )
    return image


def _retention(value: int | None, identity: Identity, settings: ApiSettings) -> int | None:
    if value is None:
        return None  # the controller's ARTIFACT_RETENTION_SECONDS
    longest = settings.api_max_retention_seconds
    if value == 0 and not identity.admin:
        raise BadUserInput(
            "artifactRetentionSeconds 0 (keep forever) is for admins; "
            f"ask for 1 to {longest} seconds",
            field="artifactRetentionSeconds",
        )
    if not 0 <= value <= longest:
        raise BadUserInput(
            f"artifactRetentionSeconds must be from 1 to {longest} seconds, got {value}",
            field="artifactRetentionSeconds",
        )
    return value


def build_job(request: JobRequest, identity: Identity, settings: ApiSettings) -> PhJob:
    retention = _retention(request.artifact_retention_seconds, identity, settings)
    group = _group_name(request, identity)
    spec = PhJobSpec(
        display_name=_display_name(request.display_name),
        group_name=group,
        command=_command(request.command),
        image=_image(request.image),
        user_name=identity.name,
        instance_type=_instance_type(request.instance_type, group, settings),
        active_deadline_seconds=_deadline(request.active_deadline_seconds),
        artifact=ArtifactOverrides(retention_seconds=retention) if retention is not None else None,
    )
    return PhJob(metadata=PhJobMetadata(name=new_job_id()), spec=spec)


async def _inputs(
    request: JobRequest, job: PhJob, identity: Identity, services: Services
) -> tuple[ArtifactInput, ...] | None:
    """The job's ``inputArtifacts`` checked and resolved (``artifacts_api.inputs``)."""
    settings = services.settings
    requests = parse_input_requests(
        request.input_artifacts, max_inputs=settings.api_max_input_artifacts
    )
    if not requests:
        return None
    resolved: list[ArtifactInput] = []
    for wanted in requests:
        try:
            source = await visible_job(services.jobs, identity, wanted.job_id)
        except ApiError as err:  # the same refusal as phJob's, naming the input
            raise type(err)(
                f"{wanted.where}.jobId: {err.message}", field="inputArtifacts"
            ) from None
        resolved.append(
            await resolve_input(
                wanted,
                source,
                manifests=services.manifests,
                s3=services.s3,
                bucket=services.bucket,
                now=time.time(),
            )
        )
    check_input_size(resolved, limit_size_mb=limit_size_mb(job, settings))
    return tuple(resolved)


async def create_job(services: Services, request: JobRequest, identity: Identity) -> PhJob:
    settings = services.settings
    job = build_job(request, identity, settings)
    inputs = await _inputs(request, job, identity, services)
    if inputs is None:
        return await _create(services.jobs, job)
    job = job.model_copy(update={"spec": job.spec.model_copy(update={"input_artifacts": inputs})})
    # Held before the job exists, so no cleanup run can take a source while the controller
    # could already start the job; released by the controller once the inputs are placed.
    holds = InputHolds(services.queue, hold_seconds=settings.artifact_input_hold_seconds)
    prefixes = input_prefixes(inputs)

    async def create(candidate: PhJob) -> PhJob:
        await holds.hold(candidate.id, prefixes, now=time.time())
        try:
            return await services.jobs.create(candidate)
        except BaseException:
            await holds.release(candidate.id, prefixes)
            raise

    return await _create(services.jobs, job, create)


async def _create(
    jobs: JobSource, job: PhJob, create: Callable[[PhJob], Awaitable[PhJob]] | None = None
) -> PhJob:
    for _ in range(_CREATE_ATTEMPTS):
        try:
            return await (create or jobs.create)(job)
        except JobExistsError:
            # Six random characters in one minute: a clash is rare; a new id settles it.
            job = job.model_copy(update={"metadata": PhJobMetadata(name=new_job_id())})
    raise Unavailable("could not find a free job id; try again")
