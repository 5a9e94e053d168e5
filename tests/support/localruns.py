"""The local runtime as ``make run`` starts it, and what its jobs leave: for controller tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from artifacts_controller.contract import run_job_script_path
from artifacts_controller.expiry_feed import ExpiryFeed
from artifacts_controller.local_runtime import run_local
from artifacts_controller.metrics import ControllerMetrics
from artifacts_controller.orphans import OrphanGrace
from artifacts_controller.settings import ControllerSettings
from artifacts_shared.input_holds import InputHolds
from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.phjob import PhJob, PhJobStatus
from artifacts_shared.redis import open_redis
from artifacts_shared.s3 import S3Client, open_s3
from support.phjobs import eventually


@asynccontextmanager
async def running_local(
    store: LocalJobStore, settings: ControllerSettings, feed: ExpiryFeed
) -> AsyncIterator[None]:
    """The local controller as ``make run`` starts it (its S3 and Redis clients from
    ``settings``), until the block ends."""
    async with open_s3(settings) as s3, open_redis(settings) as redis:
        orphans = OrphanGrace.for_settings(settings, s3=s3, expiry_feed=feed)
        task = asyncio.create_task(
            run_local(
                settings,
                ControllerMetrics(),
                run_job_script_path(),
                feed,
                orphans,
                s3=s3,
                input_holds=InputHolds(redis),
            )
        )
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def finished(store: LocalJobStore, job: PhJob, timeout: float = 30) -> PhJobStatus:
    async def done() -> bool:
        return store.get(job.id).status.finished

    await eventually(done, timeout=timeout, what=f"{job.id} to finish")
    return store.get(job.id).status


async def artifacts_of(
    s3: S3Client, bucket: str, job: PhJob, group: str = "ml-team"
) -> dict[str, bytes]:
    """The job's delivered artifact files (no metadata), by relative name."""
    prefix = f"groups/{group}/jobArtifacts/{job.id}/"
    listing = await s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    found = {}
    for item in listing.get("Contents", []):
        name = item["Key"][len(prefix) :]
        if not name.startswith(".primehub/"):
            response = await s3.get_object(Bucket=bucket, Key=item["Key"])
            found[name] = await response["Body"].read()
    return found
