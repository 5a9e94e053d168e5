"""A hostile job against the ``s3`` delivery: what it writes on its side changes nothing ours.

ARCHITECTURE section 4: the job's side hands over files and at most a "finished" signal;
retention, end time, limits, the file list and every metadata object are ours. Each test
plays a job that tries to take one of them, against the real S3 server, and reads the
outcome where users and the janitor read it: the GraphQL API and a cleanup run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from support.api import add_job, api_settings, serve, token
from support.folders import FixedClock
from support.jobs import GROUP, JOB, JobHome
from support.s3_spy import S3Spy

from artifacts_controller.delivery import Policy, deliver
from artifacts_controller.direct_put import open_direct_put
from artifacts_controller.transfer import MIB, Tuning
from artifacts_janitor.cleanup import CleanupOptions, run_cleanup
from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.layout import expired_at_key, job_prefix, manifest_key
from artifacts_shared.manifest import Manifest
from artifacts_shared.s3 import S3Client, iter_objects
from artifacts_shared.settings import RedisSettings, S3Settings

PREFIX = job_prefix(GROUP, JOB)
WEEK = 604_800
SEED = (
    "mkdir -p artifacts/sub; echo hello > artifacts/test.txt; echo hello > artifacts/sub/test.txt"
)
ARTIFACT = """query ($id: ID!) { phJob(where: {id: $id}) {
  artifact { expiredAt fileCount totalSize skipped items { name sha256 } } } }"""

FORGED_DONE = json.dumps(
    {
        "version": 1,
        "outcome": "collected",
        "job": JOB,
        "group": GROUP,
        "exitCode": 0,
        "endedAt": 1,
        "retentionSeconds": 0,  # keep forever: an admin-only right through the API
        "limits": {"sizeMb": 10_000_000, "files": 100_000_000},
        "fileCount": 2,
        "totalSize": 2,
        "files": [{"name": "../../other-job/x", "size": 1}, {"name": "missing", "size": 1}],
    }
)


@pytest.fixture
def staged(job: JobHome) -> JobHome:
    job.use_s3_delivery()
    return job


def _env(settings: S3Settings, job: JobHome, **extra: str) -> dict[str, str]:
    """Our policy for the job: a week, 1 MB, 5 files (what the forgeries try to change)."""
    policy = {
        "PHJOB_ARTIFACT_RETENTION_SECONDS": str(WEEK),
        "PHJOB_ARTIFACT_LIMIT_SIZE_MB": "1",
        "PHJOB_ARTIFACT_LIMIT_FILES": "5",
    }
    return job.uploader_env(settings, **(policy | extra))


def _uploader(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "artifacts_controller.uploader", "--wait-timeout", "0", *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=60,
    )


async def _stored(s3: S3Client, bucket: str) -> dict[str, bytes]:
    found = {}
    async for item in iter_objects(s3, bucket, ""):
        response = await s3.get_object(Bucket=bucket, Key=item.key)
        async with response["Body"] as body:
            found[item.key] = await body.read()
    return found


async def _as_users_see_it(
    settings: S3Settings, redis_settings: RedisSettings, tmp_path: Path
) -> dict[str, Any]:
    store = LocalJobStore(tmp_path / "jobs")
    add_job(store, JOB, group=GROUP)
    async with serve(api_settings(settings, redis_settings.redis_url, store.root)) as api:
        result = await api.graphql(ARTIFACT, {"id": JOB}, bearer=token(groups=[GROUP]))
    assert result.errors == [], result.errors
    artifact: dict[str, Any] = result.data["phJob"]["artifact"]
    return artifact


async def test_a_forged_done_marker_changes_nothing_the_api_or_the_janitor_sees(
    staged: JobHome,
    s3: S3Client,
    s3_settings: S3Settings,
    redis_settings: RedisSettings,
    redis: Redis,
    tmp_path: Path,
) -> None:
    # The job writes the marker it is told about with the retention, limits and file list
    # it would like, and puts folders where the script writes its own marker first.
    staging = os.environ.get("PHJOB_ARTIFACT_STAGING", str(staged.staging))
    forge = (
        f"printf '%s' '{FORGED_DONE}' > \"$PHJOB_ARTIFACT_STAGING/done\"; "
        'mkdir -p "$PHJOB_ARTIFACT_STAGING/done.tmp" "$PHJOB_ARTIFACT_STAGING/.done.tmp"'
    )
    run = staged.run(f"{SEED}; {forge}; exit 1")
    assert run.returncode == 1, run.stderr
    assert staging

    result = _uploader(_env(s3_settings, staged))
    finished = time.time()

    assert result.returncode == 0, result.stderr
    bucket = s3_settings.phfs_bucket
    stored = await _stored(s3, bucket)
    assert set(stored) == {
        f"{PREFIX}test.txt",
        f"{PREFIX}sub/test.txt",
        manifest_key(PREFIX),
        expired_at_key(PREFIX),
    }
    expired_at = int(stored[expired_at_key(PREFIX)])
    assert run.ended_at - 1 <= expired_at - WEEK <= finished  # our retention, our clock
    manifest = Manifest.from_json(stored[manifest_key(PREFIX)])
    assert (manifest.limits.size_mb, manifest.limits.files) == (1, 5)
    # The folders in the way did not block the script's own marker: it replaced the forgery.
    assert manifest.exit_code == 1
    assert (staged.staging / "done").read_text() == "1\n"

    artifact = await _as_users_see_it(s3_settings, redis_settings, tmp_path)
    assert artifact["expiredAt"] == datetime.fromtimestamp(expired_at, UTC).isoformat().replace(
        "+00:00", "Z"
    )
    assert sorted(item["name"] for item in artifact["items"]) == ["sub/test.txt", "test.txt"]

    # The janitor applies that same expiry: kept a second before it, deleted a second after.
    options = CleanupOptions()
    before = await run_cleanup(
        s3=s3,
        bucket=bucket,
        redis=redis,
        clock=FixedClock(expired_at - 1),
        run_id="a",
        options=options,
    )
    assert (before.folders_deleted, before.folders_unexpired) == (0, 1)
    after = await run_cleanup(
        s3=s3,
        bucket=bucket,
        redis=redis,
        clock=FixedClock(expired_at + 1),
        run_id="b",
        options=options,
    )
    assert after.folders_deleted == 1
    assert await _stored(s3, bucket) == {}


async def test_metadata_planted_in_the_staging_folder_is_never_written(
    staged: JobHome,
    s3: S3Client,
    s3_settings: S3Settings,
    redis_settings: RedisSettings,
    redis: Redis,
    tmp_path: Path,
) -> None:
    staged.run(SEED)
    # What a process the command left running can still write after the script's copy.
    planted = staged.staging / "files"
    for path, body in {
        ".primehub/metadata/expiredAt": b"1",
        ".primehub/metadata/manifest.json": b'{"version": 1}',
        ".metadata/expiredAt": b"1",
    }.items():
        (planted / path).parent.mkdir(parents=True, exist_ok=True)
        (planted / path).write_bytes(body)

    result = _uploader(_env(s3_settings, staged, PHJOB_ARTIFACT_RETENTION_SECONDS="0"))

    assert result.returncode == 0, result.stderr
    assert "uploader: skipped .primehub: the name is reserved for the job's metadata" in (
        result.stderr
    )
    stored = await _stored(s3, s3_settings.phfs_bucket)
    assert set(stored) == {f"{PREFIX}test.txt", f"{PREFIX}sub/test.txt", manifest_key(PREFIX)}
    assert Manifest.from_json(stored[manifest_key(PREFIX)]).file_count == 2
    artifact = await _as_users_see_it(s3_settings, redis_settings, tmp_path)
    assert artifact["expiredAt"] is None  # kept, as our retention of 0 says; not "1970"
    outcome = await run_cleanup(
        s3=s3,
        bucket=s3_settings.phfs_bucket,
        redis=redis,
        clock=FixedClock(time.time()),
        run_id="c",
        options=CleanupOptions(),
    )
    assert outcome.folders_deleted == 0


async def test_links_planted_in_the_staging_folder_do_not_deliver_our_secrets(
    staged: JobHome, s3: S3Client, s3_settings: S3Settings, tmp_path: Path
) -> None:
    secret_file = tmp_path / "serviceaccount-token"  # what our container can read, the job not
    secret_file.write_text("our-token")
    staged.run(SEED)
    files = staged.staging / "files"
    (files / "environ").symlink_to("/proc/self/environ")  # the uploader's S3 keys
    (files / "token").symlink_to(secret_file)
    (files / "sub" / "up").symlink_to("../..")

    result = _uploader(_env(s3_settings, staged))

    assert result.returncode == 0, result.stderr
    stored = await _stored(s3, s3_settings.phfs_bucket)
    assert set(stored) - {manifest_key(PREFIX), expired_at_key(PREFIX)} == {
        f"{PREFIX}test.txt",
        f"{PREFIX}sub/test.txt",
    }
    secret = s3_settings.s3_secret_access_key
    assert secret is not None
    for body in stored.values():
        assert secret.get_secret_value().encode() not in body
        assert b"our-token" not in body
    for name in ("environ", "token", "sub/up"):
        assert f"uploader: skipped {name!r}: a link" in result.stderr


async def test_a_staging_files_folder_swapped_for_a_link_delivers_nothing(
    staged: JobHome, s3: S3Client, s3_settings: S3Settings, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "ours"
    elsewhere.mkdir()
    (elsewhere / "secret").write_text("not the job's")
    staged.run(SEED)
    os.rename(staged.staging / "files", tmp_path / "moved")
    (staged.staging / "files").symlink_to(elsewhere)

    result = _uploader(_env(s3_settings, staged))

    assert result.returncode == 1
    assert "uploader: failed, no expiredAt written: " in result.stderr
    assert "not a folder" in result.stderr
    assert await _stored(s3, s3_settings.phfs_bucket) == {}


def test_a_marker_the_job_writes_while_running_starts_no_native_sidecar(
    staged: JobHome, s3_settings: S3Settings
) -> None:
    uploader = subprocess.Popen(
        [sys.executable, "-m", "artifacts_controller.uploader", "--when-stopped"],
        env=_env(s3_settings, staged),
        stderr=subprocess.PIPE,
        text=True,
    )
    assert uploader.stderr is not None
    assert "waiting for the job container to end" in uploader.stderr.readline()
    process = staged.start(
        f'{SEED}; echo 0 > "$PHJOB_ARTIFACT_STAGING/done"; sleep 1; echo late > artifacts/late.txt'
    )
    time.sleep(0.5)  # the forged marker stands; the job still runs
    assert uploader.poll() is None
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr

    uploader.send_signal(signal.SIGTERM)  # what the kubelet does once the job container ended
    _, stderr = uploader.communicate(timeout=60)

    assert uploader.returncode == 0, stderr
    assert "uploader: 3 files, " in stderr  # the file written after the forged marker too


@pytest.mark.parametrize("direct", [False, True], ids=["client", "direct-put"])
@pytest.mark.parametrize(
    ("listed", "grown", "limit_mb", "tuning"),
    [
        (512 * 1024, 1 * MIB, 1, Tuning()),  # one PutObject
        (6 * MIB, 6 * MIB, 8, Tuning(concurrency=2, part_size=5 * MIB)),  # in parts
    ],
    ids=["single-request", "multipart"],
)
async def test_a_file_grown_during_the_upload_cannot_take_the_delivery_past_the_limit(
    staged: JobHome,
    s3: S3Client,
    s3_settings: S3Settings,
    listed: int,
    grown: int,
    limit_mb: int,
    tuning: Tuning,
    direct: bool,
) -> None:
    (staged.artifacts).mkdir()
    (staged.artifacts / "log.bin").write_bytes(os.urandom(listed))
    (staged.artifacts / "small.txt").write_text("small")
    staged.run("true")
    staged_log = staged.staging / "files" / "log.bin"

    def grow(operation: str, _kwargs: dict[str, Any]) -> None:
        # The first request comes after the listing and before any read: a process the
        # command left running appends then, as it did in 3 of 3 tries against the old code.
        if operation == "delete_object" and staged_log.stat().st_size == listed:
            with staged_log.open("ab") as handle:
                handle.write(os.urandom(grown))

    policy = Policy(
        job=JOB, group=GROUP, enabled=True, retention_seconds=WEEK, limit_size_mb=limit_mb,
        limit_files=10,
    )  # fmt: skip
    async with open_direct_put(s3_settings, connections=2, attempts=1) as direct_put:
        delivery = await deliver(
            staged.staging,
            policy=policy,
            ended_at=int(time.time()),
            exit_code=0,
            s3=S3Spy(s3, before=grow),  # type: ignore[arg-type]
            bucket=s3_settings.phfs_bucket,
            tuning=tuning,
            direct=direct_put if direct else None,  # the uploader's own way, and the client's
        )

    bucket = s3_settings.phfs_bucket
    stored = await _stored(s3, bucket)
    assert set(stored) == {manifest_key(PREFIX), expired_at_key(PREFIX)}  # nothing else kept
    assert (await s3.list_multipart_uploads(Bucket=bucket)).get("Uploads", []) == []
    manifest = Manifest.from_json(stored[manifest_key(PREFIX)])
    assert manifest.skipped and manifest.files == [] and manifest.total_size == 0
    reason = manifest.skip_reason
    assert reason is not None
    assert reason.limit == "size" and reason.allowed == limit_mb * MIB
    assert reason.found > limit_mb * MIB
    assert "read while uploading, over the limit of" in reason.message
    assert delivery.outcome == "skipped"
