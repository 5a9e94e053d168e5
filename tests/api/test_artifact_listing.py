"""Listing a job's artifacts through GraphQL: names, sizes, metadata folders, manifest."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from support.api import SEED_QUERY, Api, add_job, api_settings, put_files, serve
from support.servers import S3Server

from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.layout import job_prefix
from artifacts_shared.manifest import Manifest, ManifestFile, ManifestLimits, SkipReason
from artifacts_shared.metadata_store import write_expired_at, write_manifest
from artifacts_shared.s3 import S3Client, open_s3
from artifacts_shared.settings import RedisSettings, S3Settings

JOB = "job-202009250153-34s0ti"
HELLO = b"hello\n"


async def journey(s3: S3Client, bucket: str, store: LocalJobStore) -> str:
    """The acceptance story's job: two files of ``hello\\n`` plus both metadata folders."""
    add_job(store, JOB)
    prefix = await put_files(
        s3,
        bucket,
        "team-a",
        JOB,
        {
            "test.txt": HELLO,
            "sub/test.txt": HELLO,
            ".metadata/expiredAt": b"1600000000",
            ".metadata/monitoring": b"{}",
        },
    )
    digest = hashlib.sha256(HELLO).hexdigest()
    await write_manifest(
        s3,
        bucket,
        job_prefix("team-a", JOB),
        Manifest(
            job=JOB,
            group="team-a",
            collected_at=datetime(2020, 9, 25, 2, 0, tzinfo=UTC),
            expired_at=1_601_600_000,
            file_count=2,
            total_size=12,
            limits=ManifestLimits(size_mb=100, files=1000),
            files=[
                ManifestFile(name="test.txt", size=6, sha256=digest),
                ManifestFile(name="sub/test.txt", size=6, sha256=digest),
            ],
        ),
    )
    await write_expired_at(s3, bucket, job_prefix("team-a", JOB), 1_601_600_000)
    return prefix


async def test_seed_query_lists_the_two_journey_artifacts_with_their_sizes(
    api: Api, s3: S3Client, store: LocalJobStore
) -> None:
    prefix = await journey(s3, api.settings.phfs_bucket, store)

    result = await api.graphql(SEED_QUERY, {"id": JOB})

    assert result.status == 200 and not result.errors, result.body
    artifact = result.data["phJob"]["artifact"]
    # No trailing slash: PrimeHub's console links f"{prefix}/{name}".
    assert artifact["prefix"] == prefix.rstrip("/") == f"groups/team-a/jobArtifacts/{JOB}"
    items = {item["name"]: item for item in artifact["items"]}
    assert sorted(items) == ["sub/test.txt", "test.txt"]
    assert all(item["size"] == 6 for item in items.values())
    # Whole sizes leave as JSON integers (6, not 6.0), as PrimeHub's Int did.
    assert all(type(item["size"]) is int for item in items.values())
    assert all(item["lastModified"].endswith("Z") for item in items.values())
    datetime.fromisoformat(items["test.txt"]["lastModified"].replace("Z", "+00:00"))


async def test_sha256_expiry_and_totals_come_from_the_manifest_and_expired_at(
    api: Api, s3: S3Client, store: LocalJobStore
) -> None:
    await journey(s3, api.settings.phfs_bucket, store)

    result = await api.graphql(
        """query ($id: ID!) { phJob(where: {id: $id}) { artifact {
             expiredAt fileCount totalSize skipped skipReason items { name sha256 } } } }""",
        {"id": JOB},
    )

    artifact = result.data["phJob"]["artifact"]
    assert artifact["expiredAt"] == "2020-10-02T00:53:20Z"
    assert (artifact["fileCount"], artifact["totalSize"]) == (2, 12)
    assert (artifact["skipped"], artifact["skipReason"]) == (False, None)
    assert {item["sha256"] for item in artifact["items"]} == {hashlib.sha256(HELLO).hexdigest()}


async def test_legacy_expired_at_is_shown_when_ours_is_absent(
    api: Api, s3: S3Client, store: LocalJobStore
) -> None:
    add_job(store, JOB)
    await put_files(
        s3, api.settings.phfs_bucket, "team-a", JOB, {"a": b"1", ".metadata/expiredAt": b"0\n"}
    )

    result = await api.graphql(
        """query ($id: ID!) {
             phJob(where: {id: $id}) { artifact { expiredAt items { name sha256 } } } }""",
        {"id": JOB},
    )

    artifact = result.data["phJob"]["artifact"]
    assert artifact == {
        "expiredAt": "1970-01-01T00:00:00Z",
        "items": [{"name": "a", "sha256": None}],
    }


async def test_metadata_folders_are_never_listed_but_look_alikes_deeper_down_are(
    api: Api, s3: S3Client, store: LocalJobStore
) -> None:
    add_job(store, JOB)
    await put_files(
        s3,
        api.settings.phfs_bucket,
        "team-a",
        JOB,
        {
            ".primehub/metadata/expiredAt": b"1",
            ".primehub/other": b"x",
            ".metadata/monitoring": b"x",
            ".hidden": b"h",
            "sub/.metadata/kept": b"k",
            ".metadatafile": b"m",
        },
    )

    result = await api.graphql(SEED_QUERY, {"id": JOB})

    names = [item["name"] for item in result.data["phJob"]["artifact"]["items"]]
    assert names == [".hidden", ".metadatafile", "sub/.metadata/kept"]


async def test_a_job_without_artifacts_has_an_empty_folder_never_null(
    api: Api, store: LocalJobStore
) -> None:
    add_job(store, JOB)

    result = await api.graphql(SEED_QUERY, {"id": JOB})

    # PrimeHub's clients read artifact.items without a null check.
    assert result.errors == []
    assert result.data == {
        "phJob": {
            "id": JOB,
            "artifact": {"prefix": f"groups/team-a/jobArtifacts/{JOB}", "items": []},
        }
    }


async def test_a_skipped_collection_shows_the_limit_that_stopped_it(
    api: Api, s3: S3Client, store: LocalJobStore
) -> None:
    add_job(store, JOB)
    message = "artifacts not collected: 2000 files exceed the limit of 1000 files"
    await write_manifest(
        s3,
        api.settings.phfs_bucket,
        job_prefix("team-a", JOB),
        Manifest(
            job=JOB,
            group="team-a",
            collected_at=datetime.now(UTC),
            file_count=0,
            total_size=0,
            limits=ManifestLimits(size_mb=100, files=1000),
            skipped=True,
            skip_reason=SkipReason(limit="files", found=2000, allowed=1000, message=message),
        ),
    )

    result = await api.graphql(
        """query ($id: ID!) {
             phJob(where: {id: $id}) { artifact { skipped skipReason items { name } } } }""",
        {"id": JOB},
    )

    assert result.data["phJob"]["artifact"] == {"skipped": True, "skipReason": message, "items": []}


async def test_keys_with_dot_dot_steps_are_not_listed(
    aws_keys_s3_settings: S3Settings, redis_settings: RedisSettings, store: LocalJobStore
) -> None:
    # Such keys exist only where a server stores them as given (AWS does, SeaweedFS not).
    bucket = aws_keys_s3_settings.phfs_bucket
    add_job(store, JOB)
    async with open_s3(aws_keys_s3_settings) as s3:
        prefix = await put_files(s3, bucket, "team-a", JOB, {"ok.txt": b"ok"})
        for key in (f"{prefix}../escape.txt", f"{prefix}a//b", f"{prefix}sub/./x"):
            await s3.put_object(Bucket=bucket, Key=key, Body=b"bad")
    settings = api_settings(aws_keys_s3_settings, redis_settings.redis_url, store.root)

    async with serve(settings) as api:
        result = await api.graphql(SEED_QUERY, {"id": JOB})

    assert [item["name"] for item in result.data["phJob"]["artifact"]["items"]] == ["ok.txt"]


async def test_one_item_by_name_and_names_with_dot_dot_are_refused(
    api: Api, s3: S3Client, store: LocalJobStore
) -> None:
    await journey(s3, api.settings.phfs_bucket, store)
    query = """query ($id: ID!, $name: String!) {
        phJob(where: {id: $id}) { artifact { item(name: $name) { name size } } } }"""

    found = await api.graphql(query, {"id": JOB, "name": "sub/test.txt"})
    missing = await api.graphql(query, {"id": JOB, "name": "nope.txt"})
    escaping = await api.graphql(query, {"id": JOB, "name": "../other-job/secret"})

    assert found.data["phJob"]["artifact"]["item"] == {"name": "sub/test.txt", "size": 6}
    assert missing.data["phJob"]["artifact"]["item"] is None and not missing.errors
    assert escaping.codes == ["BAD_USER_INPUT"]
    assert "'..'" in escaping.errors[0]["message"]


async def test_a_job_with_2500_files_lists_every_one(
    api: Api, s3_server: S3Server, store: LocalJobStore
) -> None:
    add_job(store, JOB)
    names = [f"dir{i % 7}/file-{i:05d}.txt" for i in range(2500)]
    prefix = job_prefix("team-a", JOB)
    s3_server.seed(
        api.settings.phfs_bucket,
        {f"{prefix}{name}": b"x" * (i % 5) for i, name in enumerate(names)},
    )

    result = await api.graphql(
        """query ($id: ID!) {
             phJob(where: {id: $id}) { artifact { fileCount totalSize items { name size } } } }""",
        {"id": JOB},
    )

    artifact = result.data["phJob"]["artifact"]
    assert [item["name"] for item in artifact["items"]] == sorted(names)
    assert artifact["fileCount"] == 2500
    assert artifact["totalSize"] == sum(i % 5 for i in range(2500))
    # Encoded 500 at a time: every slice still writes whole sizes as integers.
    assert all(type(item["size"]) is int for item in artifact["items"])
