"""The expiry index on the real Redis: what it accepts, what an estimate may change, what is due."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from artifacts_shared.expiry_index import EXPIRY_INDEX_KEY, ExpiryIndex, IndexEntry
from artifacts_shared.layout import UnsafeNameError, job_prefix

A = job_prefix("ML_Team", "job-202001010000-aaaaaa")
B = job_prefix("team-b", "job-202001010000-bbbbbb")


async def test_an_entry_is_a_job_prefix_scored_by_its_expiry(redis: Redis) -> None:
    index = ExpiryIndex(redis)
    await index.add(A, 1_800_000_000)

    assert await redis.zrange(EXPIRY_INDEX_KEY, 0, -1, withscores=True) == [
        (b"groups/ml-team/jobArtifacts/job-202001010000-aaaaaa/", 1_800_000_000.0)
    ]


@pytest.mark.parametrize(
    "prefix",
    [
        "groups/",
        "groups/g/jobArtifacts/",
        "groups/g/jobArtifacts/job-1",
        "groups/g/jobArtifacts/job-1/sub/",
        "groups/g/jobArtifactsOld/job-1/",
        "groups/g/jobArtifacts/../job-1/",
        "groups/g/jobArtifacts/job\n1/",
        "other/groups/g/jobArtifacts/job-1/",
    ],
)
async def test_anything_but_a_job_prefix_is_refused_and_nothing_is_written(
    redis: Redis, prefix: str
) -> None:
    index = ExpiryIndex(redis)
    with pytest.raises(UnsafeNameError, match="not a job folder prefix"):
        await index.add(prefix, 1)
    with pytest.raises(UnsafeNameError):
        await index.add_many({A: 1, prefix: 1})  # type: ignore[dict-item]
    assert await redis.exists(EXPIRY_INDEX_KEY) == 0


async def test_an_estimate_moves_an_entry_earlier_never_later(redis: Redis) -> None:
    index = ExpiryIndex(redis)
    await index.add(A, 1000)
    await index.add(A, 2000, keep_earlier=True)
    assert await redis.zscore(EXPIRY_INDEX_KEY, A) == 1000
    await index.add(A, 500, keep_earlier=True)
    assert await redis.zscore(EXPIRY_INDEX_KEY, A) == 500
    await index.add(B, 2000, keep_earlier=True)  # a new entry is added all the same
    assert await redis.zscore(EXPIRY_INDEX_KEY, B) == 2000
    await index.add(A, 3000)  # what S3 says wins
    assert await redis.zscore(EXPIRY_INDEX_KEY, A) == 3000


async def test_adding_many_counts_the_entries_that_were_missing_or_wrong(redis: Redis) -> None:
    index = ExpiryIndex(redis)
    await index.add(A, 1000)
    c = job_prefix("g", "job-c")
    await index.add(c, 7)

    assert await index.add_many({A: 1000, B: 2000, c: 8}) == 2
    assert await index.add_many({}) == 0
    assert await index.size() == 3


async def test_a_snapshot_holds_what_was_due_and_is_taken_earliest_first(redis: Redis) -> None:
    index = ExpiryIndex(redis)
    c = job_prefix("g", "job-c")
    await index.add_many({A: 300, B: 100, c: 199})
    await redis.zadd(EXPIRY_INDEX_KEY, {b"\xff garbage": 5})

    assert await index.snapshot_due(200, "snap", ttl_seconds=60) == 3
    await index.add(job_prefix("g", "job-late"), 150)  # after the snapshot: not in it
    first, second = await index.pop("snap", 2)
    (third,) = await index.pop("snap", 2)

    assert (first.member, first.prefix, first.expired_at) == (b"\xff garbage", None, 5)
    assert (second.prefix, second.expired_at) == (B, 100)
    assert (third.prefix, third.expired_at) == (c, 199)
    assert await index.pop("snap", 2) == []
    assert await index.size() == 5  # the index itself is untouched
    await index.drop_snapshot("snap")
    assert await redis.exists("snap") == 0


@pytest.mark.parametrize(
    ("member", "score", "prefix", "expired_at"),
    [
        (b"groups/g/jobArtifacts/job-1/", 10.0, "groups/g/jobArtifacts/job-1/", 10),
        (b"groups/g/jobArtifacts/job-1/", 10.5, "groups/g/jobArtifacts/job-1/", None),
        (b"groups/g/jobArtifacts/job-1/", -3.0, "groups/g/jobArtifacts/job-1/", None),
        (b"groups/g/jobArtifacts/", 10.0, None, 10),
        (b"\xc3\x28", 10.0, None, 10),
    ],
)
def test_an_entry_read_back_names_a_job_folder_or_nothing(
    member: bytes, score: float, prefix: str | None, expired_at: int | None
) -> None:
    entry = IndexEntry(member, score)
    assert (entry.prefix, entry.expired_at) == (prefix, expired_at)
