"""The controller's settings: the shared pieces plus where and how jobs run."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from artifacts_shared.settings import ArtifactPolicySettings, S3Settings

__all__ = ["ControllerSettings"]


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
