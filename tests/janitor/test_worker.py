"""The arq worker on the real Redis and S3: requests, the cron, one run at a time.

Workers run in this process (two where it matters), each with its own Redis pool, as two
replicas would. A ``DeleteGate`` in front of S3 holds a run at its first delete, so a
test can act while that run is provably running.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from arq.connections import ArqRedis, create_pool
from arq.worker import Worker
from support.buckets import put_objects, snapshot
from support.folders import NOW, FixedClock, folder
from support.s3_gate import DeleteGate
from support.servers import S3Server, free_port

from artifacts_janitor.clock import Clock, SystemClock
from artifacts_janitor.settings import JanitorSettings
from artifacts_janitor.worker import DAILY_CRON as CRON
from artifacts_janitor.worker import arq_redis_settings, make_worker
from artifacts_shared.cleanup_queue import (
    CLEANUP_QUEUE,
    RESCAN_REQUEST_KEY,
    CleanupState,
    CleanupStatus,
    cleanup_status,
    request_cleanup,
)
from artifacts_shared.cleanup_result import CleanupResult, RunOutcome
from artifacts_shared.redis import CLEANUP_FUNCTION
from artifacts_shared.s3 import S3Client

StartWorker = Callable[..., Awaitable[Worker]]
PAST = b"1000"  # expired for any clock, real or fixed


@pytest.fixture
async def pool(janitor_settings: JanitorSettings) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(arq_redis_settings(janitor_settings))
    try:
        yield pool
    finally:
        await pool.aclose()


@pytest.fixture
async def start_worker(
    janitor_settings: JanitorSettings, clock: FixedClock
) -> AsyncIterator[StartWorker]:
    running: list[tuple[Worker, asyncio.Task[None]]] = []

    async def start(
        *,
        settings: JanitorSettings = janitor_settings,
        clock: Clock = clock,
        daily_at: datetime | None = None,
    ) -> Worker:
        worker = make_worker(
            settings,
            clock=clock,
            daily_at=daily_at.time() if daily_at else None,
            handle_signals=False,
            poll_delay=0.05,
        )
        running.append((worker, asyncio.create_task(worker.async_run())))
        return worker

    yield start
    for worker, task in running:
        worker.handle_sig(15)
        await asyncio.gather(task, return_exceptions=True)
        await worker.close()


@pytest.fixture
async def gate(s3_server: S3Server) -> AsyncIterator[DeleteGate]:
    gate = await DeleteGate(s3_server.url).start()
    try:
        yield gate
    finally:
        await gate.close()


def through(settings: JanitorSettings, gate: DeleteGate) -> JanitorSettings:
    return settings.model_copy(update={"s3_endpoint_url": gate.url})


async def wait_until(
    pool: ArqRedis, run_id: str, state: CleanupState, timeout: float = 20
) -> CleanupStatus:
    async with asyncio.timeout(timeout):
        while (status := await cleanup_status(pool, run_id)).state is not state:
            await asyncio.sleep(0.05)
    return status


async def finished_runs(pool: ArqRedis) -> list[CleanupResult]:
    results = await pool.all_job_results()
    return [CleanupResult.from_stored(r.result) for r in results if r.function == CLEANUP_FUNCTION]


async def seed_expired(s3: S3Client, bucket: str, count: int = 3) -> list[str]:
    prefixes, objects = [], {}
    for i in range(count):
        prefix, folder_objects = folder("g", f"job-{i}", expired_at=PAST)
        prefixes.append(prefix)
        objects |= folder_objects
    await put_objects(s3, bucket, objects)
    return prefixes


async def test_a_requested_run_is_queued_then_runs_and_keeps_its_result(
    s3: S3Client,
    janitor_settings: JanitorSettings,
    pool: ArqRedis,
    start_worker: StartWorker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    prefixes = await seed_expired(s3, janitor_settings.phfs_bucket)
    _, kept = folder("g", "job-new", expired_at=str(NOW + 60).encode())
    await put_objects(s3, janitor_settings.phfs_bucket, kept)
    run_id = await request_cleanup(pool)
    assert (await cleanup_status(pool, run_id)).state is CleanupState.QUEUED

    caplog.set_level(logging.INFO, logger="artifacts_janitor")
    await start_worker()
    status = await wait_until(pool, run_id, CleanupState.COMPLETE)

    result = status.result
    assert result is not None and result.run_id == run_id
    assert (result.outcome, result.folders_scanned, result.folders_deleted) == (
        RunOutcome.COMPLETED,
        4,
        3,
    )
    assert sorted(result.deleted) == prefixes
    assert result.started_at == datetime.fromtimestamp(NOW, tz=UTC)  # the injected clock
    assert set(await snapshot(s3, janitor_settings.phfs_bucket)) == set(kept)
    lines = [r.getMessage() for r in caplog.records if '"event": "cleanup_run"' in r.getMessage()]
    assert len(lines) == 1
    assert json.loads(lines[0])["foldersDeleted"] == 3


async def test_two_workers_and_three_simultaneous_requests_make_one_run(
    s3: S3Client, janitor_settings: JanitorSettings, pool: ArqRedis, start_worker: StartWorker
) -> None:
    await seed_expired(s3, janitor_settings.phfs_bucket)
    await start_worker()
    await start_worker()

    ids = await asyncio.gather(*(request_cleanup(pool) for _ in range(3)))

    assert len(set(ids)) == 1
    await wait_until(pool, ids[0], CleanupState.COMPLETE)
    await asyncio.sleep(0.3)  # room for a second run, were there one
    runs = await finished_runs(pool)
    assert [(r.run_id, r.folders_deleted) for r in runs] == [(ids[0], 3)]


async def test_a_request_while_a_run_is_running_gets_that_runs_id_and_later_a_new_one(
    s3: S3Client,
    janitor_settings: JanitorSettings,
    pool: ArqRedis,
    start_worker: StartWorker,
    gate: DeleteGate,
) -> None:
    await seed_expired(s3, janitor_settings.phfs_bucket)
    await start_worker(settings=through(janitor_settings, gate))
    first = await request_cleanup(pool)
    await asyncio.wait_for(gate.holding.wait(), timeout=20)
    assert (await cleanup_status(pool, first)).state is CleanupState.RUNNING

    assert await request_cleanup(pool) == first

    gate.open()
    await wait_until(pool, first, CleanupState.COMPLETE)
    second = await request_cleanup(pool)
    assert second != first
    done = await wait_until(pool, second, CleanupState.COMPLETE)
    assert done.result is not None and done.result.folders_deleted == 0


async def test_the_daily_cron_and_a_request_at_the_same_moment_make_one_run(
    s3: S3Client,
    janitor_settings: JanitorSettings,
    pool: ArqRedis,
    start_worker: StartWorker,
    gate: DeleteGate,
) -> None:
    await seed_expired(s3, janitor_settings.phfs_bucket)
    # Far enough ahead that both workers have started (and planned the cron) before it.
    daily_at = (datetime.now(UTC) + timedelta(seconds=6)).replace(microsecond=0)
    for _ in range(2):
        await start_worker(settings=through(janitor_settings, gate), daily_at=daily_at)
    await asyncio.sleep((daily_at - datetime.now(UTC)).total_seconds() - 0.2)

    requested = await request_cleanup(pool)  # a moment before the cron fires
    async with asyncio.timeout(10):
        while not (triggers := [r for r in await pool.all_job_results() if r.function == CRON]):
            await asyncio.sleep(0.05)
    gate.open()
    await wait_until(pool, requested, CleanupState.COMPLETE)

    assert [t.result for t in triggers] == [requested]
    assert [r.run_id for r in await finished_runs(pool)] == [requested]


async def test_runs_enqueued_around_the_slot_still_never_overlap(
    s3: S3Client,
    janitor_settings: JanitorSettings,
    pool: ArqRedis,
    start_worker: StartWorker,
    gate: DeleteGate,
) -> None:
    prefixes = await seed_expired(s3, janitor_settings.phfs_bucket)
    for _ in range(2):
        await start_worker(settings=through(janitor_settings, gate), clock=SystemClock())
    for _ in range(3):  # as an old client or an operator with arq's tools might
        await pool.enqueue_job(CLEANUP_FUNCTION, _queue_name=CLEANUP_QUEUE)
    await asyncio.wait_for(gate.holding.wait(), timeout=20)
    await asyncio.sleep(0.5)  # the other two are waiting for the lock meanwhile
    gate.open()

    async with asyncio.timeout(20):
        while len(runs := await finished_runs(pool)) < 3:
            await asyncio.sleep(0.1)
    ran = sorted((r for r in runs if r.outcome is RunOutcome.COMPLETED), key=lambda r: r.started_at)
    assert all(a.finished_at <= b.started_at for a, b in itertools.pairwise(ran))
    assert sum(r.folders_deleted for r in runs) == len(prefixes)


async def test_a_run_that_cannot_reach_its_bucket_is_reported_failed(
    janitor_settings: JanitorSettings, pool: ArqRedis, start_worker: StartWorker
) -> None:
    worker = await start_worker(
        settings=janitor_settings.model_copy(update={"phfs_bucket": "no-such"})
    )
    run_id = await request_cleanup(pool)
    status = await wait_until(pool, run_id, CleanupState.FAILED)
    assert status.error is not None and "NoSuchBucket" in status.error
    metrics = worker.ctx["janitor"].metrics
    assert metrics.runs.labels(outcome="failed", dry_run="false")._value.get() == 1


async def test_the_worker_serves_the_runs_figures_as_prometheus_counters(
    s3: S3Client, janitor_settings: JanitorSettings, pool: ArqRedis, start_worker: StartWorker
) -> None:
    await seed_expired(s3, janitor_settings.phfs_bucket, count=2)
    _, orphan = folder("g", "job-orphan")
    await put_objects(s3, janitor_settings.phfs_bucket, orphan)
    port = free_port()
    await start_worker(settings=janitor_settings.model_copy(update={"janitor_metrics_port": port}))
    await wait_until(pool, await request_cleanup(pool), CleanupState.COMPLETE)

    text = await asyncio.to_thread(
        lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    )
    lines = set(text.decode().splitlines())
    assert 'janitor_runs_total{dry_run="false",outcome="completed"} 1.0' in lines
    assert "janitor_folders_deleted_total 2.0" in lines
    assert "janitor_objects_deleted_total 6.0" in lines
    assert 'janitor_folders_skipped_total{reason="missing_expired_at"} 1.0' in lines
    assert "janitor_rescans_total 1.0" in lines  # the first run on a new Redis rescans
    assert "janitor_index_entries 0.0" in lines


async def test_a_run_asked_to_rescan_finds_what_the_index_missed_and_others_do_not_rescan(
    s3: S3Client, janitor_settings: JanitorSettings, pool: ArqRedis, start_worker: StartWorker
) -> None:
    bucket = janitor_settings.phfs_bucket
    await start_worker()
    first = await wait_until(pool, await request_cleanup(pool), CleanupState.COMPLETE)
    assert first.result is not None and first.result.rescanned  # a new Redis: no rescan yet
    # Collected while the index was not fed: only a rescan finds it.
    _, missed = folder("g", "job-missed", expired_at=PAST)
    await put_objects(s3, bucket, missed)

    daily = await wait_until(pool, await request_cleanup(pool), CleanupState.COMPLETE)
    asked = await wait_until(pool, await request_cleanup(pool, rescan=True), CleanupState.COMPLETE)

    assert daily.result is not None and not daily.result.rescanned
    assert daily.result.folders_deleted == 0
    assert asked.result is not None and asked.result.rescanned
    assert (asked.result.rescan_found, asked.result.folders_deleted) == (1, 1)
    assert await snapshot(s3, bucket) == {}
    assert await pool.exists(RESCAN_REQUEST_KEY) == 0
