"""The controller's settings, and the uploader's: the shared pieces plus their own.

Timings (resync, backoff, lease) are settings rather than constants so tests can run the
real loops in milliseconds and operators can tune them without a release.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from artifacts_shared.instance_types import InstanceTypeSettings
from artifacts_shared.settings import (
    ArtifactPolicySettings,
    LocalRuntimeSettings,
    RedisSettings,
    RedisUrl,
    S3Settings,
)

__all__ = ["ControllerSettings", "UploaderSettings", "default_identity"]

_K8S_NAME = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"


def default_identity() -> str:
    """Who holds the lease: the pod's name (its hostname) and the process, unique per replica."""
    return f"{socket.gethostname()}-{os.getpid()}"


class ControllerSettings(
    S3Settings, RedisSettings, ArtifactPolicySettings, LocalRuntimeSettings, InstanceTypeSettings
):
    kube_namespace: str = Field(
        "default", pattern=_K8S_NAME, description="a Kubernetes namespace name"
    )
    controller_runtime: Literal["kubernetes", "local"] = Field(
        "kubernetes", description="'kubernetes' or 'local'"
    )
    artifact_delivery: Literal["phfs", "s3"] = Field("phfs", description="'phfs' or 's3'")

    # The job pod.
    job_default_image: str = Field(
        "python:3.11-slim",
        min_length=1,
        description="a container image with bash, for jobs that name none",
    )
    job_termination_grace_seconds: int = Field(
        300,
        ge=30,
        le=86_400,
        description="whole seconds from 30 to 86400: how long a stopped job pod may take "
        "to collect (and upload) its artifacts",
    )
    phfs_volume_claim: str = Field(
        "phfs",
        pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$",
        description="the name of the PersistentVolumeClaim holding PHFS (phfs delivery)",
    )
    uploader_image: str = Field(
        "artifacts-controller:0.1.0",
        min_length=1,
        description="the controller's own image, run as the uploader sidecar (s3 delivery)",
    )
    uploader_sidecar: Literal["native", "container"] = Field(
        "native",
        description="'native' (an init container with restartPolicy Always, Kubernetes "
        "1.29+) or 'container' (an ordinary second container)",
    )
    uploader_s3_secret: str | None = Field(
        None,
        pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$",
        description="the name of a Secret with S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY "
        "for the uploader sidecar, or unset to use the pod's own cloud identity",
    )

    # The control loop.
    artifact_orphan_grace_seconds: int = Field(
        86_400,
        ge=0,
        le=100 * 365 * 86_400,
        description="whole seconds from 0 to 100 years: how long a deleted PhJob's "
        "artifacts stay before they expire (0: they keep their own expiry)",
    )
    controller_workers: int = Field(
        16, ge=1, le=1000, description="how many PhJobs may be reconciled at once (1 to 1000)"
    )
    controller_resync_seconds: float = Field(
        300.0, gt=0, le=86_400, description="seconds between full relists of PhJobs"
    )
    controller_watch_timeout_seconds: int = Field(
        300, ge=1, le=3600, description="whole seconds a watch request stays open (1 to 3600)"
    )
    controller_backoff_initial_seconds: float = Field(
        0.5, gt=0, le=60, description="seconds before the first retry after an API error"
    )
    controller_backoff_max_seconds: float = Field(
        30.0,
        gt=0,
        le=600,
        description="the longest wait between retries in seconds, at least "
        "CONTROLLER_BACKOFF_INITIAL_SECONDS",
    )
    controller_upload_timeout_seconds: int = Field(
        1800,
        ge=10,
        description="whole seconds the uploader sidecar may run after the job's command "
        "ended before the job is failed",
    )

    # Leader election (ARCHITECTURE section 10: active/passive behind a Lease).
    controller_lease_name: str = Field(
        "artifacts-controller", pattern=_K8S_NAME, description="a Lease name"
    )
    controller_lease_seconds: float = Field(
        15.0, gt=0, le=600, description="seconds a lease lasts without renewal"
    )
    controller_lease_renew_seconds: float = Field(
        5.0,
        gt=0,
        le=600,
        description="seconds between lease renewals, at most half of CONTROLLER_LEASE_SECONDS",
    )
    controller_identity: str = Field(
        default_factory=default_identity,
        min_length=1,
        description="this replica's name in the Lease (defaults to hostname-pid)",
    )

    # Probes.
    controller_probe_host: str = Field(
        "0.0.0.0", min_length=1, description="an address for /healthz and /metrics"
    )
    controller_probe_port: int = Field(
        8081, ge=0, le=65535, description="an integer from 0 (any free port) to 65535"
    )

    # The local runtime (CONTROLLER_RUNTIME=local); LOCAL_RUNTIME_DIR is a shared setting,
    # since the api reads running jobs' logs there.
    local_poll_seconds: float = Field(
        1.0, gt=0, le=60, description="seconds between scans of the local job store"
    )
    local_job_uids: str = Field(
        "1900000000-1900065535",
        pattern=r"^[1-9][0-9]{0,9}-[1-9][0-9]{0,9}$",
        description="a range of uids no account uses, first-last, one per unfinished job when "
        "the controller runs as root",
    )

    # A renewal must fit twice in a lease, or a leader could lose it between two renewals.
    @field_validator("controller_lease_renew_seconds")
    @classmethod
    def _renewals_fit_in_a_lease(cls, value: float, info: ValidationInfo) -> float:
        lease = info.data.get("controller_lease_seconds")
        if lease is not None and value * 2 > lease:
            raise ValueError("longer than half the lease")
        return value

    @field_validator("local_job_uids")
    @classmethod
    def _uids_are_a_range(cls, value: str) -> str:
        first, last = (int(part) for part in value.split("-"))
        if not first <= last < 2**31:
            raise ValueError("not a range of uids")
        return value

    @property
    def job_uid_range(self) -> tuple[int, int]:
        first, last = (int(part) for part in self.local_job_uids.split("-"))
        return first, last

    @field_validator("controller_backoff_max_seconds")
    @classmethod
    def _max_backoff_is_not_below_the_first(cls, value: float, info: ValidationInfo) -> float:
        initial = info.data.get("controller_backoff_initial_seconds")
        if initial is not None and value < initial:
            raise ValueError("below the initial backoff")
        return value


class UploaderSettings(S3Settings):
    """The uploader's settings (``python -m artifacts_controller.uploader``).

    Our side of the trust boundary (ARCHITECTURE section 4): the job, its group, the
    retention and the limits come from here -- the controller sets them in our own
    container's environment, under the pod variables' names of section 4, with the values
    the job container gets -- and never from anything in the staging folder.
    """

    redis_url: RedisUrl | None = Field(
        None,
        description="a redis://, rediss:// or unix:// URL of the expiry index, or unset "
        "(then the controller indexes the job when it sees it end)",
    )
    phjob_name: str = Field(min_length=1, description="the job's name (PHJOB_NAME)")
    group_name: str = Field(min_length=1, description="the job's group name (GROUP_NAME)")
    phjob_artifact_staging: Path = Field(
        description="the staging folder shared with run-job.sh (PHJOB_ARTIFACT_STAGING)"
    )
    phjob_artifact_enabled: bool = Field(True, description="true or false")
    phjob_artifact_retention_seconds: int = Field(
        604_800,
        ge=0,
        le=100 * 365 * 86_400,
        description="whole seconds from 0 (keep until deleted by hand) to 100 years",
    )
    phjob_artifact_limit_size_mb: int = Field(
        100, ge=1, le=10_000_000, description="a whole number of megabytes, at least 1"
    )
    phjob_artifact_limit_files: int = Field(
        1000, ge=1, le=100_000_000, description="a whole number of files, at least 1"
    )
    phjob_log_limit_mb: int = Field(
        10,
        ge=1,
        le=10_000,
        description="a whole number of megabytes from 1 to 10000: the most of the job's log "
        "delivered (ARTIFACT_JOB_LOG_LIMIT_MB, as the controller sets it)",
    )
    uploader_job_log: Path | None = Field(
        None,
        description="a file path: the job's output as our side captured it, delivered as "
        ".primehub/metadata/job.log (unset: no log is delivered)",
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
    uploader_exit_code: int | None = Field(
        None,
        ge=0,
        le=255,
        description="the job's exit code as its runtime saw it, from 0 to 255 (unset: the "
        "one run-job.sh reports in the done marker)",
    )
    uploader_owner_uid: int | None = Field(
        None,
        ge=0,
        description="a uid: deliver only staged files it owns (the local runtime's per-job "
        "user), or unset",
    )
