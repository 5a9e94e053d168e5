"""The ``s3`` delivery mode: run-job.sh stages, the real uploader pushes to real S3.

The uploader runs as a child process (``python -m artifacts_controller.uploader``, as in
the pod and the local runtime) where its waiting, signals and exit codes matter, and
in-process (``deliver``) where a test needs to see the order of its requests. Retention
and limits are the uploader's own settings (``_env``), as the controller sets them on our
container; what the job's side may try against them is ``test_trust_boundary.py``.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import boto3
import pytest
from redis import Redis as SyncRedis
from support.jobs import GROUP, JOB, JobHome, tree
from support.s3_spy import S3Spy
from support.servers import free_port

from artifacts_controller.delivery import Policy, deliver
from artifacts_controller.settings import UploaderSettings
from artifacts_controller.staging import walk
from artifacts_controller.transfer import MIB, Tuning
from artifacts_controller.uploader import main
from artifacts_shared.expiry import parse_expired_at
from artifacts_shared.expiry_index import EXPIRY_INDEX_KEY
from artifacts_shared.layout import expired_at_key, job_log_key, job_prefix, manifest_key
from artifacts_shared.manifest import Manifest
from artifacts_shared.s3 import S3Client
from artifacts_shared.settings import RedisSettings, S3Settings

PREFIX = job_prefix(GROUP, JOB)
MANIFEST = manifest_key(PREFIX)
EXPIRED_AT = expired_at_key(PREFIX)
SEED_COMMAND = (
    'mkdir -p artifacts/sub; echo "hello" > artifacts/test.txt; '
    'echo "hello" > artifacts/sub/test.txt'
)
HELLO_SHA = hashlib.sha256(b"hello\n").hexdigest()
WEEK = 604_800
POLICY = Policy(
    job=JOB, group=GROUP, enabled=True, retention_seconds=WEEK, limit_size_mb=100, limit_files=1000
)


@pytest.fixture
def staged(job: JobHome) -> JobHome:
    job.use_s3_delivery()
    return job


def _client(settings: S3Settings) -> Any:
    secret = settings.s3_secret_access_key
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=secret.get_secret_value() if secret else None,
    )


def _objects(settings: S3Settings) -> dict[str, bytes]:
    client = _client(settings)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=settings.phfs_bucket)
    return {
        item["Key"]: client.get_object(Bucket=settings.phfs_bucket, Key=item["Key"])["Body"].read()
        for page in pages
        for item in page.get("Contents", ())
    }


def _keys(settings: S3Settings) -> set[str]:
    client = _client(settings)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=settings.phfs_bucket)
    return {item["Key"] for page in pages for item in page.get("Contents", ())}


def _env(settings: S3Settings, job: JobHome, **extra: str) -> dict[str, str]:
    return job.uploader_env(settings, **extra)


def _start_uploader(env: Mapping[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "artifacts_controller.uploader", *args],
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _upload_process(
    env: Mapping[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    process = _start_uploader(env, "--wait-timeout", "0", *args)
    stdout, stderr = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


class Upload(Protocol):
    def __call__(self, env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]: ...


@pytest.fixture
def upload(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Upload:
    """The uploader run in this process (``main``) with ``env`` as its environment: the
    same code as the child process, without a second interpreter's start-up time."""

    def run(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
        for field in UploaderSettings.model_fields:
            monkeypatch.delenv(field.upper(), raising=False)
            monkeypatch.delenv(f"{field.upper()}_FILE", raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        argv = ["--wait-timeout", "0", *args]
        code = main(argv)
        return subprocess.CompletedProcess(argv, code, "", capsys.readouterr().err)

    return run


def _wait_until(condition: Any, timeout: float = 10, step: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(step)


def test_seed_journey_in_s3_mode_uploads_the_two_files_then_the_metadata(
    staged: JobHome, s3_settings: S3Settings
) -> None:
    # Started first, like a sidecar: it must wait for the job to finish.
    uploader = _start_uploader(_env(s3_settings, staged))
    run = staged.run(SEED_COMMAND + "; exit 3")
    _, stderr = uploader.communicate(timeout=30)
    finished = time.time()

    assert run.returncode == 3
    assert uploader.returncode == 0, stderr
    objects = _objects(s3_settings)
    assert set(objects) == {f"{PREFIX}test.txt", f"{PREFIX}sub/test.txt", MANIFEST, EXPIRED_AT}
    assert objects[f"{PREFIX}test.txt"] == objects[f"{PREFIX}sub/test.txt"] == b"hello\n"
    manifest = Manifest.from_json(objects[MANIFEST])
    assert (manifest.job, manifest.group, manifest.exit_code) == (JOB, GROUP, 3)
    assert [(f.name, f.size, f.sha256, f.mode) for f in manifest.files] == [
        ("test.txt", 6, HELLO_SHA, "644"),
        ("sub/test.txt", 6, HELLO_SHA, "644"),
    ]
    # The end is the uploader's own clock: when it learnt that the job had ended.
    expired_at = parse_expired_at(objects[EXPIRED_AT])
    assert run.ended_at - 1 <= expired_at - WEEK <= finished
    assert manifest.expired_at == expired_at
    assert f"uploader: 2 files, 12 B uploaded to s3://{s3_settings.phfs_bucket}/{PREFIX}" in stderr


async def test_metadata_is_written_after_every_artifact_and_expiry_last(
    staged: JobHome, s3: S3Client, s3_settings: S3Settings
) -> None:
    (staged.artifacts / "many").mkdir(parents=True)
    for index in range(20):
        (staged.artifacts / "many" / f"{index}.txt").write_text(str(index))
    (staged.artifacts / "large.bin").write_bytes(os.urandom(6 * MIB))  # two parts
    staged.run("true")
    recording = S3Spy(s3)

    delivery = await deliver(
        staged.staging,
        policy=POLICY,
        ended_at=int(time.time()),
        exit_code=0,
        s3=recording,  # type: ignore[arg-type]
        bucket=s3_settings.phfs_bucket,
        tuning=Tuning(concurrency=4, part_size=5 * MIB),
    )

    writes = [
        call
        for call in recording.calls
        if call[0] in {"put_object", "complete_multipart_upload", "delete_object"}
    ]
    assert writes[0] == ("delete_object", EXPIRED_AT)
    assert writes[-2:] == [("put_object", MANIFEST), ("put_object", EXPIRED_AT)]
    artifacts = {key for _, key in writes[1:-2]}
    assert artifacts == {f"{PREFIX}many/{i}.txt" for i in range(20)} | {f"{PREFIX}large.bin"}
    assert ("complete_multipart_upload", f"{PREFIX}large.bin") in writes
    assert delivery.file_count == 21
    head = await s3.head_object(Bucket=s3_settings.phfs_bucket, Key=f"{PREFIX}large.bin")
    assert head["ETag"].strip('"').endswith("-2")  # it did go up in two parts


def test_a_skipped_collection_uploads_no_file_but_the_manifest_and_expiry(
    upload: Upload, staged: JobHome, s3_settings: S3Settings
) -> None:
    run = staged.run(SEED_COMMAND + "; exit 1")
    result = upload(_env(s3_settings, staged, PHJOB_ARTIFACT_LIMIT_FILES="1"))

    assert (run.returncode, result.returncode) == (1, 0)
    line = "uploader: skipped, 2 files exceed the limit of 1; nothing uploaded; manifest written"
    assert line in result.stderr
    objects = _objects(s3_settings)
    assert set(objects) == {MANIFEST, EXPIRED_AT}
    manifest = Manifest.from_json(objects[MANIFEST])
    assert manifest.skipped and manifest.files == [] and manifest.exit_code == 1
    assert manifest.skip_reason is not None
    assert (manifest.skip_reason.found, manifest.skip_reason.allowed) == (2, 1)
    assert manifest.skip_reason.message == (
        "artifacts: skipped, 2 files exceed the limit of 1; nothing uploaded"
    )


def test_more_bytes_than_the_limit_upload_nothing_and_say_which_limit(
    upload: Upload, staged: JobHome, s3_settings: S3Settings
) -> None:
    (staged.artifacts).mkdir()
    (staged.artifacts / "big.bin").write_bytes(b"\0" * MIB)
    (staged.artifacts / "small.txt").write_bytes(b"one more byte")
    staged.run("true")

    result = upload(_env(s3_settings, staged, PHJOB_ARTIFACT_LIMIT_SIZE_MB="1"))

    total = MIB + 13
    assert result.returncode == 0, result.stderr
    assert f"uploader: skipped, {total} B (1.1 MB) exceed the limit of 1 MB" in result.stderr
    assert _keys(s3_settings) == {MANIFEST, EXPIRED_AT}
    reason = Manifest.from_json(_objects(s3_settings)[MANIFEST]).skip_reason
    assert reason is not None
    assert (reason.limit, reason.found, reason.allowed) == ("size", total, MIB)


@pytest.mark.parametrize(
    ("command", "env", "script_says", "uploader_says"),
    [
        ("true", {}, "none: there is no ./artifacts folder", "none: the staging folder holds no"),
        ("mkdir artifacts", {}, "none: ./artifacts holds no files", "none: the staging folder"),
        (
            SEED_COMMAND,
            {"PHJOB_ARTIFACT_ENABLED": "false"},
            "disabled (PHJOB_ARTIFACT_ENABLED=false); nothing collected",
            "disabled (PHJOB_ARTIFACT_ENABLED=false); nothing delivered",
        ),
    ],
    ids=["no-folder", "empty-folder", "disabled"],
)
def test_nothing_collected_uploads_nothing_and_exits_0(
    upload: Upload,
    staged: JobHome,
    s3_settings: S3Settings,
    command: str,
    env: dict[str, str],
    script_says: str,
    uploader_says: str,
) -> None:
    run = staged.run(command, env=env)
    result = upload(_env(s3_settings, staged, **env))

    assert result.returncode == 0, result.stderr
    assert _keys(s3_settings) == set()
    assert f"artifacts: {script_says}" in run.decisions
    assert f"uploader: nothing to upload ({uploader_says}" in result.stderr
    assert (staged.staging / "done").read_text() == "0\n"  # the script's signal, every time


def test_with_a_redis_url_the_expiry_written_is_put_into_the_expiry_index(
    upload: Upload, staged: JobHome, s3_settings: S3Settings, redis_settings: RedisSettings
) -> None:
    staged.run(SEED_COMMAND)
    result = upload(_env(s3_settings, staged, REDIS_URL=redis_settings.redis_url))

    assert result.returncode == 0, result.stderr
    written = parse_expired_at(_objects(s3_settings)[EXPIRED_AT])
    with SyncRedis.from_url(redis_settings.redis_url) as redis:
        assert redis.zrange(EXPIRY_INDEX_KEY, 0, -1, withscores=True) == [
            (PREFIX.encode(), written)
        ]


def test_an_unreachable_redis_costs_the_index_entry_and_not_the_delivery(
    upload: Upload, staged: JobHome, s3_settings: S3Settings
) -> None:
    staged.run(SEED_COMMAND)
    gone = f"redis://127.0.0.1:{free_port()}/0"
    result = upload(_env(s3_settings, staged, REDIS_URL=gone))

    assert result.returncode == 0, result.stderr
    assert EXPIRED_AT in _keys(s3_settings)
    assert f"uploader: could not put {PREFIX} into the expiry index" in result.stderr


def test_retention_zero_in_s3_mode_writes_no_expiry(
    upload: Upload, staged: JobHome, s3_settings: S3Settings
) -> None:
    staged.run(SEED_COMMAND)
    result = upload(_env(s3_settings, staged, PHJOB_ARTIFACT_RETENTION_SECONDS="0"))

    assert result.returncode == 0
    assert _keys(s3_settings) == {f"{PREFIX}test.txt", f"{PREFIX}sub/test.txt", MANIFEST}
    assert Manifest.from_json(_objects(s3_settings)[MANIFEST]).expired_at is None
    assert "kept until deleted by hand" in result.stderr


# No backslash: SeaweedFS stores ``a\\b`` as ``a/b`` (AWS S3 and MinIO keep it), which the
# README's server notes say; the phfs tests cover backslashes.
S3_ODD_NAMES = [
    "with space.txt", "-dash", "ünïcødé 日本語 🎉", 'q"d', "*", "tab\t",
    "new\nline ünï.txt", "100% done", "a%2Fb", "a:b?c#d",
]  # fmt: skip


def test_odd_names_become_keys_intact(
    upload: Upload, staged: JobHome, s3_settings: S3Settings
) -> None:
    for index, name in enumerate(S3_ODD_NAMES):
        (staged.artifacts / "odd").mkdir(parents=True, exist_ok=True)
        (staged.artifacts / "odd" / name).write_text(str(index))
    (staged.artifacts / ".hidden").write_text("h")
    staged.run("true")

    result = upload(_env(s3_settings, staged))

    assert result.returncode == 0, result.stderr
    objects = _objects(s3_settings)
    for index, name in enumerate(S3_ODD_NAMES):
        assert objects[f"{PREFIX}odd/{name}"] == str(index).encode()
    assert objects[f"{PREFIX}.hidden"] == b"h"
    names = {entry.name for entry in Manifest.from_json(objects[MANIFEST]).files}
    assert names == {f"odd/{name}" for name in S3_ODD_NAMES} | {".hidden"}


def test_staging_keeps_names_with_newlines_for_the_uploader(staged: JobHome) -> None:
    (staged.artifacts / "a\nb").mkdir(parents=True)
    (staged.artifacts / "a\nb" / "c\nd").write_text("x")

    staged.run("true")

    assert [entry.name for entry in walk(staged.staging).files] == ["a\nb/c\nd"]
    assert tree(staged.staging / "files") == {"a\nb/c\nd": b"x"}
    assert (staged.staging / "modes").read_bytes() == b"644 a\nb/c\nd\0"


def test_an_unreachable_endpoint_fails_with_a_clear_message_and_no_expiry(
    upload: Upload, staged: JobHome, s3_settings: S3Settings
) -> None:
    staged.run(SEED_COMMAND)
    endpoint = f"http://127.0.0.1:{free_port()}"
    env = _env(s3_settings, staged, S3_ENDPOINT_URL=endpoint, UPLOADER_ATTEMPTS="2")

    started = time.monotonic()
    result = upload(env)

    assert result.returncode == 1
    assert "uploader: failed, no expiredAt written: upload to s3://" in result.stderr
    assert "(each request tried up to 2 times)" in result.stderr
    assert f'Could not connect to the endpoint URL: "{endpoint}' in result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 30
    assert _keys(s3_settings) == set()


def test_a_missing_bucket_fails_with_a_clear_message(
    upload: Upload, staged: JobHome, s3_settings: S3Settings
) -> None:
    staged.run(SEED_COMMAND)

    result = upload(_env(s3_settings, staged, PHFS_BUCKET="no-such-bucket"))

    assert result.returncode == 1
    assert "NoSuchBucket" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_done_marker_that_is_a_folder_fails_with_one_line_and_uploads_nothing(
    upload: Upload, staged: JobHome, s3_settings: S3Settings
) -> None:
    staged.run(SEED_COMMAND)
    (staged.staging / "done").unlink()
    (staged.staging / "done").mkdir()

    result = upload(_env(s3_settings, staged))

    assert result.returncode == 1
    assert "uploader: failed, no expiredAt written: " in result.stderr
    assert "done is not a regular file" in result.stderr
    assert _keys(s3_settings) == set()


def test_a_crash_mid_upload_leaves_no_expiry_and_a_retry_completes_cleanly(
    upload: Upload, staged: JobHome, s3_settings: S3Settings
) -> None:
    client = _client(s3_settings)
    bucket = s3_settings.phfs_bucket
    # What a previous complete delivery left: the crash must not leave it standing.
    client.put_object(Bucket=bucket, Key=EXPIRED_AT, Body=b"1800000000")
    big = os.urandom(MIB) * 64
    (staged.artifacts).mkdir()
    (staged.artifacts / "big.bin").write_bytes(big)
    (staged.artifacts / "small.txt").write_text("small")
    staged.run("true")
    env = _env(s3_settings, staged, UPLOADER_CONCURRENCY="1")

    first = _start_uploader(env, "--wait-timeout", "0")
    _wait_until(lambda: client.list_multipart_uploads(Bucket=bucket).get("Uploads"))
    first.kill()
    first.communicate(timeout=10)

    assert _keys(s3_settings) & {EXPIRED_AT, MANIFEST} == set()
    retry = upload(env)
    assert retry.returncode == 0, retry.stderr
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    manifest = Manifest.from_json(client.get_object(Bucket=bucket, Key=MANIFEST)["Body"].read())
    assert {f.name: f.sha256 for f in manifest.files}["big.bin"] == hashlib.sha256(big).hexdigest()
    stored = client.get_object(Bucket=bucket, Key=f"{PREFIX}big.bin")["Body"].read()
    assert stored == big
    assert EXPIRED_AT in _keys(s3_settings)


def test_a_new_run_of_the_script_clears_the_old_markers(
    upload: Upload, staged: JobHome, s3_settings: S3Settings
) -> None:
    staged.run(SEED_COMMAND)
    assert upload(_env(s3_settings, staged)).returncode == 0
    assert (staged.staging / "done").exists()

    process = staged.start("mkdir -p artifacts; echo 1 > artifacts/started; sleep 30")
    _wait_until(lambda: (staged.artifacts / "started").exists())
    try:
        assert not (staged.staging / "done").exists()
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_without_a_done_marker_the_wait_timeout_exits_3(
    upload: Upload, staged: JobHome, s3_settings: S3Settings
) -> None:
    started = time.monotonic()
    result = upload(_env(s3_settings, staged), "--wait-timeout", "0.5")

    assert result.returncode == 3
    assert 0.5 <= time.monotonic() - started < 5
    assert f"uploader: no {staged.staging}/done after 0.5 s; nothing uploaded" in result.stderr


def test_sigterm_while_waiting_still_uploads_a_marker_that_comes_within_the_grace(
    staged: JobHome, s3_settings: S3Settings
) -> None:
    # A deleted pod: both containers get SIGTERM; the job container collects meanwhile.
    uploader = _start_uploader(_env(s3_settings, staged), "--stop-grace", "20")
    _wait_for_line(uploader, "waiting for")
    uploader.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    staged.run(SEED_COMMAND)
    _, stderr = uploader.communicate(timeout=30)

    assert uploader.returncode == 0, stderr
    assert "uploader: SIGTERM received; stopping" in stderr
    assert MANIFEST in _keys(s3_settings)


def test_sigterm_without_a_done_marker_exits_3_after_the_grace(
    staged: JobHome, s3_settings: S3Settings
) -> None:
    uploader = _start_uploader(_env(s3_settings, staged), "--stop-grace", "0.3")
    _wait_for_line(uploader, "waiting for")
    stopped = time.monotonic()
    uploader.send_signal(signal.SIGTERM)
    _, stderr = uploader.communicate(timeout=30)

    assert uploader.returncode == 3
    assert time.monotonic() - stopped < 5
    assert "stopped before" in stderr and "nothing uploaded" in stderr


def test_a_native_sidecar_delivers_once_stopped_with_its_own_end_time(
    staged: JobHome, s3_settings: S3Settings
) -> None:
    uploader = _start_uploader(_env(s3_settings, staged), "--when-stopped", "--stop-grace", "5")
    _wait_for_line(uploader, "waiting for the job container to end")
    staged.run(SEED_COMMAND + "; exit 4")
    time.sleep(0.5)
    assert uploader.poll() is None  # done exists, but only the kubelet's SIGTERM says "ended"
    assert _keys(s3_settings) == set()

    stopped_at = time.time()
    uploader.send_signal(signal.SIGTERM)
    _, stderr = uploader.communicate(timeout=30)

    assert uploader.returncode == 0, stderr
    manifest = Manifest.from_json(_objects(s3_settings)[MANIFEST])
    assert manifest.exit_code == 4
    assert manifest.expired_at is not None
    assert stopped_at - 1 <= manifest.expired_at - WEEK <= stopped_at + 1


def test_a_native_sidecar_stopped_without_a_done_marker_exits_3(
    staged: JobHome, s3_settings: S3Settings
) -> None:
    uploader = _start_uploader(_env(s3_settings, staged), "--when-stopped", "--stop-grace", "0.3")
    _wait_for_line(uploader, "waiting for the job container to end")
    uploader.send_signal(signal.SIGTERM)
    _, stderr = uploader.communicate(timeout=30)

    assert uploader.returncode == 3
    assert "stopped before" in stderr and "nothing uploaded" in stderr


def test_bad_settings_exit_2_with_one_line(
    upload: Upload, staged: JobHome, s3_settings: S3Settings
) -> None:
    env = _env(s3_settings, staged, UPLOADER_CONCURRENCY="many")
    del env["PHJOB_NAME"]

    result = upload(env)

    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("uploader: invalid settings: ")
    assert "PHJOB_NAME is required" in result.stderr
    assert "UPLOADER_CONCURRENCY='many'" in result.stderr


def test_flags_override_the_environment(
    upload: Upload, staged: JobHome, s3_settings: S3Settings
) -> None:
    staged.run(SEED_COMMAND)
    env = _env(s3_settings, staged, PHJOB_NAME="other-job", PHJOB_ARTIFACT_STAGING="/nowhere")

    result = upload(env, "--job", JOB, "--staging", str(staged.staging))

    assert result.returncode == 0, result.stderr
    assert MANIFEST in _keys(s3_settings)


def _wait_for_line(process: subprocess.Popen[str], text: str) -> None:
    """Read the uploader's stderr up to a line holding ``text`` (its signal handlers are
    installed before it prints that it is waiting)."""
    assert process.stderr is not None
    for line in process.stderr:
        if text in line:
            return
    raise AssertionError(f"the uploader ended without printing {text!r}")


def _digests(path: Path, part_size: int) -> tuple[str, str]:
    """The file's sha256, and the ETag S3 gives it when sent in parts of ``part_size``."""
    whole = hashlib.sha256()
    parts = []
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(part_size), b""):
            whole.update(block)
            parts.append(hashlib.md5(block).digest())
    return whole.hexdigest(), f"{hashlib.md5(b''.join(parts)).hexdigest()}-{len(parts)}"


def _listing(settings: S3Settings) -> dict[str, tuple[int, str]]:
    """Key -> (size, ETag) of every object. S3 computes an ETag from the bytes it stored
    (the MD5, or for a multipart upload the MD5 of the parts' MD5s), so comparing it
    with our own checks the content without downloading it."""
    client = _client(settings)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=settings.phfs_bucket)
    return {
        item["Key"]: (item["Size"], item["ETag"].strip('"'))
        for page in pages
        for item in page.get("Contents", ())
    }


def _blocks(count: int) -> Iterator[bytes]:
    seed = os.urandom(MIB)
    for index in range(count):
        # Every MiB differs, so a part sent twice or out of order changes the hash.
        yield index.to_bytes(8, "big") + seed[8:]


@pytest.mark.slow
def test_a_200_mb_file_uploads_in_parts_with_matching_size_and_sha256(
    staged: JobHome, s3_settings: S3Settings
) -> None:
    staged.artifacts.mkdir()
    big = staged.artifacts / "model.bin"
    with big.open("wb") as handle:
        for block in _blocks(200):
            handle.write(block)
    sha256, etag = _digests(big, Tuning().part_size)
    run = staged.run("true")
    assert run.returncode == 0, run.stderr

    result = _upload_process(
        _env(s3_settings, staged, PHJOB_ARTIFACT_LIMIT_SIZE_MB="300"), timeout=120
    )

    assert result.returncode == 0, result.stderr
    assert _listing(s3_settings)[f"{PREFIX}model.bin"] == (200 * MIB, etag)
    assert etag.endswith("-13")  # 16 MiB parts
    manifest = Manifest.from_json(_objects_one(s3_settings, MANIFEST))
    assert [(f.name, f.size, f.sha256) for f in manifest.files] == [
        ("model.bin", 200 * MIB, sha256)
    ]


@pytest.mark.slow
def test_2000_small_files_upload_with_matching_sizes_and_sha256(
    staged: JobHome, s3_settings: S3Settings
) -> None:
    expected: dict[str, bytes] = {}
    for index in range(2000):
        name = f"shard-{index // 100:02}/item {index:04}.txt"
        content = f"{index}\n".encode() * (index % 7 + 1)
        expected[name] = content
        path = staged.artifacts / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    run = staged.run("true")
    assert run.decisions[-1].startswith("artifacts: 2000 files staged in ")

    result = _upload_process(
        _env(s3_settings, staged, PHJOB_ARTIFACT_LIMIT_FILES="2000"), timeout=120
    )

    assert result.returncode == 0, result.stderr
    listing = _listing(s3_settings)
    assert {key: found for key, found in listing.items() if key not in {MANIFEST, EXPIRED_AT}} == {
        f"{PREFIX}{name}": (len(content), hashlib.md5(content).hexdigest())
        for name, content in expected.items()
    }
    manifest = Manifest.from_json(_objects_one(s3_settings, MANIFEST))
    assert manifest.file_count == 2000
    assert {f.name: (f.size, f.sha256) for f in manifest.files} == {
        name: (len(content), hashlib.sha256(content).hexdigest())
        for name, content in expected.items()
    }
    assert EXPIRED_AT in listing


def _objects_one(settings: S3Settings, key: str) -> bytes:
    body: bytes = _client(settings).get_object(Bucket=settings.phfs_bucket, Key=key)["Body"].read()
    return body


def test_a_file_still_being_written_uploads_as_staged(
    upload: Upload, staged: JobHome, s3_settings: S3Settings
) -> None:
    staged.run(
        "mkdir -p artifacts; "
        "(for i in $(seq 1 40); do echo line >> artifacts/log.txt; sleep 0.01; done) & "
        "sleep 0.05"
    )

    result = upload(_env(s3_settings, staged))

    assert result.returncode == 0, result.stderr
    objects = _objects(s3_settings)
    [entry] = Manifest.from_json(objects[MANIFEST]).files
    stored = objects[f"{PREFIX}log.txt"]
    assert (entry.size, entry.sha256) == (len(stored), hashlib.sha256(stored).hexdigest())


# --- the job's log, delivered with the artifacts (issue 16) ---------------------------------

JOB_LOG = job_log_key(PREFIX)


def _our_log(tmp_path: Path, body: bytes) -> Path:
    """The job's output as our side captured it (the local runtime's file), outside staging."""
    path = tmp_path / "runtime-job.log"
    path.write_bytes(body)
    return path


def test_the_jobs_log_goes_up_as_metadata_counted_in_the_manifest_not_as_a_file(
    upload: Upload, staged: JobHome, s3_settings: S3Settings, tmp_path: Path
) -> None:
    run = staged.run(SEED_COMMAND + "; echo out; echo err >&2")
    body = run.stdout.encode() + run.stderr.encode()
    log = _our_log(tmp_path, body)

    result = upload(_env(s3_settings, staged, UPLOADER_JOB_LOG=str(log)))

    assert result.returncode == 0, result.stderr
    objects = _objects(s3_settings)
    assert set(objects) == {
        f"{PREFIX}test.txt", f"{PREFIX}sub/test.txt", JOB_LOG, MANIFEST, EXPIRED_AT
    }  # fmt: skip
    assert objects[JOB_LOG] == body
    assert b"artifacts: 2 files staged" in objects[JOB_LOG]  # the collection's lines, after
    manifest = Manifest.from_json(objects[MANIFEST])
    assert (manifest.file_count, manifest.total_size) == (2, 12)  # the log is no artifact
    assert manifest.log is not None
    assert (manifest.log.size, manifest.log.written, manifest.log.truncated) == (
        len(body), len(body), False
    )  # fmt: skip
    assert manifest.log.sha256 == hashlib.sha256(body).hexdigest()


def test_a_log_over_its_cap_keeps_its_end_after_one_truncation_line(
    upload: Upload, staged: JobHome, s3_settings: S3Settings, tmp_path: Path
) -> None:
    body = b"".join(f"line {i:07d}\n".encode() for i in range(300_000))  # 3.6 MB
    log = _our_log(tmp_path, body)
    staged.run("true")

    result = upload(_env(s3_settings, staged, UPLOADER_JOB_LOG=str(log), PHJOB_LOG_LIMIT_MB="1"))

    assert result.returncode == 0, result.stderr
    stored = _objects(s3_settings)[JOB_LOG]
    first, rest = stored.split(b"\n", 1)
    assert (
        first
        == (
            f"[job.log truncated: the job's output was {len(body)} bytes, over the limit of 1 MB "
            "(ARTIFACT_JOB_LOG_LIMIT_MB); its first bytes are left out and its end follows]"
        ).encode()
    )
    assert len(stored) <= MIB
    assert rest.endswith(b"line 0299999\n")
    assert body.endswith(rest) and rest.startswith(b"line ")  # from a whole line on
    manifest = Manifest.from_json(_objects(s3_settings)[MANIFEST])
    assert manifest.log is not None
    assert (manifest.log.size, manifest.log.written, manifest.log.truncated) == (
        len(stored), len(body), True
    )  # fmt: skip


def test_a_job_without_artifacts_still_has_its_log_kept_and_expiring(
    upload: Upload, staged: JobHome, s3_settings: S3Settings, tmp_path: Path
) -> None:
    staged.run("echo nothing to keep")
    log = _our_log(tmp_path, b"nothing to keep\nartifacts: none: there is no ./artifacts folder\n")

    result = upload(_env(s3_settings, staged, UPLOADER_JOB_LOG=str(log)))

    assert result.returncode == 0, result.stderr
    assert _keys(s3_settings) == {JOB_LOG, MANIFEST, EXPIRED_AT}  # expires with the folder
    manifest = Manifest.from_json(_objects(s3_settings)[MANIFEST])
    assert manifest.file_count == 0 and manifest.log is not None


def test_a_skipped_collection_still_delivers_the_log(
    upload: Upload, staged: JobHome, s3_settings: S3Settings, tmp_path: Path
) -> None:
    staged.artifacts.mkdir()
    (staged.artifacts / "big.bin").write_bytes(b"\0" * (MIB + 1))
    staged.run("true")
    log = _our_log(tmp_path, b"the job's output\n")

    result = upload(
        _env(s3_settings, staged, UPLOADER_JOB_LOG=str(log), PHJOB_ARTIFACT_LIMIT_SIZE_MB="1")
    )

    assert result.returncode == 0, result.stderr
    assert _keys(s3_settings) == {JOB_LOG, MANIFEST, EXPIRED_AT}
    assert _objects(s3_settings)[JOB_LOG] == b"the job's output\n"
    assert Manifest.from_json(_objects(s3_settings)[MANIFEST]).skipped


def test_a_log_the_job_writes_into_staging_is_never_the_delivered_log(
    upload: Upload, staged: JobHome, s3_settings: S3Settings, tmp_path: Path
) -> None:
    forged = b"artifacts: 0 files staged (all is well, says the job)\n"
    staged.run(
        "mkdir -p artifacts/.primehub/metadata; echo data > artifacts/keep.txt; "
        f"printf '{forged.decode()}' > artifacts/.primehub/metadata/job.log; "
        f"printf '{forged.decode()}' > \"$PHJOB_ARTIFACT_STAGING/job.log\""
    )
    (staged.staging / "files" / ".primehub" / "metadata").mkdir(parents=True, exist_ok=True)
    (staged.staging / "files" / ".primehub" / "metadata" / "job.log").write_bytes(forged)
    ours = _our_log(tmp_path, b"what the job really printed\n")

    with_log = upload(_env(s3_settings, staged, UPLOADER_JOB_LOG=str(ours)))
    assert with_log.returncode == 0, with_log.stderr
    assert _objects(s3_settings)[JOB_LOG] == b"what the job really printed\n"

    for key in _keys(s3_settings):
        _client(s3_settings).delete_object(Bucket=s3_settings.phfs_bucket, Key=key)
    without = upload(_env(s3_settings, staged))  # no log from our side: none at all
    assert without.returncode == 0, without.stderr
    assert JOB_LOG not in _keys(s3_settings)
    assert f"{PREFIX}keep.txt" in _keys(s3_settings)


def test_a_log_path_swapped_for_a_link_is_not_followed(
    upload: Upload, staged: JobHome, s3_settings: S3Settings, tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("S3_SECRET_ACCESS_KEY=...")
    log = tmp_path / "runtime-job.log"
    log.symlink_to(secret)
    staged.run(SEED_COMMAND)

    result = upload(_env(s3_settings, staged, UPLOADER_JOB_LOG=str(log)))

    assert result.returncode == 0, result.stderr
    assert JOB_LOG not in _keys(s3_settings)
    assert f"the job's log {log} could not be read" in result.stderr
    manifest = Manifest.from_json(_objects(s3_settings)[MANIFEST])
    assert manifest.file_count == 2 and manifest.log is None
