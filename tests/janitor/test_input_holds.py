"""A due folder that a job yet to start will read is deferred, and the run says which job
waits for it; once the hold is released (the job started) or has lapsed, the next run
deletes it. On the real S3 server and Redis, through the janitor's own run."""

from __future__ import annotations

from redis.asyncio import Redis
from support.buckets import snapshot
from support.folders import NOW, FixedClock
from support.seeds import deliver_seed

from artifacts_janitor.worker import Janitor
from artifacts_shared.cleanup_result import SkippedFolder, SkipReason
from artifacts_shared.expiry_index import EXPIRY_INDEX_KEY
from artifacts_shared.input_holds import InputHolds
from artifacts_shared.phjob import new_job_id
from artifacts_shared.s3 import S3Client

DAY = 86_400


async def test_a_held_folder_outlives_its_expiry_until_the_waiting_job_starts(
    janitor: Janitor, clock: FixedClock, s3: S3Client, redis: Redis
) -> None:
    bucket = janitor.settings.phfs_bucket
    seed, consumer = new_job_id(), new_job_id()
    prefix = await deliver_seed(s3, bucket, seed, expired_at=NOW - 3600)
    holds = InputHolds(redis, hold_seconds=janitor.settings.artifact_input_hold_seconds)
    await holds.hold(consumer, [prefix], now=NOW - 600)  # the api, when it created consumer
    before = await snapshot(s3, bucket)

    deferred = await janitor.run("run-1")

    assert await snapshot(s3, bucket) == before  # not a byte gone
    assert deferred.deleted == [] and deferred.folders_deleted == 0
    assert deferred.skipped_by_reason == {SkipReason.INPUT_PENDING: 1}
    assert deferred.skipped == [
        SkippedFolder(
            prefix=prefix,
            reason=SkipReason.INPUT_PENDING,
            detail=f"input of job {consumer}, which has not started",
            retention=f"expired on 15 Jan at 07:00 UTC; kept while job {consumer} waits "
            "to read it as an input (at most until 22 Jan at 07:50 UTC)",
        )
    ]
    # Still due in the index: the next run looks again.
    assert await redis.zscore(EXPIRY_INDEX_KEY, prefix) == NOW - 3600

    await holds.release(consumer, [prefix])  # the controller, once the inputs are placed
    clock.value = NOW + DAY
    cleaned = await janitor.run("run-2")

    assert cleaned.deleted == [prefix]
    assert cleaned.skipped == []
    assert await snapshot(s3, bucket) == {}


async def test_a_hold_older_than_the_bound_no_longer_keeps_the_folder(
    janitor: Janitor, s3: S3Client, redis: Redis
) -> None:
    """A job stuck in Pending (or deleted while the controller was down) cannot pin a folder."""
    bucket = janitor.settings.phfs_bucket
    seed, stuck = new_job_id(), new_job_id()
    prefix = await deliver_seed(s3, bucket, seed, expired_at=NOW - 3600)
    bound = janitor.settings.artifact_input_hold_seconds
    await InputHolds(redis, hold_seconds=bound).hold(stuck, [prefix], now=NOW - bound - 1)

    result = await janitor.run("run-1")

    assert result.deleted == [prefix]
    assert await snapshot(s3, bucket) == {}


async def test_a_hold_defers_only_the_folder_it_names(
    janitor: Janitor, s3: S3Client, redis: Redis
) -> None:
    bucket = janitor.settings.phfs_bucket
    held, free, consumer = new_job_id(), new_job_id(), new_job_id()
    held_prefix = await deliver_seed(s3, bucket, held, expired_at=NOW - 60)
    free_prefix = await deliver_seed(s3, bucket, free, expired_at=NOW - 60)
    await InputHolds(redis).hold(consumer, [held_prefix], now=NOW)

    result = await janitor.run("run-1")

    assert result.deleted == [free_prefix]
    assert [skipped.prefix for skipped in result.skipped] == [held_prefix]
    assert all(key.startswith(held_prefix) for key in await snapshot(s3, bucket))
