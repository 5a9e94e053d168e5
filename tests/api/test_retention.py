"""Retention a user controls: ``setPhJobArtifactExpiry``, ``deletePhJobArtifact``, ``retention``.

The api runs over HTTP on the session's SeaweedFS and Redis; the janitor that must honour
the changes is the real one (``Janitor.run``), with a clock the test sets past the old or
the new expiry.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from datetime import time as clock_time
from typing import Any

import pytest
from arq.connections import ArqRedis, create_pool
from redis.asyncio import Redis
from support.api import Api, add_job, token
from support.buckets import put_objects, snapshot
from support.folders import FixedClock

from artifacts_api.removal import delete_folder
from artifacts_janitor.metrics import JanitorMetrics
from artifacts_janitor.rescan import RESCAN_RECORD_KEY
from artifacts_janitor.settings import JanitorSettings
from artifacts_janitor.worker import Janitor, arq_redis_settings
from artifacts_shared.expiry_index import EXPIRY_INDEX_KEY
from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.layout import (
    JobPrefix,
    expired_at_key,
    job_prefix,
    legacy_expired_at_key,
    retention_record_key,
)
from artifacts_shared.metadata_store import ExpiryReading, ExpiryState
from artifacts_shared.phjob import PhJobPhase
from artifacts_shared.retention import (
    Change,
    RecordSigner,
    RetentionRecord,
    RetentionState,
    describe,
)
from artifacts_shared.s3 import S3Client
from artifacts_shared.settings import S3Settings

JOB = "job-202501010000-keep01"
ADMIN = token("root", groups=[], roles=["admin"])
OUTSIDER = token("mallory", groups=["team-b"])
DAY = 86_400

SET = """mutation ($id: ID!, $at: String) {
  setPhJobArtifactExpiry(where: {id: $id}, expiredAt: $at) {
    expiredAt retention { expiredAt state changedBy changedAt reason }
  }
}"""
DELETE = "mutation ($id: ID!) { deletePhJobArtifact(where: {id: $id}) }"
RETENTION = """query ($id: ID!) { phJob(where: {id: $id}) {
  artifact { expiredAt retention { expiredAt state changedBy changedAt reason } }
} }"""


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat().replace("+00:00", "Z")


async def collected(
    s3: S3Client,
    bucket: str,
    store: LocalJobStore,
    job: str = JOB,
    *,
    expires_in: float | None = 60,
    group: str = "team-a",
) -> JobPrefix:
    """A finished job and its folder as the collector left it, expiring ``expires_in`` from now."""
    add_job(store, job, group=group)
    prefix = job_prefix(group, job)
    objects = {
        f"{prefix}test.txt": b"hello\n",
        f"{prefix}sub/test.txt": b"hello\n",
        f"{prefix}.primehub/metadata/manifest.json": b'{"version": 1}',
    }
    if expires_in is not None:
        objects[expired_at_key(prefix)] = str(int(time.time() + expires_in)).encode()
    await put_objects(s3, bucket, objects)
    return prefix


async def keys(s3: S3Client, bucket: str, prefix: str) -> set[str]:
    return set(await snapshot(s3, bucket, prefix))


async def test_a_member_extends_and_the_janitor_keeps_the_folder_past_its_old_expiry(
    api: Api, s3: S3Client, store: LocalJobStore, janitor: Janitor, clock: FixedClock
) -> None:
    bucket = api.settings.phfs_bucket
    prefix = await collected(s3, bucket, store, expires_in=60)
    later = time.time() + 10 * DAY

    changed = await api.graphql(SET, {"id": JOB, "at": iso(later)})
    clock.value = time.time() + DAY  # a day past the old expiry, well before the new one
    result = await janitor.run("run-after-extend")

    assert changed.errors == []
    retention = changed.data["setPhJobArtifactExpiry"]["retention"]
    assert retention["state"] == "EXPIRES"
    assert retention["changedBy"] == "alice"
    assert retention["expiredAt"] == iso(int(later))
    assert retention["reason"].startswith("extended by alice on ")
    assert result.folders_deleted == 0
    assert f"{prefix}test.txt" in await keys(s3, bucket, prefix)
    stored = await s3.get_object(Bucket=bucket, Key=expired_at_key(prefix))
    assert await stored["Body"].read() == str(int(later)).encode()


async def test_a_member_shortens_and_the_next_run_deletes_the_folder_from_the_index(
    api: Api,
    s3: S3Client,
    store: LocalJobStore,
    janitor: Janitor,
    clock: FixedClock,
    redis: Redis,
) -> None:
    bucket = api.settings.phfs_bucket
    prefix = await collected(s3, bucket, store, expires_in=30 * DAY)
    soon = time.time() + 120
    # A rescan has just run: the daily run takes only what the index has due.
    await redis.set(RESCAN_RECORD_KEY, json.dumps({"finishedAt": soon, "scanned": 0, "found": 0}))

    changed = await api.graphql(SET, {"id": JOB, "at": iso(soon)})
    indexed = await redis.zscore(EXPIRY_INDEX_KEY, prefix)
    clock.value = soon + 1
    result = await janitor.run("run-after-shorten")

    assert indexed == int(soon)
    assert not result.rescanned and result.index_due == 1

    assert changed.errors == []
    assert changed.data["setPhJobArtifactExpiry"]["retention"]["reason"].startswith(
        "shortened by alice on "
    )
    assert result.folders_deleted == 1
    assert await keys(s3, bucket, prefix) == set()


async def test_an_admin_keeps_forever_and_a_member_is_refused(
    api: Api, s3: S3Client, store: LocalJobStore, janitor: Janitor, clock: FixedClock
) -> None:
    bucket = api.settings.phfs_bucket
    prefix = await collected(s3, bucket, store, expires_in=60)
    await put_objects(s3, bucket, {legacy_expired_at_key(prefix): b"1000"})

    refused = await api.graphql(SET, {"id": JOB, "at": None})
    kept = await api.graphql(SET, {"id": JOB, "at": None}, bearer=ADMIN)
    clock.value = time.time() + 365 * DAY
    result = await janitor.run("run-after-keep")
    shown = await api.graphql(RETENTION, {"id": JOB})

    assert refused.codes == ["FORBIDDEN"]
    assert "only admins may keep" in refused.errors[0]["message"]
    assert kept.errors == []
    retention = shown.data["phJob"]["artifact"]["retention"]
    assert retention["state"] == "KEPT"
    assert retention["changedBy"] == "root"
    assert retention["reason"] == f"kept by root on {datetime.now(UTC).day} {datetime.now(UTC):%b}"
    assert retention["expiredAt"] is None and shown.data["phJob"]["artifact"]["expiredAt"] is None
    # Both expiredAt objects went: PrimeHub's legacy one would otherwise still expire it.
    remaining = await keys(s3, bucket, prefix)
    assert expired_at_key(prefix) not in remaining
    assert legacy_expired_at_key(prefix) not in remaining
    assert f"{prefix}test.txt" in remaining
    assert result.folders_deleted == 0


async def test_members_may_extend_only_up_to_the_maximum_and_admins_beyond(
    api: Api, s3: S3Client, store: LocalJobStore
) -> None:
    bucket = api.settings.phfs_bucket
    await collected(s3, bucket, store)
    limit = api.settings.artifact_max_retention_seconds

    within = await api.graphql(SET, {"id": JOB, "at": iso(time.time() + limit - 60)})
    beyond = await api.graphql(SET, {"id": JOB, "at": iso(time.time() + limit + 3600)})
    admin = await api.graphql(SET, {"id": JOB, "at": iso(time.time() + 3 * limit)}, bearer=ADMIN)

    assert limit == 90 * DAY
    assert within.errors == []
    assert beyond.codes == ["FORBIDDEN"]
    assert "more than 90 days from now" in beyond.errors[0]["message"]
    assert admin.errors == []


async def test_a_member_of_another_group_is_refused_everything(
    api: Api, s3: S3Client, store: LocalJobStore
) -> None:
    bucket = api.settings.phfs_bucket
    prefix = await collected(s3, bucket, store)
    before = await snapshot(s3, bucket, prefix)

    results = [
        await api.graphql(SET, {"id": JOB, "at": iso(time.time() + DAY)}, bearer=OUTSIDER),
        await api.graphql(SET, {"id": JOB, "at": None}, bearer=OUTSIDER),
        await api.graphql(DELETE, {"id": JOB}, bearer=OUTSIDER),
        await api.graphql(RETENTION, {"id": JOB}, bearer=OUTSIDER),
    ]

    assert [result.codes for result in results] == [["FORBIDDEN"]] * 4
    assert await snapshot(s3, bucket, prefix) == before


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("2001-01-01T00:00:00Z", "is not in the future"),
        ("yesterday", "is not a time"),
        ("2030-01-01T00:00:00", "is not a time"),  # no zone: whose midnight?
        ("1" * 10_000, "is not a time"),
        ("9999-12-31T23:59:59+00:00\n", "is not a time"),
        ("+99999-01-01T00:00:00Z", "is not a time"),
    ],
)
async def test_a_bad_expiry_is_refused_with_one_message_and_changes_nothing(
    api: Api, s3: S3Client, store: LocalJobStore, value: str, says: str
) -> None:
    bucket = api.settings.phfs_bucket
    prefix = await collected(s3, bucket, store)
    before = await snapshot(s3, bucket, prefix)

    refused = await api.graphql(SET, {"id": JOB, "at": value}, bearer=ADMIN)

    assert refused.codes == ["BAD_USER_INPUT"]
    assert says in refused.errors[0]["message"]
    assert len(refused.errors[0]["message"]) < 300
    assert await snapshot(s3, bucket, prefix) == before


async def test_a_job_id_with_dot_dot_reaches_no_folder(api: Api, s3: S3Client) -> None:
    for job in ("../team-b/jobArtifacts/job-202501010000-other1", "job-..", ".."):
        changed = await api.graphql(SET, {"id": job, "at": None}, bearer=ADMIN)
        deleted = await api.graphql(DELETE, {"id": job}, bearer=ADMIN)

        assert changed.codes == ["BAD_USER_INPUT"] and deleted.codes == ["BAD_USER_INPUT"]
        assert "is not a job id" in changed.errors[0]["message"]


async def test_a_running_job_or_one_that_left_nothing_cannot_be_changed(
    api: Api, s3: S3Client, store: LocalJobStore
) -> None:
    add_job(store, "job-202501010000-runs01", phase=PhJobPhase.RUNNING)
    add_job(store, "job-202501010000-empty1")

    running = await api.graphql(
        SET, {"id": "job-202501010000-runs01", "at": iso(time.time() + DAY)}
    )
    empty = await api.graphql(SET, {"id": "job-202501010000-empty1", "at": iso(time.time() + DAY)})
    delete_running = await api.graphql(DELETE, {"id": "job-202501010000-runs01"})
    shown = await api.graphql(RETENTION, {"id": "job-202501010000-runs01"})

    assert running.codes == ["BAD_USER_INPUT"] and "has not ended" in running.errors[0]["message"]
    assert empty.codes == ["BAD_USER_INPUT"] and "no artifacts stored" in empty.errors[0]["message"]
    assert delete_running.codes == ["BAD_USER_INPUT"]
    assert shown.data["phJob"]["artifact"]["retention"] == {
        "expiredAt": None,
        "state": "UNKNOWN",
        "changedBy": None,
        "changedAt": None,
        "reason": "the job has not ended: its artifacts are kept until their expiry",
    }


async def test_a_member_deletes_by_hand_expired_at_last(
    api: Api, s3: S3Client, store: LocalJobStore, redis: Redis
) -> None:
    bucket = api.settings.phfs_bucket
    prefix = await collected(s3, bucket, store)

    await api.graphql(SET, {"id": JOB, "at": iso(time.time() + DAY)})
    deleted = await api.graphql(DELETE, {"id": JOB})
    again = await api.graphql(DELETE, {"id": JOB})
    listed = await api.graphql(
        "query ($id: ID!) { phJob(where: {id: $id}) { artifact { items { name } } } }",
        {"id": JOB},
    )

    assert deleted.data == {"deletePhJobArtifact": True}
    assert again.data == {"deletePhJobArtifact": False}
    assert await keys(s3, bucket, prefix) == set()
    assert await redis.zscore(EXPIRY_INDEX_KEY, prefix) is None
    assert listed.data["phJob"]["artifact"]["items"] == []


async def test_deletion_by_hand_asks_for_artifacts_then_metadata_then_expired_at(
    s3: S3Client, s3_settings: S3Settings
) -> None:
    """The janitor's order, seen in the DeleteObjects requests sent (botocore's event hook)."""
    bucket = s3_settings.phfs_bucket
    prefix = job_prefix("team-a", "job-202501010000-order1")
    await put_objects(
        s3,
        bucket,
        {
            f"{prefix}test.txt": b"hello\n",
            f"{prefix}sub/test.txt": b"hello\n",
            f"{prefix}.primehub/metadata/manifest.json": b"{}",
            expired_at_key(prefix): b"2000000000",
            legacy_expired_at_key(prefix): b"1000",
        },
    )
    requests: list[list[str]] = []

    def seen(params: dict[str, Any], **_: Any) -> None:
        requests.append([item["Key"] for item in params["Delete"]["Objects"]])

    s3.meta.events.register("provide-client-params.s3.DeleteObjects", seen)
    try:
        deleted = await delete_folder(s3, bucket, prefix)
    finally:
        s3.meta.events.unregister("provide-client-params.s3.DeleteObjects", seen)

    assert deleted == 5
    assert requests == [
        [f"{prefix}sub/test.txt", f"{prefix}test.txt"],
        [f"{prefix}.primehub/metadata/manifest.json"],
        sorted([legacy_expired_at_key(prefix), expired_at_key(prefix)]),
    ]
    assert await keys(s3, bucket, prefix) == set()


async def test_a_forged_record_planted_by_the_job_is_not_shown_as_ours(
    api: Api, s3: S3Client, store: LocalJobStore
) -> None:
    bucket = api.settings.phfs_bucket
    prefix = await collected(s3, bucket, store, expires_in=None)
    other = await collected(s3, bucket, store, "job-202501010000-other1", expires_in=None)
    forged = {
        "version": 1,
        "prefix": prefix,
        "expiredAt": None,
        "change": "keep",
        "changedBy": "root",
        "changedAt": int(time.time()),
        "signature": "0" * 64,
    }
    # A record the api really signed, but for another folder, copied here by the job.
    await api.graphql(SET, {"id": "job-202501010000-other1", "at": None}, bearer=ADMIN)
    copied = await s3.get_object(Bucket=bucket, Key=retention_record_key(other))

    shown = []
    for body in (json.dumps(forged).encode(), await copied["Body"].read(), b"\x00" * 100_000):
        await put_objects(s3, bucket, {retention_record_key(prefix): body})
        shown.append((await api.graphql(RETENTION, {"id": JOB})).data)

    for data in shown:
        assert data["phJob"]["artifact"]["retention"] == {
            "expiredAt": None,
            "state": "UNKNOWN",
            "changedBy": None,
            "changedAt": None,
            "reason": "legacy folder without an expiry: an admin decides",
        }


async def test_a_record_left_from_an_earlier_change_is_not_shown_once_expired_at_moved(
    api: Api, s3: S3Client, store: LocalJobStore
) -> None:
    bucket = api.settings.phfs_bucket
    prefix = await collected(s3, bucket, store)
    await api.graphql(SET, {"id": JOB, "at": iso(time.time() + 5 * DAY)})
    # The job's side (phfs mode) rewrites expiredAt; the record now speaks of another one.
    moved = int(time.time() + 2 * DAY)
    await put_objects(s3, bucket, {expired_at_key(prefix): str(moved).encode()})

    shown = await api.graphql(RETENTION, {"id": JOB})

    retention = shown.data["phJob"]["artifact"]["retention"]
    assert retention["state"] == "EXPIRES" and retention["changedBy"] is None
    assert retention["reason"].startswith("expires on ")
    assert retention["expiredAt"] == iso(moved)


# The sentences, one per state, from the shared function both the api and the janitor use.

NOW = datetime(2027, 1, 15, 8, 0, tzinfo=UTC).timestamp()
AT_3 = clock_time(3, 0)
SIGNER = RecordSigner.from_s3_secret("secret")
PREFIX = "groups/g/jobArtifacts/job-1/"


def record(expired_at: int | None, change: Change, by: str = "alice") -> RetentionRecord:
    changed_at = int(datetime(2026, 12, 3, 10, 0, tzinfo=UTC).timestamp())
    return RetentionRecord(PREFIX, expired_at, change, by, changed_at)


@pytest.mark.parametrize(
    ("reading", "rec", "state", "sentence"),
    [
        (
            ExpiryReading(ExpiryState.MISSING),
            record(None, Change.KEEP),
            RetentionState.KEPT,
            "kept by alice on 3 Dec 2026",
        ),
        (
            ExpiryReading(ExpiryState.MISSING),
            None,
            RetentionState.UNKNOWN,
            "legacy folder without an expiry: an admin decides",
        ),
        (
            ExpiryReading(ExpiryState.INVALID, detail="not decimal UNIX seconds: 'soon'"),
            None,
            RetentionState.UNKNOWN,
            "the expiry file is unreadable (not decimal UNIX seconds: 'soon'): kept until an "
            "admin decides",
        ),
        (
            ExpiryReading(ExpiryState.SET, int(NOW) - 3600),
            None,
            RetentionState.EXPIRED,
            "expired on 15 Jan at 07:00 UTC; the next cleanup runs at 03:00 UTC",
        ),
        (
            ExpiryReading(ExpiryState.SET, int(NOW) + 86_400),
            None,
            RetentionState.EXPIRES,
            "expires on 16 Jan at 08:00 UTC",
        ),
        (
            ExpiryReading(ExpiryState.SET, int(NOW) + 86_400),
            record(int(NOW) + 86_400, Change.EXTEND),
            RetentionState.EXPIRES,
            "extended by alice on 3 Dec 2026: expires on 16 Jan at 08:00 UTC",
        ),
        (
            ExpiryReading(ExpiryState.SET, int(NOW) + 86_400),
            record(int(NOW) + 99, Change.EXTEND),
            RetentionState.EXPIRES,
            "expires on 16 Jan at 08:00 UTC",
        ),
    ],
)
def test_each_state_has_its_sentence(
    reading: ExpiryReading, rec: RetentionRecord | None, state: RetentionState, sentence: str
) -> None:
    loaded = SIGNER.load(SIGNER.dump(rec), PREFIX) if rec else None
    described = describe(reading, loaded, now=NOW, daily_at=AT_3)

    assert (described.state, described.reason) == (state, sentence)


def test_a_job_created_with_retention_zero_is_kept_by_its_own_request() -> None:
    described = describe(
        ExpiryReading(ExpiryState.MISSING), None, now=NOW, daily_at=AT_3, asked_to_keep=True
    )

    assert described.state is RetentionState.KEPT
    assert described.reason == "kept until deleted by hand: the job asked for no expiry"


def test_a_record_is_refused_when_any_field_or_the_key_differs() -> None:
    raw = SIGNER.dump(record(None, Change.KEEP))
    tampered = raw.replace(b'"alice"', b'"root"')

    assert SIGNER.load(raw, PREFIX) == record(None, Change.KEEP)
    assert SIGNER.load(tampered, PREFIX) is None
    assert SIGNER.load(raw, "groups/g/jobArtifacts/job-2/") is None
    assert RecordSigner.from_s3_secret("other").load(raw, PREFIX) is None
    assert SIGNER.load(b"[]", PREFIX) is None
    assert SIGNER.load(b"{" * 5000, PREFIX) is None


async def test_the_run_result_gives_a_skipped_folder_the_sentence_the_api_gives(
    api: Api,
    s3: S3Client,
    store: LocalJobStore,
    janitor_settings: JanitorSettings,
    clock: FixedClock,
) -> None:
    """And the operator's opt-in to deleting folders without an expiry spares an admin's keep."""
    bucket = api.settings.phfs_bucket
    kept = await collected(s3, bucket, store)
    legacy = await collected(s3, bucket, store, "job-202501010000-legacy", expires_in=None)
    await api.graphql(SET, {"id": JOB, "at": None}, bearer=ADMIN)
    orphans = janitor_settings.model_copy(update={"janitor_orphan_retention_seconds": 1})
    clock.value = time.time() + 3600
    pool: ArqRedis = await create_pool(arq_redis_settings(orphans))
    try:
        janitor = Janitor(
            settings=orphans, s3=s3, redis=pool, clock=clock, metrics=JanitorMetrics()
        )
        result = await janitor.run("run-with-orphans")
    finally:
        await pool.aclose()
    shown = await api.graphql(RETENTION, {"id": JOB})

    sentences = {folder.prefix: folder.retention for folder in result.skipped}
    assert sentences == {kept: shown.data["phJob"]["artifact"]["retention"]["reason"]}
    assert sentences[kept].startswith("kept by root on ")
    assert f"{kept}test.txt" in await keys(s3, bucket, kept)
    assert await keys(s3, bucket, legacy) == set()  # no record of ours: an orphan, deleted
