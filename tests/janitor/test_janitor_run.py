"""``Janitor.run``: the run as a job sees it, with the lock and arq's retries around it."""

from __future__ import annotations

from support.buckets import put_objects, snapshot
from support.folders import folder

from artifacts_janitor.run_lock import RunLock
from artifacts_janitor.settings import JanitorSettings
from artifacts_janitor.worker import Janitor
from artifacts_shared.cleanup_queue import lock_token, request_cleanup
from artifacts_shared.cleanup_result import RunOutcome
from artifacts_shared.s3 import S3Client


async def test_a_run_gives_up_after_a_lease_while_another_run_holds_the_lock(
    janitor: Janitor, s3: S3Client, janitor_settings: JanitorSettings
) -> None:
    _, objects = folder("g", "job-1", expired_at=b"1000")
    await put_objects(s3, janitor_settings.phfs_bucket, objects)
    other = RunLock(janitor.redis, lock_token("run-other", 1), lease=2)
    assert await other.acquire(wait=0)
    async with other.kept():
        result = await janitor.run("run-late")

    assert (result.outcome, result.note) == (RunOutcome.SKIPPED, "run run-other holds the run lock")
    assert len(await snapshot(s3, janitor_settings.phfs_bucket)) == len(objects)


async def test_an_arq_retry_of_a_run_that_was_superseded_does_nothing(
    janitor: Janitor, s3: S3Client, janitor_settings: JanitorSettings
) -> None:
    _, objects = folder("g", "job-1", expired_at=b"1000")
    await put_objects(s3, janitor_settings.phfs_bucket, objects)
    newer = await request_cleanup(janitor.redis)

    retried = await janitor.run("cleanup-killed-long-ago", attempt=2)
    resumed = await janitor.run(newer, attempt=2)

    assert (retried.outcome, retried.note) == (RunOutcome.SKIPPED, "superseded by a newer run")
    assert (resumed.outcome, resumed.folders_deleted) == (RunOutcome.COMPLETED, 1)
