"""The job's contract (ARCHITECTURE section 4): run-job.sh, and the variables both sides get.

Both runtimes build a job's environment here, so the Kubernetes pod and the dev stack's
local process run the same script with the same variables: the controller's artifact
policy, overridden per job by ``spec.artifact``. The uploader, our own process on our own
side of the trust boundary, gets the same policy in its own environment and reads it
from there, never from anything the job wrote.

The script is a file of this distribution (``scripts/run-job.sh``) so that the controller
that puts it in the ``primehub-controller-job-scripts`` ConfigMap, the local runtime that
runs it as a process, and the tests all use the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import as_file, files
from pathlib import Path
from typing import Literal

from artifacts_controller.settings import ControllerSettings
from artifacts_shared.phjob import ArtifactOverrides, PhJob
from artifacts_shared.settings import ArtifactPolicySettings

__all__ = [
    "DEFAULT_PHFS_ROOT",
    "RUN_JOB_SCRIPT",
    "ArtifactPolicy",
    "Delivery",
    "contract_env",
    "effective_policy",
    "read_run_job_script",
    "run_job_script_path",
    "uploader_env",
]

RUN_JOB_SCRIPT = "run-job.sh"
"""The script's name: the ConfigMap key, and the file under ``/scripts`` in the pod."""
DEFAULT_PHFS_ROOT = "/phfs"

Delivery = Literal["phfs", "s3"]


def read_run_job_script() -> str:
    """The script's text, for the ConfigMap."""
    return (
        files("artifacts_controller")
        .joinpath("scripts", RUN_JOB_SCRIPT)
        .read_text(encoding="utf-8")
    )


def run_job_script_path() -> Path:
    """A path to the script on the file system, to run with ``bash <path> <command>``.

    The distribution is installed as files (never zipped), so this is the installed file.
    """
    with as_file(files("artifacts_controller").joinpath("scripts", RUN_JOB_SCRIPT)) as path:
        return Path(path)


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


def uploader_env(
    job_env: dict[str, str], settings: ControllerSettings, *, with_keys: bool
) -> dict[str, str]:
    """The uploader's environment: the job's variables and where the bucket is.

    ``with_keys`` adds the S3 keys themselves (the local runtime's child process); a pod
    gets them by reference from a Secret instead, so its spec never holds them.
    """
    env = dict(job_env)
    env["PHFS_BUCKET"] = settings.phfs_bucket
    env["PHJOB_LOG_LIMIT_MB"] = str(settings.artifact_job_log_limit_mb)
    env["S3_REGION"] = settings.s3_region
    if settings.s3_endpoint_url:
        env["S3_ENDPOINT_URL"] = settings.s3_endpoint_url
    if with_keys and settings.s3_access_key_id:
        env["S3_ACCESS_KEY_ID"] = settings.s3_access_key_id
    if with_keys and settings.s3_secret_access_key:
        env["S3_SECRET_ACCESS_KEY"] = settings.s3_secret_access_key.get_secret_value()
    if with_keys:
        # The local uploader indexes the expiredAt it writes (issue 19); a pod's sidecar
        # gets no Redis: there the controller's estimate feeds the index (expiry_feed).
        env["REDIS_URL"] = settings.redis_url
    return env
