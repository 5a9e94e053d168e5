"""The reconciling full scan: every job folder of the bucket, read and put into the index.

The daily run only looks at what the expiry index says is due; this scan is what keeps
the index whole. It finds folders the index missed (PrimeHub's legacy folders, a job
whose feed was lost, a Redis that lost its data), corrects entries that disagree with
S3, and reports by name every folder without a readable ``expiredAt``. It deletes
nothing but the empty directories a deleted folder can leave (see ``folders``): what is
due goes into the index, and the same run's daily pass deletes it after reading it again.

It runs when ``JANITOR_RESCAN_EVERY`` has passed since the last one finished (so at once
on a Redis without the record), and when asked for (``request_cleanup(rescan=True)``,
``python -m artifacts_janitor --once --rescan``). Folders are listed by delimiter
listings, page by page, and read ``concurrency`` at a time, so memory stays flat however
large the bucket.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass

from redis.asyncio import Redis

from artifacts_janitor.decision import Action, decide
from artifacts_janitor.folders import iter_job_folders, leftover_markers, newest_object_time
from artifacts_janitor.keeps import Keeps
from artifacts_janitor.pulling import for_each
from artifacts_janitor.tally import Tally
from artifacts_shared.cleanup_result import SkipReason
from artifacts_shared.expiry_index import ExpiryIndex
from artifacts_shared.layout import JobPrefix
from artifacts_shared.metadata_store import ExpiryState, read_expiry
from artifacts_shared.s3 import S3Client

__all__ = ["RESCAN_RECORD_KEY", "RescanRecord", "last_rescan", "rescan"]

logger = logging.getLogger(__name__)

RESCAN_RECORD_KEY = "artifacts:expiry-index:rescan"
"""When the last rescan finished and what it found (JSON); absent: none has, on this Redis."""
_INDEX_BATCH = 500


@dataclass(frozen=True, slots=True)
class RescanRecord:
    finished_at: float
    scanned: int
    found: int


async def last_rescan(redis: Redis) -> RescanRecord | None:
    raw = await redis.get(RESCAN_RECORD_KEY)
    if raw is None:
        return None
    try:
        stored = json.loads(raw)
        return RescanRecord(
            float(stored["finishedAt"]), int(stored["scanned"]), int(stored["found"])
        )
    except (ValueError, KeyError, TypeError):
        return None  # unreadable: as if there were none, so the next run rescans


async def rescan(
    *,
    s3: S3Client,
    bucket: str,
    redis: Redis,
    index: ExpiryIndex,
    now: float,
    tally: Tally,
    orphan_retention_seconds: int,
    keeps: Keeps,
    concurrency: int,
    dry_run: bool,
    stop: asyncio.Event | None = None,
) -> None:
    """Scan every job folder into ``index``; record the scan unless it was stopped."""
    scan = _Scan(
        s3,
        bucket,
        index,
        now=now,
        tally=tally,
        orphans=orphan_retention_seconds,
        keeps=keeps,
        dry_run=dry_run,
    )
    folders = iter_job_folders(s3, bucket, refused=scan.refused)
    await for_each(folders, concurrency, scan.folder, stop=stop)
    await scan.flush()
    tally.rescanned = True
    if stop is not None and stop.is_set():
        return
    tally.last_rescan_at = now
    tally.rescan_found = scan.found
    record = {"finishedAt": now, "scanned": tally.scanned, "found": scan.found}
    await redis.set(RESCAN_RECORD_KEY, json.dumps(record))


class _Scan:
    def __init__(
        self,
        s3: S3Client,
        bucket: str,
        index: ExpiryIndex,
        *,
        now: float,
        tally: Tally,
        orphans: int,
        keeps: Keeps,
        dry_run: bool,
    ) -> None:
        self._keeps = keeps
        self._s3 = s3
        self._bucket = bucket
        self._index = index
        self._now = now
        self._tally = tally
        self._orphans = orphans
        self._dry_run = dry_run
        self._pending: dict[JobPrefix, int] = {}
        self.found = 0

    def refused(self, folder: str) -> None:
        logger.warning("skipped %s: not a job folder name the layout accepts", folder)
        self._tally.skip(folder, SkipReason.UNSAFE_NAME, "not a job folder name")

    async def folder(self, prefix: JobPrefix) -> None:
        try:
            await self._decide(prefix)
        except Exception as err:  # one folder's failure never stops the scan
            logger.error("could not read %s: %s: %s", prefix, type(err).__name__, err)
            self._tally.fail(prefix, f"{type(err).__name__}: {err}")

    async def _decide(self, prefix: JobPrefix) -> None:
        reading = await read_expiry(self._s3, self._bucket, prefix)
        if reading.state is ExpiryState.MISSING:
            markers = await leftover_markers(self._s3, self._bucket, prefix)
            if markers is not None:
                # What a deleted folder leaves on a server that keeps directories: not a
                # job folder, so neither counted nor reported, only removed -- one by one,
                # as JuiceFS's gateway removes a directory only through DeleteObject.
                if not self._dry_run:
                    for marker in markers:
                        await self._s3.delete_object(Bucket=self._bucket, Key=marker)
                return
        self._tally.scanned += 1
        orphans, record = await self._keeps.orphan_rule(prefix, reading, self._orphans)
        newest = None
        if reading.state is not ExpiryState.SET and orphans > 0:
            newest = await newest_object_time(self._s3, self._bucket, prefix)
        verdict = decide(reading, now=self._now, orphan_retention_seconds=orphans, newest=newest)
        if verdict.reason is not None and verdict.action is not Action.DELETE:
            # No readable expiry: reported by name, even when the orphan rule will take it.
            missing = verdict.reason is SkipReason.MISSING_EXPIRED_AT
            level = logging.INFO if missing else logging.WARNING
            logger.log(level, "kept %s: %s (%s)", prefix, verdict.reason.value, verdict.detail)
            sentence = self._keeps.sentence(verdict.reason, reading, record)
            self._tally.skip(prefix, verdict.reason, verdict.detail, sentence)
        if verdict.action is Action.KEEP:
            return
        if verdict.action is Action.LATER and not verdict.orphaned:
            self._tally.unexpired += 1
        assert verdict.due_at is not None
        self._pending[prefix] = verdict.due_at
        if len(self._pending) >= _INDEX_BATCH:
            await self.flush()

    async def flush(self) -> None:
        pending, self._pending = self._pending, {}
        self.found += await self._index.add_many(pending)
