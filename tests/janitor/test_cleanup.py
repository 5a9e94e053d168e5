"""A run that rescans, on the real S3 server and Redis: what goes, what stays, in which order.

Each run here makes the full scan (as the first run on a new Redis does), so every job
folder of the bucket is judged; runs that work from the index alone are in
``test_expiry_index_runs.py``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import pytest
from botocore.exceptions import EndpointConnectionError
from redis.asyncio import Redis
from support.buckets import put_objects, snapshot, under
from support.folders import NOW, FixedClock, folder
from support.s3_spy import DeleteSpy
from support.servers import S3Server

from artifacts_janitor.cleanup import CleanupOptions, run_cleanup
from artifacts_shared.cleanup_result import NAMES_KEPT, CleanupResult, RunOutcome, SkipReason
from artifacts_shared.layout import expired_at_key, legacy_expired_at_key, manifest_key
from artifacts_shared.s3 import S3Client, iter_prefixes, open_s3
from artifacts_shared.settings import S3Settings

PAST = str(NOW - 3600).encode()
FUTURE = str(NOW + 3600).encode()


Sweep = Callable[..., Awaitable[CleanupResult]]


@pytest.fixture
def sweep(redis: Redis) -> Sweep:
    """A run with the full scan, on the test's Redis: ``await sweep(s3, bucket, clock)``."""

    async def run(s3: S3Client, bucket: str, clock: FixedClock, **options: object) -> CleanupResult:
        return await run_cleanup(
            s3=s3,
            bucket=bucket,
            redis=redis,
            clock=clock,
            run_id="test-run",
            options=CleanupOptions(**options),  # type: ignore[arg-type]
            rescan_now=True,
        )

    return run


async def test_expired_folders_go_completely_and_unexpired_ones_stay_to_the_byte(
    sweep: Sweep, s3: S3Client, s3_settings: S3Settings, clock: FixedClock
) -> None:
    bucket = s3_settings.phfs_bucket
    old, old_objects = folder(
        "ML_Team",
        "job-old",
        {"test.txt": b"hello\n", "sub/test.txt": b"hello\n", ".hidden": b"x", "a b/c": b"1" * 99},
        expired_at=PAST,
        legacy_expired_at=PAST,
    )
    # Expiring this very second counts as expired.
    due, due_objects = folder("team-b", "job-due", expired_at=str(NOW).encode())
    new, new_objects = folder("ML_Team", "job-new", expired_at=str(NOW + 1).encode())
    legacy_new, legacy_objects = folder("team-b", "job-legacy", legacy_expired_at=FUTURE)
    await put_objects(s3, bucket, {**old_objects, **due_objects, **new_objects, **legacy_objects})
    before = await snapshot(s3, bucket)

    result = await sweep(s3, bucket, clock)

    after = await snapshot(s3, bucket)
    assert after == {k: v for k, v in before.items() if not k.startswith((old, due))}
    assert under(after, new) == under(before, new) and under(after, legacy_new)
    gone = {**old_objects, **due_objects}
    assert (result.outcome, result.folders_scanned, result.folders_expired) == (
        RunOutcome.COMPLETED,
        4,
        2,
    )
    assert (result.folders_deleted, result.folders_unexpired, result.folders_failed) == (2, 2, 0)
    assert result.objects_deleted == len(gone)
    assert result.bytes_freed == sum(len(body) for body in gone.values())
    assert sorted(result.deleted) == sorted([old, due])
    assert result.errors == [] and result.folders_skipped == 0


async def test_keys_outside_job_folders_are_never_touched(
    sweep: Sweep, s3: S3Client, s3_settings: S3Settings, clock: FixedClock
) -> None:
    bucket = s3_settings.phfs_bucket
    expiry = ".primehub/metadata/expiredAt"
    strays = {
        "other/prefix/file": b"x",
        "groupsX/g/jobArtifacts/job-1/" + expiry: PAST,
        "Groups/g/jobArtifacts/job-1/" + expiry: PAST,
        "groups/g/jobArtifactsOld/job-1/a.txt": b"x",
        "groups/g/jobArtifactsOld/job-1/" + expiry: PAST,
        "groups/g/jobArtifacts-backup/job-1/" + expiry: PAST,
        "groups/g/datasets/job-1/" + expiry: PAST,
        "groups/g/jobArtifacts/loose-file": b"x",
        "groups/g/file-in-group": b"x",
        "groups/other/notebooks/x.ipynb": b"{}",
        "groups/g/jobArtifacts/job-1-kept/a.txt": b"x",
        "groups/g/jobArtifacts/ job-2/" + expiry: PAST,
        "groups/ spaced/jobArtifacts/job-3/" + expiry: PAST,
    }
    doomed, doomed_objects = folder("g", "job-1", expired_at=PAST)
    await put_objects(s3, bucket, {**strays, **doomed_objects})
    before = await snapshot(s3, bucket)

    result = await sweep(s3, bucket, clock)

    assert await snapshot(s3, bucket) == {k: v for k, v in before.items() if k in strays}
    assert result.deleted == [doomed]
    skipped = {(s.prefix, s.reason) for s in result.skipped}
    assert skipped == {
        ("groups/g/jobArtifacts/job-1-kept/", SkipReason.MISSING_EXPIRED_AT),
        ("groups/g/jobArtifacts/ job-2/", SkipReason.UNSAFE_NAME),
        ("groups/ spaced/", SkipReason.UNSAFE_NAME),
    }


async def test_an_empty_job_name_is_refused_where_a_server_keeps_one(
    sweep: Sweep, aws_keys_s3_settings: S3Settings, clock: FixedClock
) -> None:
    # ``jobArtifacts//`` exists on AWS S3; SeaweedFS folds ``//`` into ``/``.
    bucket = aws_keys_s3_settings.phfs_bucket
    stray = "groups/g/jobArtifacts//.primehub/metadata/expiredAt"
    async with open_s3(aws_keys_s3_settings) as s3:
        await s3.put_object(Bucket=bucket, Key=stray, Body=PAST)

        result = await sweep(s3, bucket, clock)

        assert set(await snapshot(s3, bucket)) == {stray}
    assert [(s.prefix, s.reason) for s in result.skipped] == [
        ("groups/g/jobArtifacts//", SkipReason.UNSAFE_NAME)
    ]


async def test_artifacts_go_first_then_metadata_and_the_expiry_last(
    sweep: Sweep, s3: S3Client, s3_settings: S3Settings, clock: FixedClock
) -> None:
    bucket = s3_settings.phfs_bucket
    files = {f"file-{i}": b"x" for i in range(7)} | {".metadata/monitoring": b"{}"}
    first, first_objects = folder("g", "job-1", files, expired_at=PAST, legacy_expired_at=PAST)
    legacy, legacy_objects = folder("g", "job-2", files, legacy_expired_at=PAST)
    await put_objects(s3, bucket, {**first_objects, **legacy_objects})
    spy = DeleteSpy(s3)

    result = await sweep(spy, bucket, clock, batch_size=3)  # type: ignore[arg-type]

    assert result.folders_deleted == 2
    assert all(len(keys) <= 3 for keys in spy.requests)
    for prefix, objects, expiry in (
        (first, first_objects, expired_at_key(first)),
        (legacy, legacy_objects, legacy_expired_at_key(legacy)),
    ):
        artifacts = [k for k in objects if "/.primehub/" not in k and "/.metadata/" not in k]
        metadata = [k for k in objects if k not in artifacts and k != expiry]
        assert {manifest_key(prefix), f"{prefix}.metadata/monitoring"} <= set(metadata)
        last_artifact = max(spy.position(k) for k in artifacts)
        assert all(spy.position(k) > last_artifact for k in metadata)
        assert all(spy.position(expiry) > spy.position(k) for k in objects if k != expiry)
    assert await snapshot(s3, bucket) == {}


async def test_a_folder_larger_than_a_batch_goes_in_requests_of_at_most_1000_keys(
    sweep: Sweep, s3: S3Client, s3_settings: S3Settings, s3_server: S3Server, clock: FixedClock
) -> None:
    bucket = s3_settings.phfs_bucket
    _, big_objects = folder(
        "g", "job-big", {f"part-{i:05}": b"x" for i in range(2001)}, expired_at=PAST
    )
    kept, kept_objects = folder("g", "job-kept", expired_at=FUTURE)
    s3_server.seed(bucket, {**big_objects, **kept_objects})
    before = await snapshot(s3, bucket, kept)
    spy = DeleteSpy(s3)

    result = await sweep(spy, bucket, clock)

    sent = [key for keys in spy.requests for key in keys]
    assert max(len(keys) for keys in spy.requests) == 1000
    # Only objects: SeaweedFS removes the emptied directories itself.
    assert sorted(sent) == sorted(big_objects)
    assert result.objects_deleted == len(big_objects) == 2003
    assert await snapshot(s3, bucket) == before


@pytest.mark.parametrize(
    ("ours", "legacy", "expected"),
    [
        pytest.param(None, None, SkipReason.MISSING_EXPIRED_AT, id="missing"),
        pytest.param(b"", None, SkipReason.INVALID_EXPIRED_AT, id="empty"),
        pytest.param(b" \n", None, SkipReason.INVALID_EXPIRED_AT, id="blank"),
        pytest.param(b"tomorrow", None, SkipReason.INVALID_EXPIRED_AT, id="garbage"),
        pytest.param(b"-5", None, SkipReason.INVALID_EXPIRED_AT, id="negative"),
        pytest.param(b"1700000000.5", None, SkipReason.INVALID_EXPIRED_AT, id="fraction"),
        pytest.param(b"2020-01-01T00:00:00Z", None, SkipReason.INVALID_EXPIRED_AT, id="a-date"),
        pytest.param(b"1" * 65, None, SkipReason.INVALID_EXPIRED_AT, id="too-long"),
        pytest.param(b"\xff\xfe", None, SkipReason.INVALID_EXPIRED_AT, id="not-text"),
        pytest.param(b"9" * 20, None, "kept", id="far-future"),
        pytest.param(FUTURE, PAST, "kept", id="ours-wins-over-legacy"),
        pytest.param(b"soon", PAST, SkipReason.INVALID_EXPIRED_AT, id="ours-garbage-legacy-past"),
        pytest.param(PAST + b"\n", None, "deleted", id="past-with-newline"),
        pytest.param(None, PAST, "deleted", id="legacy-past"),
        pytest.param(None, b"x", SkipReason.INVALID_EXPIRED_AT, id="legacy-garbage"),
    ],
)
async def test_each_kind_of_expired_at_follows_the_rule(
    sweep: Sweep,
    s3: S3Client,
    s3_settings: S3Settings,
    clock: FixedClock,
    ours: bytes | None,
    legacy: bytes | None,
    expected: SkipReason | str,
) -> None:
    bucket = s3_settings.phfs_bucket
    prefix, objects = folder("g", "job-1", expired_at=ours, legacy_expired_at=legacy)
    await put_objects(s3, bucket, objects)
    before = await snapshot(s3, bucket)

    result = await sweep(s3, bucket, clock)

    after = await snapshot(s3, bucket)
    if expected == "deleted":
        assert (after, result.deleted) == ({}, [prefix])
    elif expected == "kept":
        assert (after, result.folders_unexpired, result.folders_skipped) == (before, 1, 0)
    else:
        assert after == before
        assert result.folders_deleted == 0 and result.folders_skipped == 1
        assert result.skipped_by_reason == {expected: 1}
        assert [(s.prefix, s.reason) for s in result.skipped] == [(prefix, expected)]


async def test_folders_without_an_expiry_go_only_when_the_operator_opts_in_and_they_are_old(
    sweep: Sweep, s3: S3Client, s3_settings: S3Settings
) -> None:
    bucket = s3_settings.phfs_bucket
    missing, missing_objects = folder("g", "job-missing")
    garbage, garbage_objects = folder("g", "job-garbage", expired_at=b"garbage")
    await put_objects(s3, bucket, {**missing_objects, **garbage_objects})
    before = await snapshot(s3, bucket)
    written = time.time()

    never = await sweep(s3, bucket, FixedClock(written + 10 * 365 * 86_400))
    too_young = await sweep(s3, bucket, FixedClock(written + 1800), orphan_retention_seconds=3600)
    assert await snapshot(s3, bucket) == before
    assert never.folders_skipped == too_young.folders_skipped == 2
    assert never.folders_orphaned == too_young.folders_orphaned == 0

    old_enough = await sweep(s3, bucket, FixedClock(written + 7200), orphan_retention_seconds=3600)
    assert await snapshot(s3, bucket) == {}
    assert (old_enough.folders_orphaned, old_enough.folders_deleted) == (2, 2)
    assert sorted(old_enough.deleted) == sorted([missing, garbage])


async def test_a_folder_s3_will_not_delete_is_counted_and_finished_by_the_next_run(
    sweep: Sweep, s3: S3Client, s3_settings: S3Settings, clock: FixedClock
) -> None:
    bucket = s3_settings.phfs_bucket
    stuck, stuck_objects = folder("g", "job-stuck", {"a": b"1", "b": b"2"}, expired_at=PAST)
    others = [folder("g", f"job-{i}", expired_at=PAST) for i in range(3)]
    await put_objects(
        s3, bucket, {**stuck_objects, **{k: v for _, objs in others for k, v in objs.items()}}
    )
    spy = DeleteSpy(s3, refuse=lambda key: key == f"{stuck}a")

    first = await sweep(spy, bucket, clock)

    assert first.outcome is RunOutcome.COMPLETED
    assert (first.folders_deleted, first.folders_failed) == (3, 1)
    assert [e.prefix for e in first.errors] == [stuck]
    assert "AccessDenied" in first.errors[0].message
    left = set(await snapshot(s3, bucket))
    # What S3 refused stays, and so does the metadata that marks the folder as expired.
    assert left == {f"{stuck}a", manifest_key(stuck), expired_at_key(stuck)}

    second = await sweep(s3, bucket, clock)
    assert (second.folders_deleted, second.folders_failed, second.deleted) == (1, 0, [stuck])
    assert await snapshot(s3, bucket) == {}


async def test_a_delete_request_that_fails_outright_leaves_its_folders_for_the_next_run(
    sweep: Sweep, s3: S3Client, s3_settings: S3Settings, clock: FixedClock
) -> None:
    bucket = s3_settings.phfs_bucket
    folders = [folder("g", f"job-{i}", expired_at=PAST) for i in range(4)]
    await put_objects(s3, bucket, {k: v for _, objs in folders for k, v in objs.items()})
    spy = DeleteSpy(s3)

    async def unreachable(**kwargs: object) -> object:
        raise EndpointConnectionError(endpoint_url="http://s3.invalid")

    spy.delete_objects = unreachable  # type: ignore[method-assign]

    first = await sweep(spy, bucket, clock)

    assert first.outcome is RunOutcome.COMPLETED
    assert (first.folders_deleted, first.folders_failed, first.objects_deleted) == (0, 4, 0)
    assert "EndpointConnectionError" in first.errors[0].message
    assert len(await snapshot(s3, bucket)) == sum(len(objs) for _, objs in folders)

    second = await sweep(s3, bucket, clock)
    assert second.folders_deleted == 4
    assert await snapshot(s3, bucket) == {}


async def test_a_dry_run_reports_what_would_go_and_deletes_nothing(
    sweep: Sweep, s3: S3Client, s3_settings: S3Settings, clock: FixedClock
) -> None:
    bucket = s3_settings.phfs_bucket
    doomed, doomed_objects = folder("g", "job-old", {"f": b"12345"}, expired_at=PAST)
    _, kept_objects = folder("g", "job-new", expired_at=FUTURE)
    _, orphan_objects = folder("g", "job-orphan")
    await put_objects(s3, bucket, {**doomed_objects, **kept_objects, **orphan_objects})
    before = await snapshot(s3, bucket)
    spy = DeleteSpy(s3)

    result = await sweep(spy, bucket, clock, dry_run=True)

    assert spy.requests == []
    assert await snapshot(s3, bucket) == before
    assert result.dry_run and result.deleted == [doomed]
    assert (result.folders_deleted, result.objects_deleted) == (1, len(doomed_objects))
    assert result.bytes_freed == sum(len(body) for body in doomed_objects.values())
    assert result.skipped_by_reason == {SkipReason.MISSING_EXPIRED_AT: 1}


async def test_the_result_keeps_a_hundred_names_but_counts_every_folder(
    sweep: Sweep, s3: S3Client, s3_settings: S3Settings, s3_server: S3Server, clock: FixedClock
) -> None:
    bucket = s3_settings.phfs_bucket
    objects: dict[str, bytes] = {}
    for i in range(NAMES_KEPT + 30):
        objects |= folder("g", f"job-{i:03}")[1]
    s3_server.seed(bucket, objects)

    result = await sweep(s3, bucket, clock)

    assert result.folders_skipped == NAMES_KEPT + 30
    assert len(result.skipped) == NAMES_KEPT


async def test_small_folders_share_delete_requests(
    sweep: Sweep, s3: S3Client, s3_settings: S3Settings, s3_server: S3Server, clock: FixedClock
) -> None:
    bucket = s3_settings.phfs_bucket
    objects: dict[str, bytes] = {}
    for i in range(60):
        objects |= folder("g", f"job-{i:03}", {"a": b"1", "b": b"2"}, expired_at=PAST)[1]
    s3_server.seed(bucket, objects)
    spy = DeleteSpy(s3)

    result = await sweep(spy, bucket, clock)

    assert result.folders_deleted == 60
    # Three ordered steps per folder, yet far fewer requests than folders.
    assert len(spy.requests) < 30
    assert await snapshot(s3, bucket) == {}


async def test_a_folder_with_much_metadata_still_loses_its_expiry_last(
    sweep: Sweep, s3: S3Client, s3_settings: S3Settings, s3_server: S3Server, clock: FixedClock
) -> None:
    bucket = s3_settings.phfs_bucket
    files = {"a.txt": b"1"} | {f".metadata/log-{i:03}": b"{}" for i in range(150)}
    prefix, objects = folder("g", "job-chatty", files, expired_at=PAST)
    s3_server.seed(bucket, objects)
    spy = DeleteSpy(s3)

    result = await sweep(spy, bucket, clock)

    assert result.objects_deleted == len(objects) == 153
    expiry = expired_at_key(prefix)
    assert all(spy.position(expiry) > spy.position(k) for k in objects if k != expiry)
    assert spy.position(f"{prefix}.metadata/log-000") > spy.position(f"{prefix}a.txt")
    assert await snapshot(s3, bucket) == {}


async def test_after_deleting_100_folders_the_next_run_reports_none_missing_an_expiry(
    sweep: Sweep, s3: S3Client, s3_settings: S3Settings, clock: FixedClock
) -> None:
    # SeaweedFS keeps a folder's directories after its last object went; a delimiter
    # listing then still shows the folder, which must not read as "missing expiredAt".
    bucket = s3_settings.phfs_bucket
    objects: dict[str, bytes] = {}
    for i in range(100):
        files = {"test.txt": b"hello\n", "sub/deeper/test.txt": b"hello\n"}
        objects |= folder(f"group-{i % 3}", f"job-{i:03}", files, expired_at=PAST)[1]
    _, kept_objects = folder("group-0", "job-kept", expired_at=FUTURE)
    await put_objects(s3, bucket, objects | kept_objects)
    # A folder some earlier run left empty, with a directory inside.
    await s3.put_object(Bucket=bucket, Key="groups/group-9/jobArtifacts/job-old/sub/x", Body=b"")
    await s3.delete_object(Bucket=bucket, Key="groups/group-9/jobArtifacts/job-old/sub/x")

    first = await sweep(s3, bucket, clock)
    second = await sweep(s3, bucket, clock)

    assert (first.folders_deleted, first.folders_failed) == (100, 0)
    assert first.skipped_by_reason == {} and second.skipped_by_reason == {}
    assert (second.folders_scanned, second.folders_unexpired, second.skipped) == (1, 1, [])
    assert set(await snapshot(s3, bucket)) == set(kept_objects)
    for group in ("group-1", "group-9"):  # no job folder left to list
        assert [p async for p in iter_prefixes(s3, bucket, f"groups/{group}/jobArtifacts/")] == []
