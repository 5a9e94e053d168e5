"""The local runtime runs PhJobs as real processes (run-job.sh, then the uploader) and
delivers their artifacts to the real S3 server."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from support.phjobs import eventually, new_phjob

from artifacts_controller.contract import run_job_script_path
from artifacts_controller.local_runtime import run_local
from artifacts_controller.metrics import ControllerMetrics
from artifacts_controller.settings import ControllerSettings
from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.phjob import PhJob, PhJobPhase, PhJobStatus
from artifacts_shared.s3 import S3Client
from artifacts_shared.settings import S3Settings

SEED = (
    'mkdir -p artifacts/sub; echo "hello" > artifacts/test.txt; '
    'echo "hello" > artifacts/sub/test.txt'
)


@pytest.fixture
def local_settings(tmp_path: Path, s3_settings: S3Settings) -> ControllerSettings:
    return ControllerSettings(
        **s3_settings.model_dump(),
        controller_runtime="local",
        artifact_delivery="s3",
        local_jobs_dir=tmp_path / "jobs",
        local_runtime_dir=tmp_path / "runtime",
        local_poll_seconds=0.1,
        job_termination_grace_seconds=30,
        controller_backoff_initial_seconds=0.05,
        controller_backoff_max_seconds=0.2,
    )


@pytest.fixture
def store(local_settings: ControllerSettings) -> LocalJobStore:
    return LocalJobStore(local_settings.local_jobs_dir)


@asynccontextmanager
async def running(store: LocalJobStore, settings: ControllerSettings) -> AsyncIterator[None]:
    """The local controller as ``make run`` starts it, until the block ends."""
    task = asyncio.create_task(run_local(settings, ControllerMetrics(), run_job_script_path()))
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _finished(store: LocalJobStore, job: PhJob, timeout: float = 30) -> PhJobStatus:
    async def done() -> bool:
        return store.get(job.id).status.finished

    await eventually(done, timeout=timeout, what=f"{job.id} to finish")
    return store.get(job.id).status


async def _artifacts(s3: S3Client, bucket: str, job: PhJob) -> dict[str, bytes]:
    prefix = f"groups/ml-team/jobArtifacts/{job.id}/"
    listing = await s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    found = {}
    for item in listing.get("Contents", []):
        name = item["Key"][len(prefix) :]
        if not name.startswith(".primehub/"):
            response = await s3.get_object(Bucket=bucket, Key=item["Key"])
            found[name] = await response["Body"].read()
    return found


async def test_the_seed_journey_succeeds_with_its_two_artifacts_in_s3(
    store: LocalJobStore, local_settings: ControllerSettings, s3: S3Client
) -> None:
    job = store.create(new_phjob(command=SEED))
    async with running(store, local_settings):
        status = await _finished(store, job)
    assert status.phase is PhJobPhase.SUCCEEDED, status
    assert status.start_time is not None and status.finish_time is not None
    assert status.start_time <= status.finish_time
    assert await _artifacts(s3, local_settings.phfs_bucket, job) == {
        "test.txt": b"hello\n",
        "sub/test.txt": b"hello\n",
    }
    expired_at = f"groups/ml-team/jobArtifacts/{job.id}/.primehub/metadata/expiredAt"
    assert await s3.head_object(Bucket=local_settings.phfs_bucket, Key=expired_at)
    home = local_settings.local_runtime_dir / job.id / "home"
    assert (home / "artifacts" / "sub" / "test.txt").read_text() == "hello\n"  # its own home


async def test_a_failing_command_fails_with_its_artifacts_still_collected(
    store: LocalJobStore, local_settings: ControllerSettings, s3: S3Client
) -> None:
    job = store.create(
        new_phjob(command="mkdir -p artifacts; echo partial > artifacts/out.txt; exit 3")
    )
    async with running(store, local_settings):
        status = await _finished(store, job)
    assert status.phase is PhJobPhase.FAILED
    assert status.message == "the command exited with code 3"
    assert await _artifacts(s3, local_settings.phfs_bucket, job) == {"out.txt": b"partial\n"}


def _pid(settings: ControllerSettings, job: PhJob) -> int:
    import json

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
    store: LocalJobStore, local_settings: ControllerSettings, s3: S3Client
) -> None:
    job = store.create(
        new_phjob(command="mkdir -p artifacts; echo started > artifacts/log.txt; sleep 600")
    )
    async with running(store, local_settings):

        async def started() -> bool:
            return store.get(job.id).status.phase is PhJobPhase.RUNNING

        await eventually(started, timeout=10, what="the job to run")
        await asyncio.sleep(0.3)  # let the command write its file
        sid = _pid(local_settings, job)
        assert any("sleep 600" in line for line in _session(sid))
        cancelled_at = time.monotonic()
        store.request_cancel(job.id)
        status = await _finished(store, job, timeout=10)
        assert status.phase is PhJobPhase.CANCELLED

        async def stopped() -> bool:
            return _session(sid) == []

        await eventually(stopped, timeout=10, what="the job's processes to end")
        assert time.monotonic() - cancelled_at < 5

        # Stopping collects, as in a pod: the uploader still delivers what was there.
        async def delivered() -> bool:
            return await _artifacts(s3, local_settings.phfs_bucket, job) == {
                "log.txt": b"started\n"
            }

        await eventually(delivered, timeout=20, what="the artifacts of the cancelled job")


async def test_a_restarted_controller_delivers_a_job_it_stopped_and_reports_it(
    store: LocalJobStore, local_settings: ControllerSettings, s3: S3Client
) -> None:
    job = store.create(
        new_phjob(command="mkdir -p artifacts; echo early > artifacts/early.txt; sleep 600")
    )
    async with running(store, local_settings):

        async def started() -> bool:
            return store.get(job.id).status.phase is PhJobPhase.RUNNING

        await eventually(started, timeout=10, what="the job to run")
        await asyncio.sleep(0.3)
    # The first controller stopped, and its job with it (collecting as it went).
    async with running(store, local_settings):
        status = await _finished(store, job)
    assert status.phase is PhJobPhase.FAILED
    assert status.message == "the command exited with code 143"  # 128 + SIGTERM
    assert await _artifacts(s3, local_settings.phfs_bucket, job) == {"early.txt": b"early\n"}


async def test_a_job_whose_process_vanished_while_the_controller_was_down_fails(
    store: LocalJobStore, local_settings: ControllerSettings, tmp_path: Path
) -> None:
    job = store.create(new_phjob(command="sleep 600"))
    # What a controller killed with SIGKILL leaves: a running status and a dead process.
    gone = subprocess.Popen(["true"])
    gone.wait()
    folder = local_settings.local_runtime_dir / job.id
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(f'{{"pid": {gone.pid}, "processStart": "1"}}')
    store.write_status(job.id, PhJobStatus(phase=PhJobPhase.RUNNING, pod_name=f"local-{gone.pid}"))
    async with running(store, local_settings):
        status = await _finished(store, job, timeout=10)
    assert status.phase is PhJobPhase.FAILED and status.reason == "RunLost"
    assert "while the controller was down" in (status.message or "")
