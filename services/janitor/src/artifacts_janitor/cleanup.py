"""One cleanup run: the rescan when it is due, then every folder the expiry index says is due.

The rule (ARCHITECTURE section 6): a folder whose ``expiredAt`` (ours, else the legacy
one) lies at or before "now" is deleted completely, artifacts first and that
``expiredAt`` last. A folder without a readable ``expiredAt`` is never deleted by default
(``decision``). The expiry index (``artifacts_shared.expiry_index``) only says which
folders to look at: each due entry's folder is listed and its ``expiredAt`` confirmed
from S3 before anything goes, so a stale, lost or forged entry deletes nothing early.
What S3 does not confirm is re-indexed at the time S3 gives, or removed from the index.

Confirming needs no extra request in the usual case: the folder is listed anyway (its
keys are what gets deleted), and the listing's ETag of a plainly written object is the
MD5 of its bytes, so an ``expiredAt`` whose ETag is the MD5 of the entry's time holds
exactly that time. Any other ETag (a multipart or encrypted object, a trailing newline,
another time) is read with a GET.

"Now" is read once, from the injected clock, when the run starts: every folder is judged
against the same instant, and a folder expiring during the run waits for the next one.
The run works through its own copy of the due entries (``snapshot_due``), a page at a
time: their folders are listed in runs of neighbours (``listing``), ``concurrency`` runs
at a time, and judged; folders judged due queue for one deleting task, which takes as
many as are waiting (up to a request's worth of keys) as one group, so listing the next
folders overlaps deleting the last ones. One folder's failure is recorded and
the run goes on; a failed folder keeps its entry and is finished by the next run.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import time as time_of_day
from datetime import timedelta

from redis.asyncio import Redis

from artifacts_janitor.clock import Clock
from artifacts_janitor.decision import Action, decide
from artifacts_janitor.deletion import Doomed, delete_folders
from artifacts_janitor.folders import FolderPage, leftover_markers, newest_object_time
from artifacts_janitor.keeps import Keeps
from artifacts_janitor.listing import Run, list_due, plan_runs
from artifacts_janitor.pulling import first_error, for_each
from artifacts_janitor.rescan import last_rescan, rescan
from artifacts_janitor.tally import Tally
from artifacts_shared.cleanup_result import CleanupResult, RunOutcome, SkipReason
from artifacts_shared.expiry import format_expired_at
from artifacts_shared.expiry_index import ExpiryIndex, IndexEntry
from artifacts_shared.input_holds import DEFAULT_HOLD_SECONDS, Hold, InputHolds
from artifacts_shared.layout import JobPrefix, ObjectKey, expired_at_key, legacy_expired_at_key
from artifacts_shared.metadata_store import ExpiryReading, ExpiryState, read_expiry
from artifacts_shared.retention import RecordSigner
from artifacts_shared.s3 import DELETE_BATCH_LIMIT, S3Client

__all__ = ["CleanupOptions", "run_cleanup"]

logger = logging.getLogger(__name__)

_PAGE = 1000
"""Due entries taken from the run's snapshot at a time: the more, the longer the runs of
neighbouring folders listed together (``listing``)."""
_QUEUED = 128
"""Checked folders at most waiting to be deleted: back-pressure on checking more."""
_SNAPSHOT_TTL_SECONDS = 86_400


@dataclass(frozen=True, slots=True)
class CleanupOptions:
    dry_run: bool = False
    orphan_retention_seconds: int = 0
    """0 keeps folders without a readable expiredAt forever."""
    concurrency: int = 16
    batch_size: int = DELETE_BATCH_LIMIT
    rescan_every: timedelta = timedelta(days=7)
    daily_at: time_of_day = time_of_day(3, 0)
    """JANITOR_DAILY_AT, named in the retention sentences of skipped folders."""
    records: RecordSigner | None = None
    """Checks ``retention.json``: a folder an admin kept says so, and is never an orphan."""
    input_hold_seconds: int = DEFAULT_HOLD_SECONDS
    """ARTIFACT_INPUT_HOLD_SECONDS: how long a job that has not started holds its inputs."""


async def run_cleanup(
    *,
    s3: S3Client,
    bucket: str,
    redis: Redis,
    clock: Clock,
    run_id: str,
    options: CleanupOptions,
    rescan_now: bool = False,
    stop: asyncio.Event | None = None,
) -> CleanupResult:
    """One run over ``bucket``; ``rescan_now`` forces the full scan; stop early on ``stop``."""
    started_at = clock.now()
    began = time.perf_counter()
    tally = Tally()
    index = ExpiryIndex(redis)
    keeps = Keeps(s3, bucket, signer=options.records, daily_at=options.daily_at, now=started_at)
    record = await last_rescan(redis)
    due = record is None or record.finished_at + options.rescan_every.total_seconds() <= started_at
    if rescan_now or due:
        await rescan(
            s3=s3,
            bucket=bucket,
            redis=redis,
            index=index,
            now=started_at,
            tally=tally,
            orphan_retention_seconds=options.orphan_retention_seconds,
            keeps=keeps,
            concurrency=options.concurrency,
            dry_run=options.dry_run,
            stop=stop,
        )
    elif record is not None:
        tally.last_rescan_at, tally.rescan_found = record.finished_at, record.found
    if stop is None or not stop.is_set():
        holds = InputHolds(redis, hold_seconds=options.input_hold_seconds)
        await _DuePass(
            s3,
            bucket,
            index,
            now=started_at,
            options=options,
            keeps=keeps,
            holds=holds,
            tally=tally,
            stop=stop,
        ).run(f"{index.key}:due:{run_id}")
    tally.index_size = await index.size()
    interrupted = stop is not None and stop.is_set()
    return tally.result(
        run_id=run_id,
        outcome=RunOutcome.INTERRUPTED if interrupted else RunOutcome.COMPLETED,
        note="lost the run lock; the next run finishes the work" if interrupted else "",
        dry_run=options.dry_run,
        started_at=started_at,
        duration=time.perf_counter() - began,
    )


class _DuePass:
    """Lists and judges the due entries, runs of neighbours at a time; one task deletes."""

    def __init__(
        self,
        s3: S3Client,
        bucket: str,
        index: ExpiryIndex,
        *,
        now: float,
        options: CleanupOptions,
        keeps: Keeps,
        holds: InputHolds,
        tally: Tally,
        stop: asyncio.Event | None,
    ) -> None:
        self._keeps = keeps
        self._s3 = s3
        self._bucket = bucket
        self._index = index
        self._now = now
        self._options = options
        self._tally = tally
        self._stop = stop
        self._queue: asyncio.Queue[Doomed | None] = asyncio.Queue(maxsize=_QUEUED)
        self._holds = holds
        self._held: dict[JobPrefix, list[Hold]] = {}
        """The page's due folders that jobs yet to start will read (``input_holds``)."""

    async def run(self, snapshot: str) -> None:
        self._tally.index_due = await self._index.snapshot_due(
            self._now, snapshot, ttl_seconds=_SNAPSHOT_TTL_SECONDS
        )
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._delete_queued())
                while (self._stop is None or not self._stop.is_set()) and (
                    entries := await self._index.pop(snapshot, _PAGE)
                ):
                    await self._check(entries)
                await self._queue.put(None)
        except ExceptionGroup as failed:
            raise first_error(failed) from None
        finally:
            await self._index.drop_snapshot(snapshot)

    async def _check(self, entries: list[IndexEntry]) -> None:
        """Judge one page of due entries, their folders listed in runs of neighbours."""
        due: dict[JobPrefix, IndexEntry] = {}
        for entry in entries:
            prefix = entry.prefix
            if prefix is None:
                # Nothing of ours writes such an entry: it is garbage or forged.
                logger.warning("removed index entry %r: not a job folder", entry.member[:300])
                self._tally.index_stale += 1
                await self._index.remove(entry.member)
            else:
                due[prefix] = entry
        # One round trip for the page: which of these folders a job waits to read.
        self._held = await self._holds.waiting(list(due), now=self._now)

        async def judge_run(run: Run) -> None:
            judged: set[JobPrefix] = set()
            try:
                async for prefix, page in list_due(self._s3, self._bucket, run):
                    judged.add(prefix)
                    await self._judged(due[prefix], page)
            except Exception as err:  # one listing's failure never stops the run
                message = f"{type(err).__name__}: {err}"
                logger.error("could not list %s: %s", run.listing, message)
                for prefix in run.members:
                    if prefix not in judged:
                        self._tally.fail(prefix, message)

        await for_each(_each(plan_runs(due)), self._options.concurrency, judge_run, stop=self._stop)

    async def _judged(self, entry: IndexEntry, page: FolderPage) -> None:
        """Judge one folder from its listing; never raises for the folder's own trouble."""
        try:
            doomed = await self._judge(entry, page)
        except Exception as err:  # one folder's failure never stops the run
            logger.error("could not check %r: %s: %s", entry.member, type(err).__name__, err)
            self._tally.fail(
                entry.member[:300].decode(errors="replace"), f"{type(err).__name__}: {err}"
            )
            return
        if doomed is not None:
            await self._queue.put(doomed)

    async def _judge(self, entry: IndexEntry, page: FolderPage) -> Doomed | None:
        prefix = entry.prefix
        assert prefix is not None
        self._tally.index_checked += 1
        if page.complete and all(item.key.endswith("/") for item in page.objects):
            await self._gone(prefix, entry)
            return None
        reading = _confirmed(page, prefix, entry) or await read_expiry(
            self._s3, self._bucket, prefix
        )
        retention, record = await self._keeps.orphan_rule(
            prefix, reading, self._options.orphan_retention_seconds
        )
        newest = None
        if reading.state is not ExpiryState.SET and retention > 0:
            newest = (
                max(item.last_modified.timestamp() for item in page.objects)
                if page.complete
                else await newest_object_time(self._s3, self._bucket, prefix)
            )
        verdict = decide(reading, now=self._now, orphan_retention_seconds=retention, newest=newest)
        holds = self._held.get(prefix)
        if verdict.action is Action.DELETE and holds:
            await self._defer(prefix, reading, holds)
            return None
        if verdict.action is Action.DELETE:
            if verdict.orphaned:
                self._tally.orphaned += 1
            else:
                self._tally.expired += 1
            return Doomed(prefix, entry.member, page, last=reading.key, why=verdict.detail)
        self._tally.index_stale += 1
        if verdict.reason is not None:
            # No readable expiry: reported by name, even when the orphan rule will take it.
            missing = verdict.reason is SkipReason.MISSING_EXPIRED_AT
            level = logging.INFO if missing else logging.WARNING
            logger.log(level, "kept %s: %s (%s)", prefix, verdict.reason.value, verdict.detail)
            sentence = self._keeps.sentence(verdict.reason, reading, record)
            self._tally.skip(prefix, verdict.reason, verdict.detail, sentence)
        if verdict.action is Action.LATER:
            assert verdict.due_at is not None
            if not verdict.orphaned:
                self._tally.unexpired += 1
                logger.info("kept %s: expires at %d; re-indexed", prefix, verdict.due_at)
            await self._index.add(prefix, verdict.due_at)
        else:
            await self._index.remove(entry.member)
        return None

    async def _defer(self, prefix: JobPrefix, reading: ExpiryReading, holds: list[Hold]) -> None:
        """A due folder that a job yet to start will read: kept, its entry left due, so the
        next run looks again (once the job has started, or its hold has lapsed)."""
        waiting = max(holds, key=lambda hold: hold.until)
        others = f" and {len(holds) - 1} more" if len(holds) > 1 else ""
        detail = f"input of job {waiting.job_id}{others}, which has not started"
        logger.info("kept %s: %s", prefix, detail)
        record = await self._keeps.record(prefix)
        sentence = self._keeps.sentence(SkipReason.INPUT_PENDING, reading, record, hold=waiting)
        self._tally.skip(prefix, SkipReason.INPUT_PENDING, detail, sentence)

    async def _gone(self, prefix: JobPrefix, entry: IndexEntry) -> None:
        """An entry whose folder holds nothing: deleted by hand, or by a run cut short."""
        self._tally.index_stale += 1
        markers = await leftover_markers(self._s3, self._bucket, prefix) or []
        if not self._options.dry_run:
            # One by one: JuiceFS's gateway removes a directory only through DeleteObject.
            for marker in markers:
                await self._s3.delete_object(Bucket=self._bucket, Key=marker)
            await self._index.remove(entry.member)

    async def _delete_queued(self) -> None:
        """Delete the checked folders in groups: all that wait, up to a request's keys."""
        held: Doomed | None = None
        ended = False
        while not ended:
            first = held if held is not None else await self._queue.get()
            held = None
            if first is None:
                return
            group, keys = [first], len(first.page.objects)
            while first.page.complete and not self._queue.empty():
                following = self._queue.get_nowait()
                if following is None:
                    ended = True
                    break
                if not following.page.complete or keys + len(following.page.objects) > (
                    self._options.batch_size
                ):
                    held = following
                    break
                group.append(following)
                keys += len(following.page.objects)
            if self._stop is not None and self._stop.is_set():
                continue  # lost the lock: leave them, with their entries, to the next run
            await self._delete(group)

    async def _delete(self, group: list[Doomed]) -> None:
        deletions = await delete_folders(
            self._s3,
            self._bucket,
            group,
            dry_run=self._options.dry_run,
            batch_size=self._options.batch_size,
        )
        gone: list[bytes] = []
        verb = "would delete" if self._options.dry_run else "deleted"
        for deletion in deletions:
            prefix = deletion.folder.prefix
            self._tally.objects += deletion.objects
            self._tally.bytes += deletion.bytes
            if deletion.failure is not None:
                logger.error("could not delete all of %s: %s", prefix, deletion.failure)
                self._tally.fail(prefix, deletion.failure)
                continue
            logger.info(
                "%s %s: %s (%d objects, %d bytes)",
                verb,
                prefix,
                deletion.folder.why,
                deletion.objects,
                deletion.bytes,
            )
            self._tally.gone(prefix)
            gone.append(deletion.folder.member)
        if not self._options.dry_run:
            await self._index.remove(*gone)


async def _each(runs: list[Run]) -> AsyncIterator[Run]:
    for run in runs:
        yield run


def _confirmed(page: FolderPage, prefix: JobPrefix, entry: IndexEntry) -> ExpiryReading | None:
    """The folder's expiry as its listing proves it, None when only a GET can tell."""
    ours = legacy = None
    for item in page.objects:
        if item.key == expired_at_key(prefix):
            ours = item
        elif item.key == legacy_expired_at_key(prefix):
            legacy = item
    if ours is None and not page.complete:
        return None  # ours may be on a later page, and it decides over the legacy one
    decisive = ours or legacy
    if decisive is None:
        return ExpiryReading(ExpiryState.MISSING, detail="no expiredAt")
    expected = entry.expired_at
    if expected is None:
        return None
    written = hashlib.md5(format_expired_at(expected).encode(), usedforsecurity=False)
    if decisive.etag != written.hexdigest():
        return None
    return ExpiryReading(ExpiryState.SET, expected, key=ObjectKey(decisive.key))
