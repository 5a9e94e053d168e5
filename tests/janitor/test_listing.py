"""Which due folders are listed together (the listing itself runs on every server in
``tests/compat``), and a daily run over neighbouring folders on the real S3 server."""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis
from support.buckets import put_objects, snapshot
from support.folders import NOW, FixedClock, folder
from support.s3_spy import DeleteSpy

from artifacts_janitor.cleanup import CleanupOptions, run_cleanup
from artifacts_janitor.listing import Run, plan_runs
from artifacts_janitor.rescan import RESCAN_RECORD_KEY
from artifacts_shared.expiry_index import ExpiryIndex
from artifacts_shared.layout import JobPrefix, job_prefix
from artifacts_shared.s3 import S3Client
from artifacts_shared.settings import S3Settings


def p(group: str, job: str) -> JobPrefix:
    return job_prefix(group, job)


def test_folders_of_one_group_created_within_the_hour_are_listed_together() -> None:
    root = "groups/g/jobArtifacts/"
    same_hour = [p("g", f"job-2025010112{m:02d}-abc{m:03d}") for m in (5, 17, 59)]
    next_hour = p("g", "job-202501011300-zzz000")
    other_group = p("h", "job-202501011205-abc005")
    short = [p("g", "job-old"), p("g", "job-2025")]

    runs = plan_runs([next_hour, *reversed(same_hour), other_group, *short])

    # By group, then by name; "job-2025" is too short to share an hour with anything.
    assert runs == [
        Run(p("g", "job-2025"), (p("g", "job-2025"),)),
        Run(f"{root}job-2025010112", tuple(same_hour)),
        Run(next_hour, (next_hour,)),
        Run(p("g", "job-old"), (p("g", "job-old"),)),
        Run(other_group, (other_group,)),
    ]


def test_a_run_is_listed_under_the_longest_prefix_its_names_share() -> None:
    names = ["job-202501011205-aaaaaa", "job-202501011205-aaaabb", "job-202501011205-aaaacc"]
    (run,) = plan_runs([p("g", name) for name in names])
    assert run.listing == "groups/g/jobArtifacts/job-202501011205-aaaa"
    assert run.members == tuple(p("g", name) for name in names)


class Lists(DeleteSpy):
    """The S3 client, counting listings."""

    def __init__(self, s3: S3Client) -> None:
        super().__init__(s3)
        self.listings: list[str] = []

    async def list_objects_v2(self, **kwargs: Any) -> Any:
        self.listings.append(kwargs["Prefix"])
        return await self._s3.list_objects_v2(**kwargs)


async def test_a_daily_run_over_neighbours_lists_once_and_deletes_exactly_the_due(
    s3: S3Client, s3_settings: S3Settings, redis: Redis
) -> None:
    bucket = s3_settings.phfs_bucket
    due: dict[JobPrefix, int] = {}
    objects: dict[str, bytes] = {}
    for minute in range(30):
        name = f"job-2025010112{minute:02d}-abc{minute:03d}"
        expiry = NOW - 60 if minute % 3 else NOW + 86_400  # every third kept longer
        files = {"a.txt": b"1", "sub/b": b"2"}
        prefix, files = folder("g", name, files, expired_at=str(expiry).encode())
        objects |= files
        if expiry <= NOW:
            due[prefix] = expiry
    await put_objects(s3, bucket, objects)
    await ExpiryIndex(redis).add_many(due)
    await redis.set(RESCAN_RECORD_KEY, json.dumps({"finishedAt": NOW, "scanned": 0, "found": 0}))
    before = await snapshot(s3, bucket)
    spy = Lists(s3)

    result = await run_cleanup(
        s3=spy,  # type: ignore[arg-type]
        bucket=bucket,
        redis=redis,
        clock=FixedClock(),
        run_id="neighbours",
        options=CleanupOptions(),
    )

    assert sorted(result.deleted) == sorted(due) and result.folders_failed == 0
    assert spy.listings == ["groups/g/jobArtifacts/job-2025010112"]  # one, for 20 folders
    assert await snapshot(s3, bucket) == {
        k: v for k, v in before.items() if not k.startswith(tuple(due))
    }
