"""A 50 MB job log streams through ``python -m artifacts_api`` with flat memory.

The api runs in its own process so its resident memory can be sampled alone while a
client reads: the local runtime's file while the job writes it (followed), the copy in the
real S3 server once it has ended, and a GraphQL page of its last lines. Only growth is
asserted, as a bound well below the log's size; no timing is.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from support.api import ApiProcess, add_job
from support.joblogs import append, archive_log, finish, runtime_log
from support.servers import free_port

from artifacts_api.settings import ApiSettings
from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.phjob import PhJobPhase
from artifacts_shared.s3 import S3Client
from artifacts_shared.settings import LocalRuntimeSettings

MiB = 1024 * 1024
SIZE = 50 * MiB
JOB = "job-202101020304-bigbig"
WARM_UP = "job-202101020304-warmup"
GROWTH_BOUND = 20 * MiB

pytestmark = pytest.mark.slow


LINE = 64
"""Bytes per line of ``_lines``: a line number, random hex, a newline."""


def _lines(megabytes: int) -> bytes:
    """``megabytes`` MiB of distinct numbered lines of ``LINE`` bytes."""
    count = megabytes * MiB // LINE
    noise = os.urandom(27 * count).hex()
    return b"".join(f"{i:09d} {noise[i * 53 : (i + 1) * 53]}\n".encode() for i in range(count))


@pytest.fixture
def runtime(tmp_path: Path) -> LocalRuntimeSettings:
    return LocalRuntimeSettings(local_runtime_dir=tmp_path / "runtime")


@pytest.fixture
async def api_process(
    settings: ApiSettings, runtime: LocalRuntimeSettings
) -> AsyncIterator[ApiProcess]:
    secret = settings.s3_secret_access_key
    process = ApiProcess(
        {
            "API_HOST": "127.0.0.1",
            "API_PORT": str(free_port()),
            "API_AUTH_MODE": "none",
            "CONTROLLER_RUNTIME": "local",
            "LOCAL_JOBS_DIR": str(settings.local_jobs_dir),
            "LOCAL_RUNTIME_DIR": str(runtime.local_runtime_dir),
            "S3_ENDPOINT_URL": settings.s3_endpoint_url or "",
            "S3_ACCESS_KEY_ID": settings.s3_access_key_id or "",
            "S3_SECRET_ACCESS_KEY": secret.get_secret_value() if secret else "",
            "PHFS_BUCKET": settings.phfs_bucket,
            "REDIS_URL": settings.redis_url,
        }
    )
    store = LocalJobStore(settings.local_jobs_dir)
    add_job(store, WARM_UP, phase=PhJobPhase.RUNNING)
    runtime_log(runtime, WARM_UP, _lines(1))
    try:
        yield await process.start()
    finally:
        process.stop()


async def _drain(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(url) as response:
        assert response.status == 200, await response.text()
        received = 0
        async for chunk in response.content.iter_chunked(MiB):
            received += len(chunk)
        return received


async def _warm(session: aiohttp.ClientSession, process: ApiProcess) -> int:
    """Lazy imports, pools and buffers settle on a small log first: the baseline after it."""
    await _drain(session, f"{process.url}/jobs/{WARM_UP}/logs?follow=false")
    await _drain(session, f"{process.url}/jobs/{WARM_UP}/logs?tailLines=10")
    return process.rss()


async def test_a_50_mb_log_followed_while_the_job_writes_it_keeps_api_memory_flat(
    api_process: ApiProcess, store: LocalJobStore, runtime: LocalRuntimeSettings
) -> None:
    add_job(store, JOB, phase=PhJobPhase.RUNNING)
    path = runtime_log(runtime, JOB)
    body = _lines(SIZE // MiB)

    async def job_writes() -> None:
        for start in range(0, len(body), MiB):
            await asyncio.to_thread(append, path, body[start : start + MiB])
            await asyncio.sleep(0.005)
        finish(store, JOB)

    async with aiohttp.ClientSession() as session:
        baseline = await _warm(session, api_process)
        api_process.start_sampling()
        writer = asyncio.create_task(job_writes())
        try:
            received = await _drain(session, f"{api_process.url}/jobs/{JOB}/logs?follow=true")
        finally:
            peak = api_process.stop_sampling()
            await writer

    growth = peak - baseline
    print(
        f"\nfollowed {received / MiB:.0f} MiB: api RSS {baseline / MiB:.1f} MiB before, "
        f"peak {peak / MiB:.1f} MiB (+{growth / MiB:.1f} MiB)"
    )
    assert received == SIZE
    assert growth < GROWTH_BOUND, f"RSS grew by {growth / MiB:.1f} MiB"


async def test_a_50_mb_archived_log_and_a_page_of_it_keep_api_memory_flat(
    api_process: ApiProcess, store: LocalJobStore, settings: ApiSettings, s3: S3Client
) -> None:
    add_job(store, JOB, phase=PhJobPhase.RUNNING)
    finish(store, JOB)
    await archive_log(
        s3, settings.phfs_bucket, JOB, _lines(SIZE // MiB), expired_at=time.time() + 3600
    )
    page = """query { phJob(where: {id: "%s"}) { logs(limit: 5000) { offset totalLines } } }"""

    async with aiohttp.ClientSession() as session:
        baseline = await _warm(session, api_process)
        api_process.start_sampling()
        try:
            received = await _drain(session, f"{api_process.url}/jobs/{JOB}/logs")
            async with session.post(
                f"{api_process.url}/graphql", json={"query": page % JOB}
            ) as response:
                logs = (await response.json())["data"]["phJob"]["logs"]
        finally:
            peak = api_process.stop_sampling()

    growth = peak - baseline
    print(
        f"\narchived {received / MiB:.0f} MiB and a 5000-line page: api RSS "
        f"{baseline / MiB:.1f} MiB before, peak {peak / MiB:.1f} MiB (+{growth / MiB:.1f} MiB)"
    )
    assert received == SIZE
    assert logs["totalLines"] == SIZE // LINE
    assert logs["offset"] == SIZE // LINE - 5000
    assert growth < GROWTH_BOUND, f"RSS grew by {growth / MiB:.1f} MiB"
