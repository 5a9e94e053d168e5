from __future__ import annotations

from datetime import UTC, datetime

import pytest

from artifacts_shared.layout import expired_at_key, job_prefix, legacy_expired_at_key
from artifacts_shared.manifest import Manifest, ManifestError, ManifestLimits
from artifacts_shared.metadata_store import (
    ExpiryState,
    read_expiry,
    read_manifest,
    write_expired_at,
    write_manifest,
)
from artifacts_shared.s3 import S3Client
from artifacts_shared.settings import S3Settings

PREFIX = job_prefix("ML_Team", "job-202009250153-34s0ti")


async def test_expired_at_round_trips_through_the_bucket(
    s3: S3Client, s3_settings: S3Settings
) -> None:
    bucket = s3_settings.phfs_bucket
    assert (await read_expiry(s3, bucket, PREFIX)).state is ExpiryState.MISSING
    await write_expired_at(s3, bucket, PREFIX, 1_800_000_000)
    stored = await s3.get_object(Bucket=bucket, Key=expired_at_key(PREFIX))
    assert await stored["Body"].read() == b"1800000000"
    reading = await read_expiry(s3, bucket, PREFIX)
    assert (reading.state, reading.expired_at, reading.key) == (
        ExpiryState.SET,
        1_800_000_000,
        expired_at_key(PREFIX),
    )


async def test_legacy_expired_at_is_read_when_ours_is_absent(
    s3: S3Client, s3_settings: S3Settings
) -> None:
    bucket = s3_settings.phfs_bucket
    await s3.put_object(Bucket=bucket, Key=legacy_expired_at_key(PREFIX), Body=b"1600000000\n")
    reading = await read_expiry(s3, bucket, PREFIX)
    assert (reading.state, reading.expired_at) == (ExpiryState.SET, 1_600_000_000)
    await write_expired_at(s3, bucket, PREFIX, 1_700_000_000)
    assert (await read_expiry(s3, bucket, PREFIX)).expired_at == 1_700_000_000


@pytest.mark.parametrize(
    ("body", "detail"),
    [(b"", "empty"), (b"soon", "not decimal"), (b"9" * 100, "larger than 64 bytes")],
)
async def test_unreadable_expired_at_is_invalid_never_a_time(
    s3: S3Client, s3_settings: S3Settings, body: bytes, detail: str
) -> None:
    bucket = s3_settings.phfs_bucket
    await s3.put_object(Bucket=bucket, Key=expired_at_key(PREFIX), Body=body)
    reading = await read_expiry(s3, bucket, PREFIX)
    assert reading.state is ExpiryState.INVALID
    assert reading.expired_at is None
    assert detail in reading.detail


async def test_manifest_round_trips_through_the_bucket(
    s3: S3Client, s3_settings: S3Settings
) -> None:
    bucket = s3_settings.phfs_bucket
    assert await read_manifest(s3, bucket, PREFIX) is None
    manifest = Manifest(
        job="job-202009250153-34s0ti",
        group="ML_Team",
        collected_at=datetime(2026, 11, 23, tzinfo=UTC),
        expired_at=None,
        exit_code=0,
        file_count=0,
        total_size=0,
        limits=ManifestLimits(size_mb=100, files=1000),
    )
    await write_manifest(s3, bucket, PREFIX, manifest)
    assert await read_manifest(s3, bucket, PREFIX) == manifest
    await s3.put_object(
        Bucket=bucket, Key=PREFIX + ".primehub/metadata/manifest.json", Body=b"{broken"
    )
    with pytest.raises(ManifestError):
        await read_manifest(s3, bucket, PREFIX)
