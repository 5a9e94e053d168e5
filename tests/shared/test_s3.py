from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from support.s3_spy import DeleteSpy
from support.servers import S3Server

from artifacts_shared.s3 import (
    S3Client,
    delete_keys,
    iter_objects,
    iter_prefixes,
    parse_s3_timestamp,
)
from artifacts_shared.settings import S3Settings


async def _put_many(s3: S3Client, bucket: str, keys: list[str], body: bytes = b"x") -> None:
    semaphore = asyncio.Semaphore(32)

    async def put(key: str) -> None:
        async with semaphore:
            await s3.put_object(Bucket=bucket, Key=key, Body=body)

    await asyncio.gather(*(put(key) for key in keys))


async def test_listing_streams_every_page(s3: S3Client, s3_settings: S3Settings) -> None:
    bucket = s3_settings.phfs_bucket
    keys = [f"groups/g/jobArtifacts/j/file-{i:03}" for i in range(25)]
    await _put_many(s3, bucket, [*keys, "groups/g/jobArtifacts/other/x"], body=b"hello\n")
    seen = [
        item async for item in iter_objects(s3, bucket, "groups/g/jobArtifacts/j/", page_size=7)
    ]
    assert [item.key for item in seen] == keys
    assert {item.size for item in seen} == {6}
    assert all(item.last_modified.tzinfo is not None for item in seen)


async def test_listing_yields_the_first_page_before_fetching_the_rest(
    s3: S3Client, s3_settings: S3Settings
) -> None:
    bucket = s3_settings.phfs_bucket
    await _put_many(s3, bucket, [f"p/{i:02}" for i in range(10)])
    listing = iter_objects(s3, bucket, "p/", page_size=3)
    first = await anext(listing)
    # Add a key that sorts last: a lazy listing still sees it on a later page.
    await s3.put_object(Bucket=bucket, Key="p/99", Body=b"late")
    rest = [item.key async for item in listing]
    assert first.key == "p/00"
    assert rest[-1] == "p/99"


async def test_prefix_listing_returns_folders_only(s3: S3Client, s3_settings: S3Settings) -> None:
    bucket = s3_settings.phfs_bucket
    await _put_many(
        s3,
        bucket,
        [f"groups/g/jobArtifacts/job-{i}/f" for i in range(12)]
        + ["groups/g/jobArtifacts/loose-file", "groups/g/jobArtifactsOld/x/f"],
    )
    prefixes = [p async for p in iter_prefixes(s3, bucket, "groups/g/jobArtifacts/", page_size=5)]
    assert sorted(prefixes) == sorted(f"groups/g/jobArtifacts/job-{i}/" for i in range(12))


async def test_delete_batches_at_most_a_thousand_keys(
    s3: S3Client, s3_settings: S3Settings, s3_server: S3Server
) -> None:
    bucket = s3_settings.phfs_bucket
    doomed = [f"doomed/{i:04}" for i in range(2500)]
    s3_server.seed(bucket, dict.fromkeys([*doomed, "kept/one"], b"x"))

    async def stream() -> AsyncIterator[str]:
        async for item in iter_objects(s3, bucket, "doomed/"):
            yield item.key

    outcome = await delete_keys(s3, bucket, stream())
    assert (outcome.deleted, outcome.requests, outcome.ok) == (2500, 3, True)
    remaining = [item.key async for item in iter_objects(s3, bucket, "")]
    assert remaining == ["kept/one"]


async def test_delete_honours_a_smaller_batch_and_plain_lists(
    s3: S3Client, s3_settings: S3Settings
) -> None:
    bucket = s3_settings.phfs_bucket
    await _put_many(s3, bucket, [f"k/{i}" for i in range(10)])
    outcome = await delete_keys(s3, bucket, [f"k/{i}" for i in range(10)], batch_size=4)
    assert (outcome.deleted, outcome.requests) == (10, 3)
    assert [item async for item in iter_objects(s3, bucket, "k/")] == []


async def test_deleting_listed_objects_counts_their_bytes_and_names_the_refused(
    s3: S3Client, s3_settings: S3Settings
) -> None:
    bucket = s3_settings.phfs_bucket
    await s3.put_object(Bucket=bucket, Key="k/small", Body=b"12")
    await s3.put_object(Bucket=bucket, Key="k/kept", Body=b"12345")
    listed = [item async for item in iter_objects(s3, bucket, "k/")]
    spy = DeleteSpy(s3, refuse=lambda key: key == "k/kept")

    outcome = await delete_keys(spy, bucket, listed)  # type: ignore[arg-type]

    assert (outcome.deleted, outcome.bytes) == (1, 2)
    assert [(f.key, f.code, f.size) for f in outcome.failures] == [("k/kept", "AccessDenied", 5)]
    assert [item.key async for item in iter_objects(s3, bucket, "k/")] == ["k/kept"]


@pytest.mark.parametrize(
    ("written", "moment"),
    [
        ("2009-10-12T17:50:30.000Z", datetime(2009, 10, 12, 17, 50, 30, tzinfo=UTC)),
        ("2009-10-12T17:50:30Z", datetime(2009, 10, 12, 17, 50, 30, tzinfo=UTC)),
        ("2009-10-12T17:50:30", datetime(2009, 10, 12, 17, 50, 30, tzinfo=UTC)),
        ("2009-10-12T19:50:30+02:00", datetime(2009, 10, 12, 17, 50, 30, tzinfo=UTC)),
        ("Mon, 12 Oct 2009 17:50:30 GMT", datetime(2009, 10, 12, 17, 50, 30, tzinfo=UTC)),
        ("1255369830", datetime(2009, 10, 12, 17, 50, 30, tzinfo=UTC)),
    ],
)
def test_s3_timestamps_of_every_form_read_as_the_same_instant(
    written: str, moment: datetime
) -> None:
    parsed = parse_s3_timestamp(written)
    assert parsed.tzinfo is not None and parsed == moment


async def test_a_listing_and_a_head_agree_on_when_an_object_was_written(
    s3: S3Client, s3_settings: S3Settings
) -> None:
    bucket = s3_settings.phfs_bucket
    await s3.put_object(Bucket=bucket, Key="t/one", Body=b"1")
    (listed,) = [item async for item in iter_objects(s3, bucket, "t/")]
    head = await s3.head_object(Bucket=bucket, Key="t/one")  # an RFC 1123 header

    assert listed.last_modified.tzinfo is not None
    assert abs(listed.last_modified - head["LastModified"]) < timedelta(seconds=1)
    assert abs(listed.last_modified - datetime.now(UTC)) < timedelta(minutes=5)
