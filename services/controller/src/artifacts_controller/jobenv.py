"""The variables run-job.sh reads (ARCHITECTURE section 4), for a pod or a local process.

Both runtimes build a job's environment here, so the Kubernetes pod and the dev stack's
local process run the same script with the same contract: the controller's artifact policy,
overridden per job by ``spec.artifact``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from artifacts_shared.phjob import ArtifactOverrides, PhJob
from artifacts_shared.settings import ArtifactPolicySettings

__all__ = ["DEFAULT_PHFS_ROOT", "ArtifactPolicy", "contract_env", "effective_policy"]

DEFAULT_PHFS_ROOT = "/phfs"

Delivery = Literal["phfs", "s3"]


@dataclass(frozen=True)
class ArtifactPolicy:
    enabled: bool
    retention_seconds: int
    limit_size_mb: int
    limit_files: int


def effective_policy(job: PhJob, defaults: ArtifactPolicySettings) -> ArtifactPolicy:
    """The controller's policy with the job's own ``spec.artifact`` values put over it."""
    own = job.spec.artifact or ArtifactOverrides()
    return ArtifactPolicy(
        enabled=defaults.artifact_enabled if own.enabled is None else own.enabled,
        retention_seconds=(
            defaults.artifact_retention_seconds
            if own.retention_seconds is None
            else own.retention_seconds
        ),
        limit_size_mb=(
            defaults.artifact_limit_size_mb if own.limit_size_mb is None else own.limit_size_mb
        ),
        limit_files=defaults.artifact_limit_files if own.limit_files is None else own.limit_files,
    )


def contract_env(
    job: PhJob,
    policy: ArtifactPolicy,
    *,
    delivery: Delivery,
    phfs_root: str = DEFAULT_PHFS_ROOT,
    staging: str | None = None,
) -> dict[str, str]:
    """Every variable of the contract, as strings, in a stable order."""
    env = {
        "PHJOB_NAME": job.metadata.name,
        "GROUP_NAME": job.spec.group_name,
        "PHJOB_ARTIFACT_ENABLED": "true" if policy.enabled else "false",
        "PHJOB_ARTIFACT_LIMIT_SIZE_MB": str(policy.limit_size_mb),
        "PHJOB_ARTIFACT_LIMIT_FILES": str(policy.limit_files),
        "PHJOB_ARTIFACT_RETENTION_SECONDS": str(policy.retention_seconds),
        "PHJOB_PHFS_ROOT": phfs_root,
        "PHJOB_ARTIFACT_DELIVERY": delivery,
    }
    if delivery == "s3":
        if staging is None:
            raise ValueError("the s3 delivery needs a staging folder")
        env["PHJOB_ARTIFACT_STAGING"] = staging
    return env
