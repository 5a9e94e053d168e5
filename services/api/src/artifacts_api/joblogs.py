"""Which log a job has now (ARCHITECTURE section 5): live from its runtime, then the bucket.

While the job runs, its runtime has the log (``JobSource.live_log``: the pod's log through
the API server, or the local runtime's file). Once it has ended, the copy delivered with
its artifacts (``.primehub/metadata/job.log``) is the log, for as long as the artifact
folder is kept. The log expires with the folder: once the folder's ``expiredAt`` has
passed, or the folder is gone and the job's retention has run out, the log is refused,
even where a pod or the local runtime's file still holds it. A finished job whose folder
holds no log (collected before logs were delivered, or without a delivery) is served from
its runtime while that still has it.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from artifacts_api.errors import NotFound
from artifacts_api.jobs import artifacts_expire_at
from artifacts_api.logreaders import JobLog, SeekableLog, open_object_log
from artifacts_api.services import Services
from artifacts_api.times import iso_utc
from artifacts_shared.expiry import is_expired, to_datetime
from artifacts_shared.layout import UnsafeNameError, job_log_key, job_prefix
from artifacts_shared.metadata_store import ExpiryState, read_expiry
from artifacts_shared.phjob import PhJob

__all__ = ["locate_log"]


def _expired(job: PhJob, when: datetime | None) -> NotFound:
    on = f" on {iso_utc(when)}" if when is not None else ""
    return NotFound(f"the log of job {job.id} expired with its artifacts{on}", reason="expired")


async def locate_log(services: Services, job: PhJob, *, now: float | None = None) -> JobLog | None:
    """The log to serve for ``job``; None while it has written nothing yet.

    ``NotFound`` when the log is no longer kept (expired, or gone with the runtime).
    """
    if not job.status.finished:
        return await services.jobs.live_log(job)
    moment = time.time() if now is None else now
    try:
        prefix = job_prefix(job.spec.group_name, job.id)
    except UnsafeNameError:
        prefix = None  # a group no collector could have written a folder for
    if prefix is not None:
        archived, expiry = await asyncio.gather(
            open_object_log(services.s3, services.bucket, job_log_key(prefix)),
            read_expiry(services.s3, services.bucket, prefix),
        )
        if expiry.state is ExpiryState.SET and expiry.expired_at is not None:
            if is_expired(expiry.expired_at, moment):
                raise _expired(job, to_datetime(expiry.expired_at))
        elif expiry.state is ExpiryState.MISSING and archived is None:
            # No expiredAt and no log: the folder is gone, or never held one; past the
            # job's retention it is gone either way. (A log without expiredAt is kept.)
            ends = artifacts_expire_at(job, services.settings)
            if ends is not None and ends <= datetime.fromtimestamp(moment, UTC):
                raise _expired(job, ends)
        if archived is not None:
            return SeekableLog(archived, source="ARCHIVE")
    live = await services.jobs.live_log(job)
    if live is None:
        raise NotFound(f"job {job.id} has ended and no log of it was kept", reason="gone")
    return live
