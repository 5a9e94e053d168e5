"""A Kubernetes job's log, delivered with its artifacts by the controller once the job ends.

Inside the pod nothing is ours to trust for the log: the job container is the job's, and
the uploader sidecar (s3 mode) cannot see that container's output, nor is there one in
phfs mode. The only copy the job cannot touch is the kubelet's, read through the API
server (``pods/<name>/log``, the ``job`` container: the command's stdout and stderr in
order, then run-job.sh's collection lines). So the controller reads it there when it sees
the job container's end, and puts it in the bucket as ``.primehub/metadata/job.log``
(``joblog.py``: its end within ``ARTIFACT_JOB_LOG_LIMIT_MB``), then counts it in the
folder's ``manifest.json``. That happens before the job's finished status is written:
a pass that fails is retried (so a bucket that cannot be reached holds the finished status
back until it can), and a finished job is never looked at again. A job container that
never started has no log, nor has a pod already gone: then none is kept.

The order of section 3 still holds where it can: when the delivery wrote no metadata (no
artifacts, or none collected), the log comes with a manifest and then an ``expiredAt``
from our policy and our clock, so the log expires with the folder like any artifact. When
an ``expiredAt`` exists already, the log and the manifest's count follow it by the
seconds between the delivery's end and this pass.
"""

from __future__ import annotations

import logging
from datetime import datetime

from artifacts_controller.contract import effective_policy
from artifacts_controller.joblog import capped_log, put_job_log
from artifacts_controller.kube import Kube, KubeApiError
from artifacts_controller.pods import JOB_CONTAINER
from artifacts_controller.settings import ControllerSettings
from artifacts_shared.expiry import expiry_after
from artifacts_shared.layout import job_prefix
from artifacts_shared.manifest import Manifest, ManifestError, ManifestLimits
from artifacts_shared.metadata_store import (
    ExpiryState,
    read_expiry,
    read_manifest,
    write_expired_at,
    write_manifest,
)
from artifacts_shared.phjob import PhJob
from artifacts_shared.s3 import S3Client

__all__ = ["deliver_pod_log"]

log = logging.getLogger(__name__)
_MIB = 1024 * 1024


async def deliver_pod_log(
    job: PhJob,
    pod: str,
    *,
    kube: Kube,
    s3: S3Client,
    settings: ControllerSettings,
    ended_at: datetime,
) -> None:
    """Put the job container's log with ``job``'s artifacts; errors propagate (a retry)."""
    prefix = job_prefix(job.spec.group_name, job.metadata.name)
    bucket = settings.phfs_bucket
    limit = settings.artifact_job_log_limit_mb * _MIB
    try:
        tail, written = await kube.log_tail(pod, JOB_CONTAINER, keep=limit)
    except KubeApiError as err:
        if err.status not in (400, 404):
            raise
        # The container never started (400: "waiting to start") or the pod is gone: there
        # is no log to keep, and waiting cannot bring one.
        log.warning("%s: no log to keep: %s", job.metadata.name, err.message or err.status)
        return
    job_log = capped_log(tail, written, limit=limit)
    await put_job_log(s3, bucket, prefix, job_log)
    try:
        manifest = await read_manifest(s3, bucket, prefix)
    except ManifestError as err:  # phfs mode: the job's own writing; leave it as it is
        log.warning("%s: the log is delivered, not counted: %s", job.metadata.name, err)
        return
    if manifest is not None:
        await write_manifest(s3, bucket, prefix, manifest.model_copy(update={"log": job_log.entry}))
        return
    policy = effective_policy(job, settings)
    expired_at = expiry_after(int(ended_at.timestamp()), policy.retention_seconds)
    manifest = Manifest(
        job=job.metadata.name,
        group=job.spec.group_name,
        collected_at=ended_at,
        expired_at=expired_at,
        file_count=0,
        total_size=0,
        limits=ManifestLimits(size_mb=policy.limit_size_mb, files=policy.limit_files),
        log=job_log.entry,
    )
    await write_manifest(s3, bucket, prefix, manifest)
    if expired_at is not None and (await read_expiry(s3, bucket, prefix)).state is (
        ExpiryState.MISSING
    ):
        await write_expired_at(s3, bucket, prefix, expired_at)
