"""A deleted PhJob's artifacts go after ``ARTIFACT_ORPHAN_GRACE_SECONDS`` (``orphans.py``).

The controller runs for real against kmock's emulator (which keeps an object with
finalizers, marked with a ``deletionTimestamp``, until they are removed), with the
session's SeaweedFS and Redis; the folders are written as the collection leaves them.
Then the janitor's own run, with its clock past the grace, deletes what is due.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from redis.asyncio import Redis
from support.buckets import put_objects
from support.folders import FixedClock
from support.phjobs import (
    create_phjob,
    eventually,
    read_phjob,
    running,
    running_controller,
    set_pod_status,
    terminated,
    wait_for_phase,
    wait_for_pod,
)

from artifacts_controller.expiry_feed import ExpiryFeed
from artifacts_controller.kube import PHJOBS, PODS, Kube
from artifacts_controller.orphans import FINALIZER
from artifacts_controller.settings import ControllerSettings
from artifacts_janitor.worker import Janitor
from artifacts_shared.expiry_index import EXPIRY_INDEX_KEY
from artifacts_shared.layout import JobPrefix, expired_at_key, job_prefix, retention_record_key
from artifacts_shared.metadata_store import read_retention_record
from artifacts_shared.phjob import ArtifactOverrides, PhJob, PhJobPhase
from artifacts_shared.retention import JOB_DELETED_BY, Change, RecordSigner
from artifacts_shared.s3 import S3Client

DAY = 86_400
WEEK = 7 * DAY
TIMEOUT = 10.0


async def _collected(s3: S3Client, bucket: str, job: PhJob, expires_at: int | None) -> JobPrefix:
    """The job's folder as its collection left it: files, then manifest, then ``expiredAt``."""
    prefix = job_prefix(job.spec.group_name, job.metadata.name)
    objects: Mapping[str, bytes] = {
        f"{prefix}test.txt": b"hello\n",
        f"{prefix}.primehub/metadata/manifest.json": b'{"version": 1}',
    }
    if expires_at is not None:
        objects = {**objects, expired_at_key(prefix): str(expires_at).encode()}
    await put_objects(s3, bucket, dict(objects))
    return prefix


async def _expired_at(s3: S3Client, bucket: str, prefix: JobPrefix) -> int | None:
    try:
        response = await s3.get_object(Bucket=bucket, Key=expired_at_key(prefix))
    except s3.exceptions.NoSuchKey:
        return None
    async with response["Body"] as body:
        return int(await body.read())


async def _finished_job(kube: Kube, **spec: Any) -> PhJob:
    """A job that ran and ended, as the controller saw it (held by our finalizer)."""
    job = await create_phjob(kube, **spec)
    name = job.metadata.name
    await wait_for_pod(kube, name, timeout=TIMEOUT)
    await set_pod_status(kube, name, terminated("Succeeded", 0))
    await wait_for_phase(kube, name, PhJobPhase.SUCCEEDED, timeout=TIMEOUT)
    return await read_phjob(kube, name)


async def _gone(kube: Kube, name: str) -> None:
    async def gone() -> bool:
        return await kube.get(PHJOBS, name) is None

    await eventually(gone, timeout=TIMEOUT, what=f"{name} to be gone")


async def test_a_deleted_jobs_folder_expires_after_the_grace_is_indexed_and_the_job_goes(
    kube: Kube,
    controller_settings: ControllerSettings,
    expiry_feed: ExpiryFeed,
    s3: S3Client,
    redis: Redis,
) -> None:
    bucket = controller_settings.phfs_bucket
    async with running_controller(kube, controller_settings, expiry_feed):
        job = await _finished_job(kube)
        prefix = await _collected(s3, bucket, job, int(time.time()) + WEEK)
        assert FINALIZER in job.metadata.finalizers

        before = time.time()
        await kube.delete(PHJOBS, job.metadata.name)
        await _gone(kube, job.metadata.name)
        after = time.time()

    expired_at = await _expired_at(s3, bucket, prefix)
    assert expired_at is not None and before + DAY - 1 <= expired_at <= after + DAY
    assert await redis.zscore(EXPIRY_INDEX_KEY, prefix) == expired_at
    raw = await read_retention_record(s3, bucket, prefix, limit=4096)
    record = RecordSigner.for_settings(controller_settings).load(raw, prefix)  # type: ignore[union-attr]
    assert record is not None
    assert (record.change, record.changed_by, record.expired_at) == (
        Change.JOB_DELETED, JOB_DELETED_BY, expired_at,
    )  # fmt: skip
    assert record.expired_at - record.changed_at == DAY


async def test_an_earlier_expiry_is_kept_and_a_kept_folder_is_left_alone(
    kube: Kube,
    controller_settings: ControllerSettings,
    expiry_feed: ExpiryFeed,
    s3: S3Client,
) -> None:
    bucket = controller_settings.phfs_bucket
    soon = int(time.time()) + 60
    async with running_controller(kube, controller_settings, expiry_feed):
        early = await _finished_job(kube)
        kept = await _finished_job(kube, artifact=ArtifactOverrides(retention_seconds=0))
        early_prefix = await _collected(s3, bucket, early, soon)
        kept_prefix = await _collected(s3, bucket, kept, None)  # retention 0, or an admin's keep

        for job in (early, kept):
            await kube.delete(PHJOBS, job.metadata.name)
        for job in (early, kept):
            await _gone(kube, job.metadata.name)

    assert await _expired_at(s3, bucket, early_prefix) == soon
    assert await _expired_at(s3, bucket, kept_prefix) is None
    for prefix in (early_prefix, kept_prefix):
        assert await read_retention_record(s3, bucket, prefix, limit=4096) is None


async def test_with_a_grace_of_0_no_finalizer_is_put_and_the_expiry_stays(
    kube: Kube,
    controller_settings: ControllerSettings,
    expiry_feed: ExpiryFeed,
    s3: S3Client,
) -> None:
    settings = controller_settings.model_copy(update={"artifact_orphan_grace_seconds": 0})
    bucket = settings.phfs_bucket
    later = int(time.time()) + WEEK
    async with running_controller(kube, settings, expiry_feed):
        job = await _finished_job(kube)
        prefix = await _collected(s3, bucket, job, later)

        await kube.delete(PHJOBS, job.metadata.name)

        assert job.metadata.finalizers == ()
        assert await kube.get(PHJOBS, job.metadata.name) is None  # deleted at once
    assert await _expired_at(s3, bucket, prefix) == later


async def test_a_running_job_is_stopped_and_its_expiry_rewritten_only_after_its_pod_ended(
    kube: Kube,
    controller_settings: ControllerSettings,
    expiry_feed: ExpiryFeed,
    s3: S3Client,
) -> None:
    bucket = controller_settings.phfs_bucket
    async with running_controller(kube, controller_settings, expiry_feed):
        job = await create_phjob(kube)
        name = job.metadata.name
        await wait_for_pod(kube, name, timeout=TIMEOUT)
        # A kubelet's part: the pod, once deleted, stays until its containers have stopped.
        await kube.patch(PODS, name, {"metadata": {"finalizers": ["test.example/kubelet"]}})
        await set_pod_status(kube, name, running())
        await wait_for_phase(kube, name, PhJobPhase.RUNNING, timeout=TIMEOUT)

        await kube.delete(PHJOBS, name)

        async def pod_stopping() -> bool:
            pod = await kube.get(PODS, name)
            return pod is not None and bool(pod["metadata"].get("deletionTimestamp"))

        await eventually(pod_stopping, timeout=TIMEOUT, what="the controller to delete the pod")
        await wait_for_phase(kube, name, PhJobPhase.CANCELLED, timeout=TIMEOUT)
        # The pod is still collecting: the PhJob waits, held, and the folder is not touched.
        still = await read_phjob(kube, name)
        assert FINALIZER in still.metadata.finalizers
        assert still.metadata.deletion_timestamp is not None
        prefix = await _collected(s3, bucket, job, int(time.time()) + WEEK)  # expiredAt last
        await set_pod_status(kube, name, terminated("Failed", 143))
        await kube.patch(PODS, name, {"metadata": {"finalizers": []}})  # its containers ended
        await _gone(kube, name)

    expired_at = await _expired_at(s3, bucket, prefix)
    assert expired_at is not None and expired_at <= time.time() + DAY


async def test_a_janitor_run_past_the_grace_deletes_the_deleted_jobs_folder(
    kube: Kube,
    controller_settings: ControllerSettings,
    expiry_feed: ExpiryFeed,
    s3: S3Client,
    janitor: Janitor,
    clock: FixedClock,
) -> None:
    bucket = controller_settings.phfs_bucket
    async with running_controller(kube, controller_settings, expiry_feed):
        job = await _finished_job(kube)
        prefix = await _collected(s3, bucket, job, int(time.time()) + WEEK)
        await kube.delete(PHJOBS, job.metadata.name)
        await _gone(kube, job.metadata.name)

    clock.value = time.time() + DAY - 60  # within the grace: kept
    within = await janitor.run("run-within-grace")
    listed = await s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    clock.value = time.time() + DAY + 60  # past it: deleted, from the expiry index
    past = await janitor.run("run-past-grace")
    left = await s3.list_objects_v2(Bucket=bucket, Prefix=prefix)

    assert within.folders_deleted == 0 and listed.get("KeyCount", 0) >= 3
    assert past.folders_deleted == 1
    assert left.get("KeyCount", 0) == 0
    assert retention_record_key(prefix) not in {o["Key"] for o in left.get("Contents", [])}
