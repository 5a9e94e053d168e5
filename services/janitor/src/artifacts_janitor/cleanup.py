"""One cleanup run: decide every job folder, delete the expired ones, count everything.

The rule (ARCHITECTURE section 6): a folder whose ``expiredAt`` (ours, else the legacy
one) lies at or before "now" is deleted completely, artifacts first and that
``expiredAt`` last, so a run cut short leaves a folder the next run still recognises and
finishes. A folder without a readable ``expiredAt`` — keep-forever, legacy, an upload in
progress, or garbage in the file — is never deleted by default: it is reported by name
and counted. With ``orphan_retention_seconds`` set, such a folder is deleted once its
newest object is that old.

"Now" is read once, from the injected clock, when the run starts: every folder is judged
against the same instant, and a folder expiring during the run waits for the next one.

Folders are worked on ``concurrency`` at a time, pulled from a streamed listing; one
folder's failure is recorded and the run goes on. Nothing here holds more than a page of
a listing per folder in flight, so memory does not grow with the number of objects.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as time_of_day
from typing import TypeVar

from artifacts_janitor.clock import Clock
from artifacts_janitor.deletion import BatchDeleter, Doomed, Failure, FolderDeletion
from artifacts_janitor.folders import directory_markers, iter_job_folders, leftover_markers
from artifacts_shared.cleanup_result import (
    NAMES_KEPT,
    CleanupResult,
    FolderError,
    RunOutcome,
    SkippedFolder,
    SkipReason,
)
from artifacts_shared.expiry import is_expired
from artifacts_shared.layout import METADATA_DIRS, JobPrefix, ObjectKey, is_metadata
from artifacts_shared.metadata_store import ExpiryState, read_expiry, read_retention_record
from artifacts_shared.retention import (
    RECORD_MAX_BYTES,
    Change,
    RecordSigner,
    RetentionRecord,
    skipped_sentence,
)
from artifacts_shared.s3 import DELETE_BATCH_LIMIT, S3Client, iter_objects

__all__ = ["CleanupOptions", "run_cleanup"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

_METADATA_KEPT = 100
"""Metadata objects of one folder remembered from its listing; past this, list again."""
_FINISHING = 256
"""Folders at most waiting for their deletes to be confirmed, outside the worker slots."""


@dataclass(frozen=True, slots=True)
class CleanupOptions:
    dry_run: bool = False
    orphan_retention_seconds: int = 0
    """0 keeps folders without a readable expiredAt forever."""
    concurrency: int = 16
    batch_size: int = DELETE_BATCH_LIMIT
    daily_at: time_of_day = time_of_day(3, 0)
    """JANITOR_DAILY_AT, named in the retention sentences of skipped folders."""
    records: RecordSigner | None = None
    """Checks ``retention.json``: a folder an admin kept says so, and is never an orphan."""


async def run_cleanup(
    *,
    s3: S3Client,
    bucket: str,
    clock: Clock,
    run_id: str,
    options: CleanupOptions,
    stop: asyncio.Event | None = None,
) -> CleanupResult:
    """Sweep every job folder of ``bucket`` once; stop early when ``stop`` is set."""
    started_at = clock.now()
    began = time.perf_counter()
    tally = _Tally()
    deleter = None if options.dry_run else BatchDeleter(s3, bucket, batch_size=options.batch_size)
    try:
        async with asyncio.TaskGroup() as finishing:
            sweeper = _Sweeper(
                s3,
                bucket,
                now=started_at,
                options=options,
                deleter=deleter,
                tally=tally,
                finishing=finishing,
            )
            folders = iter_job_folders(s3, bucket, refused=sweeper.refused)
            await _for_each(folders, options.concurrency, sweeper.sweep, stop=stop)
            if deleter is not None:
                deleter.drain()
    except ExceptionGroup as failed:
        # Only the listing of folders can fail a run (each folder catches its own
        # errors), and every worker then meets the same failure: report that one.
        raise _first(failed) from None
    finally:
        if deleter is not None:
            await deleter.aclose()
    interrupted = stop is not None and stop.is_set()
    return tally.result(
        run_id=run_id,
        outcome=RunOutcome.INTERRUPTED if interrupted else RunOutcome.COMPLETED,
        note="lost the run lock; the next run finishes the work" if interrupted else "",
        dry_run=options.dry_run,
        started_at=started_at,
        duration=time.perf_counter() - began,
    )


async def _for_each(
    source: AsyncIterator[T],
    workers: int,
    handle: Callable[[T], Awaitable[None]],
    *,
    stop: asyncio.Event | None,
) -> None:
    """``handle`` every item of ``source``, ``workers`` at a time, in arrival order."""
    # One shared iterator, read under a lock: an async generator cannot be advanced by
    # two tasks at once, and pulling (rather than fanning out) keeps memory bounded.
    turn = asyncio.Lock()

    async def work() -> None:
        while stop is None or not stop.is_set():
            async with turn:
                try:
                    item = await anext(source)
                except StopAsyncIteration:
                    return
            await handle(item)

    async with asyncio.TaskGroup() as group:
        for _ in range(workers):
            group.create_task(work())


@dataclass(slots=True)
class _Tally:
    """The run's figures as folders are decided; names are capped, counts are not."""

    scanned: int = 0
    unexpired: int = 0
    expired: int = 0
    orphaned: int = 0
    deleted_count: int = 0
    failed: int = 0
    objects: int = 0
    bytes: int = 0
    skipped_by_reason: Counter[SkipReason] = field(default_factory=Counter)
    deleted: list[str] = field(default_factory=list)
    skipped: list[SkippedFolder] = field(default_factory=list)
    errors: list[FolderError] = field(default_factory=list)

    def skip(self, prefix: str, reason: SkipReason, detail: str, retention: str = "") -> None:
        self.skipped_by_reason[reason] += 1
        if len(self.skipped) < NAMES_KEPT:
            self.skipped.append(
                SkippedFolder(prefix=prefix, reason=reason, detail=detail, retention=retention)
            )

    def fail(self, prefix: str, message: str) -> None:
        self.failed += 1
        if len(self.errors) < NAMES_KEPT:
            self.errors.append(FolderError(prefix=prefix, message=message))

    def gone(self, prefix: str) -> None:
        self.deleted_count += 1
        if len(self.deleted) < NAMES_KEPT:
            self.deleted.append(prefix)

    def result(
        self,
        *,
        run_id: str,
        outcome: RunOutcome,
        note: str,
        dry_run: bool,
        started_at: float,
        duration: float,
    ) -> CleanupResult:
        started = datetime.fromtimestamp(started_at, tz=UTC)
        return CleanupResult(
            run_id=run_id,
            outcome=outcome,
            note=note,
            dry_run=dry_run,
            started_at=started,
            finished_at=started + timedelta(seconds=duration),
            duration_seconds=round(duration, 3),
            folders_scanned=self.scanned,
            folders_unexpired=self.unexpired,
            folders_expired=self.expired,
            folders_orphaned=self.orphaned,
            folders_deleted=self.deleted_count,
            folders_skipped=sum(self.skipped_by_reason.values()),
            folders_failed=self.failed,
            objects_deleted=self.objects,
            bytes_freed=self.bytes,
            skipped_by_reason=dict(self.skipped_by_reason),
            deleted=self.deleted,
            skipped=self.skipped,
            errors=self.errors,
        )


class _Sweeper:
    """Decides folders in worker slots; a folder's deletion finishes in ``finishing``.

    Once a folder's listing is handed over, what is left is waiting for the deleter and
    two more small steps: that happens outside the worker slots (at most
    ``_FINISHING`` folders at once), so slow batches never stall finding more folders,
    and batches can wait to fill up.
    """

    def __init__(
        self,
        s3: S3Client,
        bucket: str,
        *,
        now: float,
        options: CleanupOptions,
        deleter: BatchDeleter | None,
        tally: _Tally,
        finishing: asyncio.TaskGroup,
    ) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._now = now
        self._options = options
        self._deleter = deleter
        self._tally = tally
        self._finishing = finishing
        self._finishing_slots = asyncio.Semaphore(_FINISHING)

    def refused(self, folder: str) -> None:
        logger.warning("skipped %s: not a job folder name the layout accepts", folder)
        self._tally.skip(folder, SkipReason.UNSAFE_NAME, "not a job folder name")

    async def sweep(self, prefix: JobPrefix) -> None:
        """Decide one job folder and act on it; never raises for the folder's own trouble."""
        await self._guarded(prefix, self._decide(prefix))

    async def _guarded(self, prefix: JobPrefix, work: Awaitable[None]) -> None:
        try:
            await work
        except Exception as err:  # one folder's failure never stops the run
            logger.error("could not clean %s: %s: %s", prefix, type(err).__name__, err)
            self._tally.fail(prefix, f"{type(err).__name__}: {err}")

    async def _decide(self, prefix: JobPrefix) -> None:
        reading = await read_expiry(self._s3, self._bucket, prefix)
        if reading.state is ExpiryState.MISSING:
            markers = await leftover_markers(self._s3, self._bucket, prefix)
            if markers is not None:
                # What a deleted folder leaves on a server that keeps directories: not a
                # job folder, so neither counted nor reported, only removed -- one by one,
                # as JuiceFS's gateway removes a directory only through DeleteObject.
                if self._deleter is not None:
                    for marker in markers:
                        await self._s3.delete_object(Bucket=self._bucket, Key=marker)
                return
        self._tally.scanned += 1
        if reading.state is ExpiryState.SET:
            assert reading.expired_at is not None
            if not is_expired(reading.expired_at, self._now):
                self._tally.unexpired += 1
                return
            self._tally.expired += 1
            await self._delete(prefix, last=reading.key, why=f"expired at {reading.expired_at}")
            return
        reason = (
            SkipReason.MISSING_EXPIRED_AT
            if reading.state is ExpiryState.MISSING
            else SkipReason.INVALID_EXPIRED_AT
        )
        record = await self._record(prefix)
        retention = self._options.orphan_retention_seconds
        if retention > 0 and not (record is not None and record.change is Change.KEEP):
            newest = await self._newest_object_time(prefix)
            if newest is not None and newest + retention <= self._now:
                self._tally.orphaned += 1
                why = f"{reading.detail}, nothing written for {retention} s"
                await self._delete(prefix, last=reading.key, why=why)
                return
        # A missing expiry is normal (retention 0 keeps a job forever); garbage is not.
        level = logging.INFO if reason is SkipReason.MISSING_EXPIRED_AT else logging.WARNING
        logger.log(level, "kept %s: %s (%s)", prefix, reason.value, reading.detail)
        sentence = skipped_sentence(
            reason, reading, record, now=self._now, daily_at=self._options.daily_at
        )
        self._tally.skip(prefix, reason, reading.detail, sentence)

    async def _record(self, prefix: JobPrefix) -> RetentionRecord | None:
        """The folder's ``retention.json`` when it is ours (signed by the api) and current."""
        signer = self._options.records
        if signer is None:
            return None
        raw = await read_retention_record(self._s3, self._bucket, prefix, limit=RECORD_MAX_BYTES)
        return signer.load(raw, prefix)

    async def _newest_object_time(self, prefix: JobPrefix) -> float | None:
        newest: float | None = None
        async for stored in iter_objects(self._s3, self._bucket, prefix):
            stamp = stored.last_modified.timestamp()
            newest = stamp if newest is None else max(newest, stamp)
        return newest

    async def _delete(self, prefix: JobPrefix, *, last: ObjectKey | None, why: str) -> None:
        """Delete the folder: artifacts, then metadata, then ``last`` (its expiry) alone."""
        folder = FolderDeletion(self._deleter, prefix)
        # The one listing also yields the metadata; a folder's few metadata objects are
        # kept for the second step instead of listing them again, unless there are many.
        metadata: list[Doomed] = []
        relist = False
        dirs: set[str] = set()
        async for stored in iter_objects(self._s3, self._bucket, prefix):
            dirs.add(stored.key[len(prefix) :].rpartition("/")[0])
            if not is_metadata(stored.key[len(prefix) :]):
                await folder.add(Doomed(stored.key, stored.size))
            elif len(metadata) < _METADATA_KEPT:
                metadata.append(Doomed(stored.key, stored.size))
            else:
                relist = True
        await self._finishing_slots.acquire()  # back-pressure on finding more folders
        markers = directory_markers(prefix, dirs)
        self._finishing.create_task(
            self._guarded(
                prefix,
                self._finish(folder, metadata, relist=relist, last=last, why=why, markers=markers),
            )
        )

    async def _finish(
        self,
        folder: FolderDeletion,
        metadata: list[Doomed],
        *,
        relist: bool,
        last: ObjectKey | None,
        why: str,
        markers: list[ObjectKey],
    ) -> None:
        try:
            await self._metadata_last(folder, metadata, relist=relist, last=last, why=why)
        finally:
            self._finishing_slots.release()
        # Only once the folder is gone: its directories, where the server keeps them. Not
        # waited for nor counted; one left behind is removed as empty by the next run.
        if self._deleter is not None and not folder.failures:
            for marker in markers:
                await self._deleter.add(Doomed(marker, 0))

    async def _metadata_last(
        self,
        folder: FolderDeletion,
        metadata: list[Doomed],
        *,
        relist: bool,
        last: ObjectKey | None,
        why: str,
    ) -> None:
        prefix = JobPrefix(folder.prefix)
        if await self._failed(prefix, folder):
            return
        final: Doomed | None = None
        async for doomed in self._metadata(prefix) if relist else _aiter(metadata):
            if doomed.key == last:
                final = doomed
            else:
                await folder.add(doomed)
        if await self._failed(prefix, folder):
            return
        # Until this one goes, the folder still says it is expired: an interrupted run
        # leaves it for the next run to finish instead of turning it into an orphan.
        if final is not None:
            await folder.add(final)
            if await self._failed(prefix, folder):
                return
        self._tally.objects += folder.objects
        self._tally.bytes += folder.bytes
        verb = "would delete" if self._deleter is None else "deleted"
        logger.info(
            "%s %s: %s (%d objects, %d bytes)", verb, prefix, why, folder.objects, folder.bytes
        )
        self._tally.gone(prefix)

    async def _metadata(self, prefix: JobPrefix) -> AsyncIterator[Doomed]:
        for metadata_dir in sorted(METADATA_DIRS):
            async for stored in iter_objects(self._s3, self._bucket, f"{prefix}{metadata_dir}/"):
                yield Doomed(stored.key, stored.size)

    async def _failed(self, prefix: JobPrefix, folder: FolderDeletion) -> bool:
        """Whether this folder's deletion must stop here; counts what is gone either way."""
        failures = await folder.settle()
        if not failures:
            return False
        self._tally.objects += folder.objects
        self._tally.bytes += folder.bytes
        self._tally.fail(prefix, _describe(failures))
        logger.error("could not delete all of %s: %s", prefix, _describe(failures))
        return True


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else first


async def _aiter(items: list[T]) -> AsyncIterator[T]:
    for item in items:
        yield item


def _describe(failures: list[Failure]) -> str:
    first = failures[0]
    return (
        f"{len(failures)} objects not deleted, the next run retries; "
        f"first: {first.key}: {first.code} {first.message}".rstrip()
    )
