"""The PhJob custom resource (``primehub.io/v1alpha1``, plural ``phjobs``) as pydantic models.

The api creates PhJobs and sets ``spec.cancel``; the controller owns ``status``. Both read
them from Kubernetes, or from the local job store in the dev stack, through these models,
so the JSON they exchange is the CRD's camelCase shape (``helm/crds/phjobs.yaml``).
"""

from __future__ import annotations

import re
import secrets
import string
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal, NewType

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

__all__ = [
    "API_GROUP",
    "API_VERSION",
    "FINISHED_PHASES",
    "JOB_ID_PATTERN",
    "KIND",
    "PLURAL",
    "ArtifactInput",
    "ArtifactOverrides",
    "JobId",
    "PhJob",
    "PhJobMetadata",
    "PhJobPhase",
    "PhJobSpec",
    "PhJobStatus",
    "is_job_id",
    "new_job_id",
]

API_GROUP = "primehub.io"
API_VERSION = "v1alpha1"
KIND = "PhJob"
PLURAL = "phjobs"

JobId = NewType("JobId", str)
JOB_ID_PATTERN = r"^job-[0-9]{12}-[a-z0-9]{6}$"
"""``job-202009250153-34s0ti``: creation minute (UTC) and six random characters."""
_JOB_ID = re.compile(JOB_ID_PATTERN)
_ID_ALPHABET = string.ascii_lowercase + string.digits


def new_job_id(now: datetime | None = None) -> JobId:
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    suffix = "".join(secrets.choice(_ID_ALPHABET) for _ in range(6))
    return JobId(f"job-{moment:%Y%m%d%H%M}-{suffix}")


def is_job_id(value: str) -> bool:
    return _JOB_ID.fullmatch(value) is not None


class PhJobPhase(StrEnum):
    PENDING = "Pending"
    PREPARING = "Preparing"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"
    UNKNOWN = "Unknown"


FINISHED_PHASES = frozenset({PhJobPhase.SUCCEEDED, PhJobPhase.FAILED, PhJobPhase.CANCELLED})


class _Model(BaseModel):
    # Kubernetes adds fields we do not model (managedFields, ...): ignore, never fail on them.
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


class ArtifactOverrides(_Model):
    """Per-job overrides of the controller's artifact policy; unset fields use the default."""

    enabled: bool | None = None
    retention_seconds: int | None = Field(None, ge=0)
    limit_size_mb: int | None = Field(None, ge=1)
    limit_files: int | None = Field(None, ge=1)


class ArtifactInput(_Model):
    """Another job's artifacts, placed under ``~/inputs/<jobId>/`` before the command starts.

    The api resolves it when the job is created (the source exists, is collected, not
    expired, and readable by the creator) and records what it found: the source's group
    (so the controller finds the folder without asking anyone), how many files the
    selection held and their bytes. The controller's fetch reads the source manifest again
    and refuses a selection that no longer matches these figures.
    """

    job_id: str = Field(pattern=JOB_ID_PATTERN)
    path: str | None = Field(None, min_length=1, max_length=1024)
    """A file or a folder inside the source artifacts, relative to their root; None: all."""
    group_name: str = Field(min_length=1)
    file_count: int = Field(ge=0)
    total_size: int = Field(ge=0)


class PhJobSpec(_Model):
    display_name: str = Field(min_length=1, max_length=256)
    user_name: str | None = None
    group_name: str = Field(min_length=1)
    image: str | None = None
    command: str = Field(min_length=1)
    instance_type: str | None = Field(None, min_length=1, max_length=63)
    """An ``INSTANCE_TYPES`` preset's name; the controller makes it the pod's resources."""
    active_deadline_seconds: int | None = Field(None, ge=1)
    cancel: bool = False
    artifact: ArtifactOverrides | None = None
    input_artifacts: tuple[ArtifactInput, ...] | None = None
    """Placed under ``~/inputs/`` before the command runs (``artifacts_controller.inputs``)."""


class PhJobStatus(_Model):
    phase: PhJobPhase = PhJobPhase.PENDING
    pod_name: str | None = None
    start_time: datetime | None = None
    finish_time: datetime | None = None
    reason: str | None = None
    message: str | None = None

    @property
    def finished(self) -> bool:
        return self.phase in FINISHED_PHASES


class PhJobMetadata(_Model):
    name: str
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    creation_timestamp: datetime | None = None
    deletion_timestamp: datetime | None = None
    """Set once the PhJob is being deleted; it stays until its finalizers are removed."""
    finalizers: tuple[str, ...] = ()
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class PhJob(_Model):
    api_version: Literal["primehub.io/v1alpha1"] = "primehub.io/v1alpha1"
    kind: Literal["PhJob"] = "PhJob"
    metadata: PhJobMetadata
    spec: PhJobSpec
    status: PhJobStatus = Field(default_factory=PhJobStatus)

    @property
    def id(self) -> JobId:
        return JobId(self.metadata.name)

    @classmethod
    def from_k8s(cls, document: dict[str, Any]) -> PhJob:
        return cls.model_validate(document)

    def to_k8s(self) -> dict[str, Any]:
        """The document to send to Kubernetes: camelCase, RFC 3339 times, no nulls."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
