"""Runs driven by the expiry index, on the real S3 server and Redis (issue 19's acceptance).

A daily run reads only what the index says is due and confirms each folder's
``expiredAt`` in S3 before deleting; the rescan adds what the index missed. Every test
starts from an empty Redis, so the first run would rescan: tests of the daily run alone
record a rescan a minute before "now", as the previous day's run would have.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from support.buckets import put_objects, snapshot
from support.folders import NOW, FixedClock, folder
from support.s3_spy import DeleteSpy

from artifacts_janitor.cleanup import CleanupOptions, run_cleanup
from artifacts_janitor.rescan import RESCAN_RECORD_KEY
from artifacts_shared.cleanup_result import CleanupResult, RunOutcome, SkipReason
from artifacts_shared.expiry_index import EXPIRY_INDEX_KEY, ExpiryIndex
from artifacts_shared.layout import job_prefix
from artifacts_shared.s3 import S3Client
from artifacts_shared.settings import S3Settings

PAST = NOW - 3600
FUTURE = NOW + 3600
Run = Callable[..., Awaitable[CleanupResult]]


class ReadCounter(DeleteSpy):
    """The S3 client, counting the GETs that read an object."""

    def __init__(self, s3: S3Client) -> None:
        super().__init__(s3)
        self.gets: list[str] = []

    async def get_object(self, **kwargs: Any) -> Any:
        self.gets.append(kwargs["Key"])
        return await self._s3.get_object(**kwargs)


@pytest.fixture
def run(redis: Redis, s3_settings: S3Settings) -> Run:
    """One run at ``clock`` (default: NOW) on the test's bucket and Redis."""

    async def once(
        s3: S3Client, *, clock: FixedClock | None = None, rescan: bool = False, **options: Any
    ) -> CleanupResult:
        return await run_cleanup(
            s3=s3,
            bucket=s3_settings.phfs_bucket,
            redis=redis,
            clock=clock or FixedClock(),
            run_id="test-run",
            options=CleanupOptions(**options),
            rescan_now=rescan,
        )

    return once


async def rescanned_a_minute_ago(redis: Redis) -> None:
    record = {"finishedAt": NOW - 60, "scanned": 0, "found": 0}
    await redis.set(RESCAN_RECORD_KEY, json.dumps(record))


async def index_of(redis: Redis) -> dict[str, float]:
    entries = await redis.zrange(EXPIRY_INDEX_KEY, 0, -1, withscores=True)
    return {member.decode(): score for member, score in entries}


async def test_an_indexed_folder_past_its_expiry_is_deleted_and_leaves_the_index(
    run: Run, s3: S3Client, s3_settings: S3Settings, redis: Redis
) -> None:
    bucket = s3_settings.phfs_bucket
    doomed, doomed_objects = folder("g", "job-old", expired_at=str(PAST).encode())
    kept, kept_objects = folder("g", "job-new", expired_at=str(FUTURE).encode())
    await put_objects(s3, bucket, doomed_objects | kept_objects)
    await ExpiryIndex(redis).add_many({doomed: PAST, kept: FUTURE})
    await rescanned_a_minute_ago(redis)
    before = await snapshot(s3, bucket)
    reads = ReadCounter(s3)

    result = await run(reads)

    assert await snapshot(s3, bucket) == {k: v for k, v in before.items() if k in kept_objects}
    assert result.deleted == [doomed] and not result.rescanned
    assert (result.index_due, result.index_checked, result.index_stale) == (1, 1, 0)
    assert result.objects_deleted == len(doomed_objects)
    assert await index_of(redis) == {kept: FUTURE}
    # The listing's ETag proved the expiredAt: nothing was read with a GET.
    assert reads.gets == []


async def test_a_folder_whose_expiry_was_moved_later_is_kept_and_re_indexed(
    run: Run, s3: S3Client, s3_settings: S3Settings, redis: Redis
) -> None:
    bucket = s3_settings.phfs_bucket
    moved, objects = folder("g", "job-moved", expired_at=str(FUTURE + 86_400).encode())
    await put_objects(s3, bucket, objects)
    await ExpiryIndex(redis).add(moved, PAST)  # what it said before the change
    await rescanned_a_minute_ago(redis)
    before = await snapshot(s3, bucket)

    result = await run(s3)

    assert await snapshot(s3, bucket) == before
    assert (result.folders_deleted, result.folders_unexpired) == (0, 1)
    assert (result.index_due, result.index_checked, result.index_stale) == (1, 1, 1)
    assert await index_of(redis) == {moved: FUTURE + 86_400}


async def test_a_folder_never_indexed_waits_for_the_rescan_which_finds_it(
    run: Run, s3: S3Client, s3_settings: S3Settings, redis: Redis
) -> None:
    bucket = s3_settings.phfs_bucket
    legacy, objects = folder("g", "job-legacy", legacy_expired_at=str(PAST).encode())
    await put_objects(s3, bucket, objects)
    await rescanned_a_minute_ago(redis)

    daily = await run(s3)
    assert (daily.folders_deleted, daily.rescanned, daily.index_due) == (0, False, 0)
    assert len(await snapshot(s3, bucket)) == len(objects)

    # A week after the last rescan the next run makes one on its own.
    week_later = await run(s3, clock=FixedClock(NOW - 60 + 7 * 86_400))

    assert week_later.rescanned and week_later.deleted == [legacy]
    assert (week_later.folders_scanned, week_later.rescan_found) == (1, 1)
    assert await snapshot(s3, bucket) == {}
    assert await index_of(redis) == {}
    record = json.loads(await redis.get(RESCAN_RECORD_KEY))
    assert record == {"finishedAt": NOW - 60 + 7 * 86_400, "scanned": 1, "found": 1}


async def test_after_flushall_nothing_is_deleted_early_and_the_next_rescan_restores_the_index(
    run: Run, s3: S3Client, s3_settings: S3Settings, redis: Redis
) -> None:
    bucket = s3_settings.phfs_bucket
    expiries = {f"job-{i}": NOW + (i - 2) * 3600 + 1800 for i in range(6)}  # 2 past, 4 to come
    objects: dict[str, bytes] = {}
    for job, expiry in expiries.items():
        objects |= folder("ML_Team", job, expired_at=str(expiry).encode())[1]
    await put_objects(s3, bucket, objects)
    first = await run(s3)
    assert first.rescanned and first.folders_deleted == 2
    restored = {job_prefix("ML_Team", j): e for j, e in expiries.items() if e > NOW}
    assert await index_of(redis) == restored

    await redis.flushall()
    kept = await snapshot(s3, bucket)
    # The day after: everything the index knew is gone, and the rescan record with it.
    an_hour_later = await run(s3, clock=FixedClock(NOW + 3600))

    assert an_hour_later.rescanned and an_hour_later.rescan_found == 4
    gone = {job_prefix("ML_Team", j) for j, e in expiries.items() if NOW < e <= NOW + 3600}
    assert sorted(an_hour_later.deleted) == sorted(gone)
    assert await snapshot(s3, bucket) == {
        k: v for k, v in kept.items() if not k.startswith(tuple(gone))
    }
    assert await index_of(redis) == {p: e for p, e in restored.items() if e > NOW + 3600}


async def test_forged_entries_delete_nothing_and_are_dropped(
    run: Run, s3: S3Client, s3_settings: S3Settings, redis: Redis
) -> None:
    bucket = s3_settings.phfs_bucket
    theirs, their_objects = folder("other-group", "job-1", expired_at=str(FUTURE).encode())
    strays = {
        "groups/g/jobArtifactsOld/job-1/.primehub/metadata/expiredAt": str(PAST).encode(),
        "groups/g/notebooks/x.ipynb": b"{}",
        "groups/g/jobArtifacts/loose-file": b"x",
        "elsewhere/file": b"x",
    }
    await put_objects(s3, bucket, their_objects | strays)
    forged: dict[str | bytes, float] = dict.fromkeys(
        [
            "groups/",
            "groups/g/",
            "groups/g/jobArtifacts/",
            "groups/g/jobArtifacts/loose-file",
            "groups/g/jobArtifactsOld/job-1/",
            "groups/g/jobArtifacts/../jobArtifactsOld/job-1/",
            "groups/other-group/jobArtifacts/job-1/.primehub/",
            "elsewhere/",
            "",
            "x" * 10_000,
            b"\xff\xfe",
        ],
        PAST,
    )
    forged[theirs] = PAST  # another group's folder, which S3 says is not due
    await redis.zadd(EXPIRY_INDEX_KEY, forged)
    await rescanned_a_minute_ago(redis)
    before = await snapshot(s3, bucket)
    spy = DeleteSpy(s3)

    result = await run(spy)

    assert await snapshot(s3, bucket) == before
    assert spy.requests == []
    assert result.folders_deleted == 0 and result.folders_failed == 0
    assert (result.index_due, result.index_checked, result.index_stale) == (12, 1, 12)
    assert await index_of(redis) == {theirs: FUTURE}


async def test_an_expiry_the_listing_cannot_prove_is_read_and_still_decides(
    run: Run, s3: S3Client, s3_settings: S3Settings, redis: Redis
) -> None:
    bucket = s3_settings.phfs_bucket
    # ``date +%s > expiredAt`` leaves a newline: the ETag is not the MD5 of the time.
    newline, newline_objects = folder("g", "job-nl", expired_at=f"{PAST}\n".encode())
    # The index holds a different time than the file: the file decides.
    other, other_objects = folder("g", "job-other", expired_at=str(PAST - 5).encode())
    garbage, garbage_objects = folder("g", "job-garbage", expired_at=b"soon")
    await put_objects(s3, bucket, newline_objects | other_objects | garbage_objects)
    await ExpiryIndex(redis).add_many({newline: PAST, other: PAST, garbage: PAST})
    await rescanned_a_minute_ago(redis)
    reads = ReadCounter(s3)

    result = await run(reads)

    assert sorted(result.deleted) == sorted([newline, other])
    assert sorted(reads.gets) == sorted(
        f"{prefix}.primehub/metadata/expiredAt" for prefix in (newline, other, garbage)
    )
    assert [(s.prefix, s.reason) for s in result.skipped] == [
        (garbage, SkipReason.INVALID_EXPIRED_AT)
    ]
    assert set(await snapshot(s3, bucket)) == set(garbage_objects)
    assert await index_of(redis) == {}  # garbage is reported, and not looked at daily


async def test_an_entry_whose_folder_is_gone_is_dropped(
    run: Run, s3: S3Client, s3_settings: S3Settings, redis: Redis
) -> None:
    bucket = s3_settings.phfs_bucket
    gone = job_prefix("g", "job-deleted-by-hand")
    # What SeaweedFS keeps of a folder whose objects were deleted: its directories.
    await s3.put_object(Bucket=bucket, Key=f"{gone}sub/x", Body=b"")
    await s3.delete_object(Bucket=bucket, Key=f"{gone}sub/x")
    await ExpiryIndex(redis).add(gone, PAST)
    await rescanned_a_minute_ago(redis)

    result = await run(s3)

    assert (result.index_checked, result.index_stale, result.folders_deleted) == (1, 1, 0)
    assert await index_of(redis) == {}
    folders = await s3.list_objects_v2(
        Bucket=bucket, Prefix="groups/g/jobArtifacts/", Delimiter="/"
    )
    assert folders.get("CommonPrefixes", []) == []


async def test_a_dry_run_from_the_index_deletes_nothing_and_keeps_the_entries(
    run: Run, s3: S3Client, s3_settings: S3Settings, redis: Redis
) -> None:
    bucket = s3_settings.phfs_bucket
    doomed, objects = folder("g", "job-old", expired_at=str(PAST).encode())
    await put_objects(s3, bucket, objects)
    await ExpiryIndex(redis).add(doomed, PAST)
    await rescanned_a_minute_ago(redis)
    before = await snapshot(s3, bucket)

    result = await run(s3, dry_run=True)

    assert result.dry_run and result.deleted == [doomed]
    assert result.objects_deleted == len(objects)
    assert await snapshot(s3, bucket) == before
    assert await index_of(redis) == {doomed: PAST}


async def test_an_orphan_is_indexed_by_the_rescan_and_deleted_once_old_enough(
    run: Run, s3: S3Client, s3_settings: S3Settings, redis: Redis
) -> None:
    bucket = s3_settings.phfs_bucket
    orphan, objects = folder("g", "job-orphan")  # no expiredAt
    await put_objects(s3, bucket, objects)
    written = max(stamp for _, _, stamp in (await snapshot(s3, bucket)).values()).timestamp()
    options = {"orphan_retention_seconds": 3600}

    young = await run(s3, clock=FixedClock(written + 60), rescan=True, **options)
    assert young.folders_deleted == 0 and young.skipped_by_reason == {
        SkipReason.MISSING_EXPIRED_AT: 1
    }
    (due_at,) = (await index_of(redis)).values()
    assert written + 3600 <= due_at <= written + 3601

    old = await run(s3, clock=FixedClock(written + 7200), **options)
    assert (old.rescanned, old.folders_orphaned, old.deleted) == (False, 1, [orphan])
    assert await snapshot(s3, bucket) == {}
    assert await index_of(redis) == {}


class LosesTheLockOnFirstListing(DeleteSpy):
    """The S3 client; the run's lock is lost the moment it lists its first folder."""

    def __init__(self, s3: S3Client, lost: asyncio.Event) -> None:
        super().__init__(s3)
        self._lost = lost

    async def list_objects_v2(self, **kwargs: Any) -> Any:
        self._lost.set()
        return await self._s3.list_objects_v2(**kwargs)


async def test_a_run_that_loses_its_lock_stops_and_leaves_the_due_folders_indexed(
    s3: S3Client, s3_settings: S3Settings, redis: Redis
) -> None:
    bucket = s3_settings.phfs_bucket
    entries, objects = {}, {}
    for i in range(40):
        prefix, folder_objects = folder("g", f"job-{i:02}", expired_at=str(PAST).encode())
        entries[prefix], objects = PAST, objects | folder_objects
    await put_objects(s3, bucket, objects)
    await ExpiryIndex(redis).add_many(entries)
    await rescanned_a_minute_ago(redis)
    lost = asyncio.Event()
    spy = LosesTheLockOnFirstListing(s3, lost)

    result = await run_cleanup(
        s3=spy,  # type: ignore[arg-type]
        bucket=bucket,
        redis=redis,
        clock=FixedClock(),
        run_id="lost",
        options=CleanupOptions(concurrency=2),
        stop=lost,
    )

    assert result.outcome is RunOutcome.INTERRUPTED
    assert spy.requests == []  # what was checked already is left to the next run
    assert len(await snapshot(s3, bucket)) == len(objects)
    assert await index_of(redis) == entries
