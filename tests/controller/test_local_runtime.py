"""The local runtime runs PhJobs as real processes (run-job.sh, then the uploader) and
delivers their artifacts to the real S3 server."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from redis.asyncio import Redis
from support.localruns import artifacts_of, finished, running_local
from support.phjobs import eventually, new_phjob

from artifacts_controller.expiry_feed import ExpiryFeed
from artifacts_controller.isolation import isolation
from artifacts_controller.settings import ControllerSettings
from artifacts_shared.expiry_index import EXPIRY_INDEX_KEY
from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.phjob import PhJob, PhJobPhase, PhJobStatus
from artifacts_shared.s3 import S3Client

SEED = (
    'mkdir -p artifacts/sub; echo "hello" > artifacts/test.txt; '
    'echo "hello" > artifacts/sub/test.txt'
)


async def test_the_seed_journey_succeeds_with_its_two_artifacts_in_s3(
    expiry_feed: ExpiryFeed, store: LocalJobStore, local_settings: ControllerSettings, s3: S3Client
) -> None:
    job = store.create(new_phjob(command=SEED))
    async with running_local(store, local_settings, expiry_feed):
        status = await finished(store, job)
    assert status.phase is PhJobPhase.SUCCEEDED, status
    assert status.start_time is not None and status.finish_time is not None
    assert status.start_time <= status.finish_time
    assert await artifacts_of(s3, local_settings.phfs_bucket, job) == {
        "test.txt": b"hello\n",
        "sub/test.txt": b"hello\n",
    }
    expired_at = f"groups/ml-team/jobArtifacts/{job.id}/.primehub/metadata/expiredAt"
    assert await s3.head_object(Bucket=local_settings.phfs_bucket, Key=expired_at)
    home = local_settings.local_runtime_dir / job.id / "home"
    assert (home / "artifacts" / "sub" / "test.txt").read_text() == "hello\n"  # its own home


async def test_a_collected_job_is_in_the_expiry_index_at_the_expiry_it_wrote(
    expiry_feed: ExpiryFeed,
    store: LocalJobStore,
    local_settings: ControllerSettings,
    s3: S3Client,
    redis: Redis,
) -> None:
    job = store.create(new_phjob(command=SEED))
    async with running_local(store, local_settings, expiry_feed):
        await finished(store, job)

    prefix = f"groups/ml-team/jobArtifacts/{job.id}/"
    response = await s3.get_object(
        Bucket=local_settings.phfs_bucket, Key=f"{prefix}.primehub/metadata/expiredAt"
    )
    written = int(await response["Body"].read())
    # The uploader indexed what it wrote; the controller's later estimate did not move it.
    assert await redis.zrange(EXPIRY_INDEX_KEY, 0, -1, withscores=True) == [
        (prefix.encode(), written)
    ]


async def test_a_failing_command_fails_with_its_artifacts_still_collected(
    expiry_feed: ExpiryFeed, store: LocalJobStore, local_settings: ControllerSettings, s3: S3Client
) -> None:
    job = store.create(
        new_phjob(command="mkdir -p artifacts; echo partial > artifacts/out.txt; exit 3")
    )
    async with running_local(store, local_settings, expiry_feed):
        status = await finished(store, job)
    assert status.phase is PhJobPhase.FAILED
    assert status.message == "the command exited with code 3"
    assert await artifacts_of(s3, local_settings.phfs_bucket, job) == {"out.txt": b"partial\n"}


def _pid(settings: ControllerSettings, job: PhJob) -> int:
    return int(json.loads((settings.local_runtime_dir / job.id / "run.json").read_text())["pid"])


def _session(sid: int) -> list[str]:
    """The command lines of the processes of session ``sid`` (the job's, run-job.sh's pid)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if entry.name.isdigit() and int(stat[3]) == sid and stat[0] != "Z":
                found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, IndexError):
            continue
    return found


async def test_cancel_stops_a_long_command_within_seconds(
    expiry_feed: ExpiryFeed, store: LocalJobStore, local_settings: ControllerSettings, s3: S3Client
) -> None:
    job = store.create(
        new_phjob(command="mkdir -p artifacts; echo started > artifacts/log.txt; sleep 600")
    )
    async with running_local(store, local_settings, expiry_feed):

        async def started() -> bool:
            return store.get(job.id).status.phase is PhJobPhase.RUNNING

        await eventually(started, timeout=10, what="the job to run")
        await asyncio.sleep(0.3)  # let the command write its file
        sid = _pid(local_settings, job)
        assert any("sleep 600" in line for line in _session(sid))
        cancelled_at = time.monotonic()
        store.request_cancel(job.id)
        status = await finished(store, job, timeout=10)
        assert status.phase is PhJobPhase.CANCELLED

        async def stopped() -> bool:
            return _session(sid) == []

        await eventually(stopped, timeout=10, what="the job's processes to end")
        assert time.monotonic() - cancelled_at < 5

        # Stopping collects, as in a pod: the uploader still delivers what was there.
        async def delivered() -> bool:
            return await artifacts_of(s3, local_settings.phfs_bucket, job) == {
                "log.txt": b"started\n"
            }

        await eventually(delivered, timeout=20, what="the artifacts of the cancelled job")


async def test_a_job_past_its_active_deadline_is_stopped_collected_and_failed(
    store: LocalJobStore, local_settings: ControllerSettings, expiry_feed: ExpiryFeed, s3: S3Client
) -> None:
    job = store.create(
        new_phjob(
            command="mkdir -p artifacts; echo started > artifacts/log.txt; sleep 600",
            active_deadline_seconds=2,
        )
    )
    async with running_local(store, local_settings, expiry_feed):
        status = await finished(store, job, timeout=20)
        sid = _pid(local_settings, job)

    assert status.phase is PhJobPhase.FAILED and status.reason == "DeadlineExceeded"
    assert status.message is not None and "activeDeadlineSeconds (2 s)" in status.message
    assert status.start_time is not None and status.finish_time is not None
    assert 2 <= (status.finish_time - status.start_time).total_seconds() < 15
    assert _session(sid) == []  # the sleep is gone, not left running
    # Stopped the way a pod is stopped: run-job.sh collected, the uploader delivered.
    assert await artifacts_of(s3, local_settings.phfs_bucket, job) == {"log.txt": b"started\n"}


async def test_a_job_that_ends_before_its_deadline_is_not_touched(
    store: LocalJobStore, local_settings: ControllerSettings, expiry_feed: ExpiryFeed
) -> None:
    job = store.create(new_phjob(command="exit 0", active_deadline_seconds=60))
    async with running_local(store, local_settings, expiry_feed):
        status = await finished(store, job)
    assert status.phase is PhJobPhase.SUCCEEDED and status.reason is None


async def test_an_unknown_instance_type_fails_the_local_job_before_it_runs(
    store: LocalJobStore, local_settings: ControllerSettings, expiry_feed: ExpiryFeed
) -> None:
    job = store.create(new_phjob(command="touch ran", instance_type="gpu-99"))
    async with running_local(store, local_settings, expiry_feed):
        status = await finished(store, job)
    assert status.phase is PhJobPhase.FAILED and status.reason == "InvalidSpec"
    assert status.message is not None and "'gpu-99'" in status.message
    assert not (local_settings.local_runtime_dir / job.id / "home" / "ran").exists()


async def test_a_restarted_controller_delivers_a_job_it_stopped_and_reports_it(
    expiry_feed: ExpiryFeed, store: LocalJobStore, local_settings: ControllerSettings, s3: S3Client
) -> None:
    job = store.create(
        new_phjob(command="mkdir -p artifacts; echo early > artifacts/early.txt; sleep 600")
    )
    async with running_local(store, local_settings, expiry_feed):

        async def started() -> bool:
            return store.get(job.id).status.phase is PhJobPhase.RUNNING

        await eventually(started, timeout=10, what="the job to run")
        await asyncio.sleep(0.3)
    # The first controller stopped, and its job with it (collecting as it went).
    async with running_local(store, local_settings, expiry_feed):
        status = await finished(store, job)
    assert status.phase is PhJobPhase.FAILED
    assert status.message == "the command exited with code 143"  # 128 + SIGTERM
    assert await artifacts_of(s3, local_settings.phfs_bucket, job) == {"early.txt": b"early\n"}


async def test_a_job_whose_process_vanished_while_the_controller_was_down_fails(
    expiry_feed: ExpiryFeed,
    store: LocalJobStore,
    local_settings: ControllerSettings,
    tmp_path: Path,
) -> None:
    job = store.create(new_phjob(command="sleep 600"))
    # What a controller killed with SIGKILL leaves: a running status and a dead process.
    gone = subprocess.Popen(["true"])
    gone.wait()
    folder = local_settings.local_runtime_dir / job.id
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(f'{{"pid": {gone.pid}, "processStart": "1"}}')
    store.write_status(job.id, PhJobStatus(phase=PhJobPhase.RUNNING, pod_name=f"local-{gone.pid}"))
    async with running_local(store, local_settings, expiry_feed):
        status = await finished(store, job, timeout=10)
    assert status.phase is PhJobPhase.FAILED and status.reason == "RunLost"
    assert "while the controller was down" in (status.message or "")


# --- one user per job: a job cannot reach another's folders ---------------------------------

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="a uid per job needs the controller to run as root (CI does)"
)


@pytest.fixture
def isolated_settings(local_settings: ControllerSettings) -> Iterator[ControllerSettings]:
    """A runtime folder other users can pass through to (pytest's own is root's, 0700)."""
    runtime = Path(tempfile.mkdtemp(prefix="local-runtime-", dir="/tmp"))
    try:
        yield local_settings.model_copy(update={"local_runtime_dir": runtime})
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


def _record(settings: ControllerSettings, job: PhJob) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(
        (settings.local_runtime_dir / job.id / "run.json").read_text()
    )
    return record


ATTEMPTS = """
attempt() {{ if eval "$2" >/dev/null 2>&1; then echo "$1: allowed"; else echo "$1: denied"; fi; }}
mkdir -p artifacts
{{
  attempt "read its artifact" "cat {a}/home/artifacts/secret.txt"
  attempt "list its home" "ls {a}/home"
  attempt "plant a file in its artifacts" "echo planted > {a}/home/artifacts/planted.txt"
  attempt "write its done marker" "echo 0 > {a}/staging/done"
  attempt "plant its expiry" "mkdir -p {a}/staging/files/.primehub && echo 1 > {a}/staging/x"
  attempt "swap its staging folder" "mv {a}/staging {a}/gone"
  attempt "read its run record" "cat {a}/run.json"
  attempt "read its log" "cat {a}/job.log"
  attempt "list the runtime folder" "ls {runtime}"
  attempt "signal its processes" "kill -0 {pid}"
  attempt "read its environment" "cat /proc/{pid}/environ"
  attempt "read the controller's environment" "cat /proc/{controller}/environ"
}} > artifacts/attempts.txt
"""


@needs_root
async def test_a_job_cannot_read_write_or_expire_another_jobs_folders(
    store: LocalJobStore,
    isolated_settings: ControllerSettings,
    expiry_feed: ExpiryFeed,
    s3: S3Client,
) -> None:
    settings = isolated_settings
    victim = store.create(
        new_phjob(
            command="mkdir -p artifacts; echo secret-a > artifacts/secret.txt; "
            'until [ -e "$HOME/go" ]; do sleep 0.1; done'
        )
    )
    async with running_local(store, settings, expiry_feed):

        async def started() -> bool:
            return (settings.local_runtime_dir / victim.id / "home" / "artifacts").exists()

        await eventually(started, timeout=20, what="the victim to write its artifact")
        folder = shlex.quote(str(settings.local_runtime_dir / victim.id))
        attacker = store.create(
            new_phjob(
                group_name="other_group",
                command=ATTEMPTS.format(
                    a=folder,
                    runtime=shlex.quote(str(settings.local_runtime_dir)),
                    pid=_record(settings, victim)["pid"],
                    controller=os.getpid(),
                ),
            )
        )
        attacked = await finished(store, attacker)
        (settings.local_runtime_dir / victim.id / "home" / "go").touch()
        delivered = await finished(store, victim)

    assert attacked.phase is delivered.phase is PhJobPhase.SUCCEEDED, (attacked, delivered)
    uids = {_record(settings, job)["uid"] for job in (victim, attacker)}
    first, last = settings.job_uid_range
    assert len(uids) == 2 and all(first <= uid <= last for uid in uids)
    report = (await artifacts_of(s3, settings.phfs_bucket, attacker, "other-group"))["attempts.txt"]
    lines = report.decode().splitlines()
    assert len(lines) == 12 and all(line.endswith(": denied") for line in lines), lines
    # The victim's delivery is its own, with our expiry, and nothing planted in it.
    assert await artifacts_of(s3, settings.phfs_bucket, victim) == {"secret.txt": b"secret-a\n"}
    expired_at = f"groups/ml-team/jobArtifacts/{victim.id}/.primehub/metadata/expiredAt"
    stored = await s3.get_object(Bucket=settings.phfs_bucket, Key=expired_at)
    async with stored["Body"] as body:
        assert int(await body.read()) >= int(time.time()) + settings.artifact_retention_seconds - 60
    # Ended, each job folder is closed to every user but the controller's.
    for job in (victim, attacker):
        mode = (settings.local_runtime_dir / job.id).stat()
        assert (mode.st_uid, mode.st_mode & 0o777) == (0, 0o700)


@needs_root
async def test_nothing_a_job_started_outlives_it_even_out_of_its_session(
    store: LocalJobStore, isolated_settings: ControllerSettings, expiry_feed: ExpiryFeed
) -> None:
    job = store.create(
        new_phjob(command="setsid bash -c 'sleep 300' </dev/null >/dev/null 2>&1 & sleep 0.5")
    )
    async with running_local(store, isolated_settings, expiry_feed):
        status = await finished(store, job)
    assert status.phase is PhJobPhase.SUCCEEDED, status
    uid = _record(isolated_settings, job)["uid"]
    left = [
        process.info["cmdline"]
        for process in psutil.process_iter(["uids", "cmdline", "status"])
        if process.info["uids"].real == uid and process.info["status"] != psutil.STATUS_ZOMBIE
    ]
    assert left == []


def test_a_controller_that_is_not_root_says_once_that_the_runtime_is_single_tenant(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert isolation(tmp_path, (1900000000, 1900000009), euid=1000) is None
    [record] = caplog.records
    assert record.getMessage().startswith(
        "the local runtime is single-tenant: the controller does not run as root, so every "
        "job runs as uid 1000"
    )


def test_a_runtime_folder_other_users_cannot_reach_makes_it_single_tenant(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with tempfile.TemporaryDirectory(dir="/tmp") as parent:
        Path(parent).chmod(0o755)
        closed = Path(parent) / "closed"
        closed.mkdir(mode=0o700)
        with caplog.at_level(logging.WARNING):
            assert isolation(closed / "runtime", (1900000000, 1900000009), euid=0) is None
    [record] = caplog.records
    assert record.getMessage().startswith(
        f"the local runtime is single-tenant: other users cannot pass through {closed} to "
    )


# A job deleted from the store (nothing of ours deletes one: an operator removes its
# folder): held by the runtime's copy, its artifacts expire after the orphan grace.


async def _expiry(s3: S3Client, bucket: str, job: PhJob) -> int:
    key = f"groups/ml-team/jobArtifacts/{job.id}/.primehub/metadata/expiredAt"
    response = await s3.get_object(Bucket=bucket, Key=key)
    return int(await response["Body"].read())


async def _released(settings: ControllerSettings, job: PhJob) -> None:
    held = settings.local_runtime_dir / ".held" / f"{job.id}.json"

    async def released() -> bool:
        return not held.exists()

    await eventually(released, timeout=30, what=f"{job.id} to be released")


async def test_a_job_removed_from_the_store_has_its_artifacts_expire_after_the_grace(
    expiry_feed: ExpiryFeed,
    store: LocalJobStore,
    local_settings: ControllerSettings,
    s3: S3Client,
    redis: Redis,
) -> None:
    bucket = local_settings.phfs_bucket
    job = store.create(new_phjob(command=SEED))
    async with running_local(store, local_settings, expiry_feed):
        await finished(store, job)
        collected = await _expiry(s3, bucket, job)
        assert (local_settings.local_runtime_dir / ".held" / f"{job.id}.json").exists()

        before = time.time()
        shutil.rmtree(store.root / job.id)
        await _released(local_settings, job)

    expired_at = await _expiry(s3, bucket, job)
    assert collected > before + 6 * 86_400  # the week the job's retention gave it
    assert before + 86_400 - 1 <= expired_at <= time.time() + 86_400
    prefix = f"groups/ml-team/jobArtifacts/{job.id}/"
    assert await redis.zscore(EXPIRY_INDEX_KEY, prefix) == expired_at
    assert not (local_settings.local_runtime_dir / job.id).exists()  # its run went with it
    assert await artifacts_of(s3, bucket, job) == {
        "test.txt": b"hello\n",
        "sub/test.txt": b"hello\n",
    }


async def test_a_running_job_removed_from_the_store_is_stopped_collected_then_shortened(
    expiry_feed: ExpiryFeed,
    store: LocalJobStore,
    local_settings: ControllerSettings,
    s3: S3Client,
) -> None:
    bucket = local_settings.phfs_bucket
    job = store.create(new_phjob(command=f"{SEED}; sleep 60"))
    last_written = local_settings.local_runtime_dir / job.id / "home" / "artifacts" / "sub"
    async with running_local(store, local_settings, expiry_feed):

        async def seeded() -> bool:
            # RUNNING alone is not enough: the command may not have written its files yet.
            running = store.get(job.id).status.phase is PhJobPhase.RUNNING
            return (
                running
                and (last_written / "test.txt").is_file()
                and ((last_written / "test.txt").read_text() == "hello\n")
            )

        await eventually(seeded, timeout=30, what=f"{job.id} to run and write its files")
        shutil.rmtree(store.root / job.id)
        await _released(local_settings, job)

    # Stopped (SIGTERM), its artifacts collected and uploaded, and only then shortened:
    # the uploader's expiredAt (now + a week) did not win.
    assert await artifacts_of(s3, bucket, job) == {
        "test.txt": b"hello\n",
        "sub/test.txt": b"hello\n",
    }
    assert await _expiry(s3, bucket, job) <= time.time() + 86_400


async def test_with_a_grace_of_0_a_removed_job_keeps_its_expiry_and_nothing_is_held(
    expiry_feed: ExpiryFeed,
    store: LocalJobStore,
    local_settings: ControllerSettings,
    s3: S3Client,
) -> None:
    settings = local_settings.model_copy(update={"artifact_orphan_grace_seconds": 0})
    job = store.create(new_phjob(command=SEED))
    async with running_local(store, settings, expiry_feed):
        await finished(store, job)
        collected = await _expiry(s3, settings.phfs_bucket, job)
        shutil.rmtree(store.root / job.id)
        await asyncio.sleep(5 * settings.local_poll_seconds)

    assert not (settings.local_runtime_dir / ".held").exists()
    assert await _expiry(s3, settings.phfs_bucket, job) == collected
