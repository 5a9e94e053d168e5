"""The controller's settings, and the uploader's: the shared pieces plus their own."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from artifacts_shared.settings import ArtifactPolicySettings, S3Settings

__all__ = ["ControllerSettings", "UploaderSettings"]


class ControllerSettings(S3Settings, ArtifactPolicySettings):
    kube_namespace: str = Field(
        "default",
        pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
        description="a Kubernetes namespace name",
    )
    controller_runtime: Literal["kubernetes", "local"] = Field(
        "kubernetes", description="'kubernetes' or 'local'"
    )
    artifact_delivery: Literal["phfs", "s3"] = Field("phfs", description="'phfs' or 's3'")


class UploaderSettings(S3Settings):
    """The uploader's settings (``python -m artifacts_controller.uploader``).

    The job's names and the staging folder use the pod variables of ARCHITECTURE
    section 4, so the sidecar gets the same environment as the job container; the rest
    tune how it waits and uploads. The job's retention and limits are not here: the
    script that collected the files writes them into the done marker.
    """

    phjob_name: str = Field(min_length=1, description="the job's name (PHJOB_NAME)")
    group_name: str = Field(min_length=1, description="the job's group name (GROUP_NAME)")
    phjob_artifact_staging: Path = Field(
        description="the staging folder shared with run-job.sh (PHJOB_ARTIFACT_STAGING)"
    )
    uploader_concurrency: int = Field(
        8, ge=1, le=64, description="how many requests run at once, from 1 to 64"
    )
    uploader_attempts: int = Field(
        5, ge=1, le=20, description="attempts per request before giving up, from 1 to 20"
    )
    uploader_wait_timeout_seconds: float | None = Field(
        None,
        ge=0,
        description="seconds to wait for the done marker (unset: wait until stopped; "
        "0: it must be there already)",
    )
    uploader_stop_grace_seconds: float = Field(
        30,
        ge=0,
        le=3600,
        description="seconds to keep waiting for the done marker after SIGTERM/SIGINT, "
        "from 0 to 3600",
    )
