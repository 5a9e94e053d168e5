"""The janitor as it is deployed: ``python -m artifacts_janitor`` in its own process.

The worker is killed for real (SIGKILL) in the middle of deleting a folder, held there
by a ``DeleteGate`` after two batches went through; a second worker then finishes the
job. The liveness probe and the one-off dry run are checked the same way.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from arq.connections import ArqRedis, create_pool
from support.buckets import put_objects, snapshot
from support.folders import folder
from support.s3_gate import DeleteGate
from support.servers import TEST_CREDENTIALS, S3Server

from artifacts_janitor.settings import JanitorSettings
from artifacts_janitor.worker import arq_redis_settings
from artifacts_shared.cleanup_queue import (
    CLEANUP_QUEUE,
    CleanupState,
    cleanup_status,
    request_cleanup,
)
from artifacts_shared.layout import expired_at_key, manifest_key
from artifacts_shared.s3 import S3Client

PAST, FUTURE = b"1000", b"4000000000"


def janitor_env(settings: JanitorSettings, *, s3_url: str | None = None) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "S3_ENDPOINT_URL": s3_url or str(settings.s3_endpoint_url),
        "S3_ACCESS_KEY_ID": TEST_CREDENTIALS.access_key_id,
        "S3_SECRET_ACCESS_KEY": TEST_CREDENTIALS.secret_access_key,
        "PHFS_BUCKET": settings.phfs_bucket,
        "REDIS_URL": settings.redis_url,
        "JANITOR_LOCK_SECONDS": "2",
        "JANITOR_METRICS_PORT": "0",
        "JANITOR_CONCURRENCY": "4",
    }


class Processes:
    """Janitor processes started by a test, with their output kept for a failure report."""

    def __init__(self, logs: Path) -> None:
        self._logs = logs
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
        log = (self._logs / f"janitor-{len(self.started)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "artifacts_janitor", *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    started = Processes(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


@pytest.fixture
async def pool(janitor_settings: JanitorSettings) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(arq_redis_settings(janitor_settings))
    try:
        yield pool
    finally:
        await pool.aclose()


async def wait(process: subprocess.Popen[bytes], timeout: float = 30) -> int:
    return await asyncio.to_thread(process.wait, timeout)


async def test_a_worker_killed_mid_deletion_leaves_a_folder_the_next_run_finishes(
    s3: S3Client,
    s3_server: S3Server,
    janitor_settings: JanitorSettings,
    pool: ArqRedis,
    processes: Processes,
) -> None:
    bucket = janitor_settings.phfs_bucket
    big, big_objects = folder(
        "g", "job-big", {f"part-{i:05}": b"x" for i in range(3500)}, expired_at=PAST
    )
    kept, kept_objects = folder("g", "job-kept", expired_at=FUTURE)
    s3_server.seed(bucket, {**big_objects, **kept_objects, "other/file": b"1"})
    untouched = await snapshot(s3, bucket, kept) | await snapshot(s3, bucket, "other/")
    gate = await DeleteGate(s3_server.url, allow=2).start()
    try:
        killed = processes.start(janitor_env(janitor_settings, s3_url=gate.url))
        first = await request_cleanup(pool)
        await asyncio.wait_for(gate.holding.wait(), timeout=60)
        await gate.wait_for_passed(2)
        killed.send_signal(signal.SIGKILL)
        assert await wait(killed) == -signal.SIGKILL
    finally:
        await gate.close()

    left = set(await snapshot(s3, bucket, big))
    artifacts_left = {key for key in left if "/.primehub/" not in key}
    assert 0 < len(artifacts_left) <= 3500 - 1000  # some batches, not all
    assert {manifest_key(big), expired_at_key(big)} <= left  # still marked as expired

    processes.start(janitor_env(janitor_settings))
    async with asyncio.timeout(30):
        # The killed run's lease lapses within JANITOR_LOCK_SECONDS; then it is taken for
        # dead and a request starts a fresh run.
        while (second := await request_cleanup(pool, startup_grace=0.5)) == first:
            await asyncio.sleep(0.2)
        while (status := await cleanup_status(pool, second)).state is not CleanupState.COMPLETE:
            await asyncio.sleep(0.1)

    assert status.result is not None
    assert status.result.deleted == [big]
    assert status.result.objects_deleted == len(left)
    assert await snapshot(s3, bucket) == untouched


async def test_the_liveness_probe_passes_while_a_worker_runs_and_fails_once_it_stopped(
    janitor_settings: JanitorSettings, pool: ArqRedis, processes: Processes
) -> None:
    env = janitor_env(janitor_settings)
    worker = processes.start(env)
    async with asyncio.timeout(30):  # until the worker has recorded its health once
        while not await pool.exists(f"{CLEANUP_QUEUE}:health-check"):
            await asyncio.sleep(0.1)

    assert await wait(processes.start(env, "--check")) == 0
    worker.send_signal(signal.SIGTERM)
    assert await wait(worker) == 0
    assert await wait(processes.start(env, "--check")) == 1


async def test_a_one_off_dry_run_prints_what_would_go_and_deletes_nothing(
    s3: S3Client, janitor_settings: JanitorSettings, processes: Processes, tmp_path: Path
) -> None:
    bucket = janitor_settings.phfs_bucket
    doomed, doomed_objects = folder("g", "job-old", expired_at=PAST)
    _, kept_objects = folder("g", "job-new", expired_at=FUTURE)
    await put_objects(s3, bucket, {**doomed_objects, **kept_objects})
    before = await snapshot(s3, bucket)

    once = processes.start(janitor_env(janitor_settings), "--once", "--dry-run")
    assert await wait(once) == 0

    output = (tmp_path / "janitor-0.log").read_text()
    result = json.loads(output[output.index("{\n") :])
    assert (result["dryRun"], result["deleted"], result["foldersUnexpired"]) == (True, [doomed], 1)
    assert result["objectsDeleted"] == len(doomed_objects)
    assert await snapshot(s3, bucket) == before


def test_an_unreachable_redis_stops_the_worker_with_one_line_naming_it() -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "REDIS_URL": "redis://:hunter2@127.0.0.1:1/0",
        "JANITOR_METRICS_PORT": "0",
    }
    result = subprocess.run(
        [sys.executable, "-m", "artifacts_janitor"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("janitor: cannot reach Redis at redis://:***@127.0.0.1:1/0")
    assert "Traceback" not in result.stderr and "hunter2" not in result.stderr
