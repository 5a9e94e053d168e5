"""The arq worker: ``cleanup_expired_artifacts`` on demand, and a daily cron that asks for it.

The cron does not run the cleanup itself: it requests a run through
``artifacts_shared.cleanup_queue.request_cleanup``, exactly as the api does. Both paths
share one slot, so an admin pressing the button at 03:00 gets the cron's run id instead
of a second run, and the cron is ``unique`` so any number of replicas fire it once.
Inside the job, the run lock makes sure no two runs delete at once, whoever enqueued
them.

Clients are opened in ``on_startup`` and closed in ``on_shutdown`` (arq's lifecycle);
the clock comes in through ``ctx["clock"]`` so tests can choose "now".
"""

from __future__ import annotations

import json
import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any

from arq.connections import ArqRedis
from arq.connections import RedisSettings as ArqRedisSettings
from arq.cron import cron
from arq.worker import Worker, func

from artifacts_janitor.cleanup import CleanupOptions, run_cleanup
from artifacts_janitor.clock import Clock, SystemClock
from artifacts_janitor.metrics import JanitorMetrics, MetricsServer
from artifacts_janitor.run_lock import RunLock
from artifacts_janitor.settings import JanitorSettings
from artifacts_shared.cleanup_queue import (
    CLEANUP_QUEUE,
    RESCAN_REQUEST_KEY,
    RunId,
    current_run_id,
    lock_token,
    request_cleanup,
)
from artifacts_shared.cleanup_result import CleanupResult, RunOutcome
from artifacts_shared.redis import CLEANUP_FUNCTION
from artifacts_shared.retention import RecordSigner
from artifacts_shared.s3 import S3Client, open_s3

__all__ = [
    "Janitor",
    "cleanup_expired_artifacts",
    "make_worker",
    "request_daily_cleanup",
]

logger = logging.getLogger("artifacts_janitor")

DAILY_CRON = "cron:request_daily_cleanup"
HEALTH_CHECK_SECONDS = 30
"""How often the worker records its health; the liveness probe reads that record."""
# Below a pod's usual 30 s termination grace: a run asked to stop is cancelled, releases
# its lock and is re-queued by arq, so another replica carries on at once.
_JOB_COMPLETION_WAIT = 20


@dataclass(frozen=True, slots=True)
class Janitor:
    """What a cleanup job needs, built once per worker process in ``on_startup``."""

    settings: JanitorSettings
    s3: S3Client
    redis: ArqRedis
    clock: Clock
    metrics: JanitorMetrics

    @property
    def options(self) -> CleanupOptions:
        return CleanupOptions(
            dry_run=self.settings.janitor_dry_run,
            orphan_retention_seconds=self.settings.janitor_orphan_retention_seconds,
            concurrency=self.settings.janitor_concurrency,
            rescan_every=self.settings.janitor_rescan_every,
            daily_at=self.settings.janitor_daily_at,
            records=RecordSigner.for_settings(self.settings),
            input_hold_seconds=self.settings.artifact_input_hold_seconds,
        )

    async def run(self, run_id: str, *, attempt: int = 1, rescan: bool = False) -> CleanupResult:
        """One run under the run lock, reported; a skip when another run has the lock.

        The run rescans when ``rescan`` says so, when someone asked for it through the
        queue (``request_cleanup(rescan=True)``), or when ``JANITOR_RESCAN_EVERY`` has
        passed since the last rescan.
        """
        if attempt > 1 and await current_run_id(self.redis) != run_id:
            # arq retries a run whose worker died; if a newer run has been requested since,
            # that one does the work.
            return self._report(self._skipped(run_id, "superseded by a newer run"))
        lock = RunLock(
            self.redis, lock_token(run_id, attempt), lease=self.settings.janitor_lock_seconds
        )
        # One lease is long enough for a crashed holder's lease to lapse.
        if not await lock.acquire(wait=lock.lease + 1):
            return self._report(self._skipped(run_id, f"run {lock.holder} holds the run lock"))
        async with lock.kept() as lost:
            try:
                # Taken only by a run that holds the lock, so a skipped run leaves it.
                asked = await self.redis.getdel(RESCAN_REQUEST_KEY) is not None
                result = await run_cleanup(
                    s3=self.s3,
                    bucket=self.settings.phfs_bucket,
                    redis=self.redis,
                    clock=self.clock,
                    run_id=run_id,
                    options=self.options,
                    rescan_now=rescan or asked,
                    stop=lost,
                )
            except Exception:
                # arq keeps the error as the run's result and logs it; count it for alerts.
                self.metrics.failed(dry_run=self.settings.janitor_dry_run)
                raise
        return self._report(result)

    def _skipped(self, run_id: str, note: str) -> CleanupResult:
        now = datetime.fromtimestamp(self.clock.now(), tz=UTC)
        return CleanupResult(
            run_id=run_id,
            outcome=RunOutcome.SKIPPED,
            note=note,
            dry_run=self.settings.janitor_dry_run,
            started_at=now,
            finished_at=now,
            duration_seconds=0,
        )

    def _report(self, result: CleanupResult) -> CleanupResult:
        self.metrics.observe(result)
        # One structured line per run; the names of every folder were logged as decided.
        logger.info(json.dumps({"event": "cleanup_run", **result.to_stored()}))
        return result


async def cleanup_expired_artifacts(ctx: dict[Any, Any]) -> dict[str, Any]:
    """The arq job: one cleanup run; its result is kept as the job's result."""
    janitor: Janitor = ctx["janitor"]
    result = await janitor.run(RunId(ctx["job_id"]), attempt=int(ctx["job_try"]))
    return result.to_stored()


async def request_daily_cleanup(ctx: dict[Any, Any]) -> str:
    """The cron job: ask for a run the way the api does, and return its id."""
    return await request_cleanup(ctx["redis"])


async def _startup(ctx: dict[Any, Any]) -> None:
    settings: JanitorSettings = ctx["settings"]
    stack = AsyncExitStack()
    ctx["exit_stack"] = stack
    s3 = await stack.enter_async_context(
        open_s3(settings, max_connections=2 * settings.janitor_concurrency + 8)
    )
    metrics = JanitorMetrics()
    if settings.janitor_metrics_port:
        server = MetricsServer(metrics, port=settings.janitor_metrics_port)
        stack.callback(server.close)
    ctx["janitor"] = Janitor(
        settings=settings,
        s3=s3,
        redis=ctx["redis"],
        clock=ctx.get("clock") or SystemClock(),
        metrics=metrics,
    )


async def _shutdown(ctx: dict[Any, Any]) -> None:
    stack: AsyncExitStack | None = ctx.get("exit_stack")
    if stack is not None:
        await stack.aclose()


def arq_redis_settings(settings: JanitorSettings) -> ArqRedisSettings:
    return ArqRedisSettings.from_dsn(settings.redis_url)


def make_worker(
    settings: JanitorSettings,
    *,
    clock: Clock | None = None,
    daily_at: time | None = None,
    burst: bool = False,
    handle_signals: bool = True,
    poll_delay: float = 0.5,
) -> Worker:
    """The janitor's arq worker; ``daily_at`` (with seconds) overrides JANITOR_DAILY_AT."""
    at = daily_at or settings.janitor_daily_at
    return Worker(
        functions=[
            func(
                cleanup_expired_artifacts,
                name=CLEANUP_FUNCTION,
                timeout=settings.janitor_run_timeout_seconds,
                keep_result=settings.janitor_result_ttl_seconds,
            )
        ],
        cron_jobs=[
            cron(
                request_daily_cleanup,
                name=DAILY_CRON,
                hour=at.hour,
                minute=at.minute,
                second=at.second,
                unique=True,
                timeout=60,
                keep_result=86_400,
            )
        ],
        queue_name=CLEANUP_QUEUE,
        redis_settings=arq_redis_settings(settings),
        on_startup=_startup,
        on_shutdown=_shutdown,
        ctx={"settings": settings, "clock": clock or SystemClock()},
        burst=burst,
        handle_signals=handle_signals,
        poll_delay=poll_delay,
        job_completion_wait=_JOB_COMPLETION_WAIT,
        health_check_interval=HEALTH_CHECK_SECONDS,
        timezone=UTC,
        max_jobs=4,
    )
