"""A deleted PhJob's artifacts go after a grace (``ARTIFACT_ORPHAN_GRACE_SECONDS``).

Argo's artifact garbage collection and MLflow's runs work this way: a job's artifacts
belong to the job, and go when it goes. The controller holds every PhJob it reconciles
with a finalizer of ours (``FINALIZER``), so a deletion leaves the PhJob in place, marked
with a ``deletionTimestamp``, until we let go. The reconciler (``reconcile.py``) then
stops the job if it still runs, waits until its run has ended -- its collection may still
be writing the folder, and the ``expiredAt`` it writes last would undo ours -- and only
then calls ``OrphanGrace.job_deleted``, and removes the finalizer.

``job_deleted`` shortens the folder's expiry to ``min(expiredAt, now + grace)``, the way
``setPhJobArtifactExpiry`` changes one: ``expiredAt`` first (S3 is the source of truth),
then the signed ``retention.json`` saying why (``Change.JOB_DELETED``: "its job was
deleted on 3 Dec; deleted after a day's grace, ..."), then the expiry index. The
janitor's next run past that time deletes the folder, re-reading ``expiredAt`` first.

A folder with no readable ``expiredAt`` is left as it is: kept until deleted by hand (by
an admin's keep, or a job that asked for retention 0), a legacy folder, or a garbled one
that an admin decides on -- the same rule as the janitor's, for which an admin's keep is
never an orphan. An earlier expiry is never moved later. With a grace of 0 nothing
changes and no finalizer is put on new PhJobs: the artifacts keep their own expiry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from artifacts_controller.expiry_feed import ExpiryFeed
from artifacts_controller.settings import ControllerSettings
from artifacts_shared.layout import UnsafeNameError, job_prefix
from artifacts_shared.metadata_store import (
    ExpiryState,
    read_expiry,
    write_expired_at,
    write_retention_record,
)
from artifacts_shared.phjob import PhJob
from artifacts_shared.retention import JOB_DELETED_BY, Change, RecordSigner, RetentionRecord
from artifacts_shared.s3 import S3Client

__all__ = ["FINALIZER", "OrphanGrace"]

log = logging.getLogger(__name__)

FINALIZER = "primehub.io/job-artifacts"
"""Ours on every PhJob the controller reconciles while the grace is above 0."""


class OrphanGrace:
    def __init__(
        self,
        *,
        s3: S3Client,
        bucket: str,
        grace_seconds: int,
        expiry_feed: ExpiryFeed,
        records: RecordSigner | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._s3 = s3
        self._bucket = bucket
        self.grace_seconds = grace_seconds
        self._feed = expiry_feed
        self._records = records
        self._clock = clock

    @classmethod
    def for_settings(
        cls, settings: ControllerSettings, *, s3: S3Client, expiry_feed: ExpiryFeed
    ) -> OrphanGrace:
        return cls(
            s3=s3,
            bucket=settings.phfs_bucket,
            grace_seconds=settings.artifact_orphan_grace_seconds,
            expiry_feed=expiry_feed,
            records=RecordSigner.for_settings(settings),
        )

    @property
    def enabled(self) -> bool:
        """False with a grace of 0: deleted jobs' artifacts keep their own expiry."""
        return self.grace_seconds > 0

    async def job_deleted(self, job: PhJob) -> int | None:
        """Shorten the deleted ``job``'s folder expiry; the ``expiredAt`` it now has, if any."""
        try:
            prefix = job_prefix(job.spec.group_name, job.metadata.name)
        except UnsafeNameError:
            return None  # no folder was ever written for it
        now = int(self._clock())
        due = now + self.grace_seconds
        reading = await read_expiry(self._s3, self._bucket, prefix)
        if reading.state is not ExpiryState.SET or reading.expired_at is None:
            if reading.state is ExpiryState.INVALID:
                log.info("%s deleted: %s has an unreadable expiry, left alone", job.id, prefix)
            return None  # no folder, or kept until deleted by hand: not ours to shorten
        if reading.expired_at <= due:
            return reading.expired_at  # it goes sooner anyway
        await write_expired_at(self._s3, self._bucket, prefix, due)
        if self._records is not None:
            record = RetentionRecord(prefix, due, Change.JOB_DELETED, JOB_DELETED_BY, now)
            await write_retention_record(self._s3, self._bucket, prefix, self._records.dump(record))
        await self._feed.expiry_written(prefix, due)
        log.info("%s deleted: its artifacts now expire at %s (grace %s s)", job.id, due,
                 self.grace_seconds)  # fmt: skip
        return due
