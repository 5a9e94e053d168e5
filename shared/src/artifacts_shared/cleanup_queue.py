"""How the api asks the janitor for a cleanup run, and reads how it went.

The api and the janitor never import each other (ARCHITECTURE section 2); this module is
their whole agreement on the arq queue. The api calls two functions with an arq pool
(``arq.connections.create_pool``) on the same Redis as the janitor:

``await request_cleanup(pool) -> RunId``
    Enqueue a run of ``cleanup_expired_artifacts`` and return its id, or return the id of
    the run that is already queued or running (section 6: "a second request while one is
    queued or running returns that run's id"). Safe to call from any number of api
    replicas at once: they all get the same id. The janitor's daily cron asks through the
    same function, so a cron run and an admin's request never make two runs.

``await cleanup_status(pool, run_id) -> CleanupStatus``
    ``queued``, ``running``, ``complete`` (with the ``CleanupResult``), ``failed`` (with
    the error) or ``not_found`` (unknown id, or its result has expired: results are kept
    for ``JANITOR_RESULT_TTL_SECONDS``, 7 days by default).

Redis keys (besides arq's own ``arq:job:<id>``, ``arq:in-progress:<id>``, ``arq:result:<id>``):

``artifacts:janitor:queue``
    the arq queue (sorted set) the janitor's workers read; runs are enqueued here.
``artifacts:cleanup:current``
    the id of the last requested run: the "slot". It is written in the same MULTI as the
    run's arq job, so no caller ever sees a slot without its job. The run it names is
    *active* while arq still holds its job (queued, or started and holding the run lock);
    once the job is finished, failed or expired, the next request replaces the slot.
``artifacts:cleanup:lock``
    the run lock: ``"<run id> <attempt>"`` of the run that is deleting, with a lease
    (``JANITOR_LOCK_SECONDS``, 60 s by default) that the running janitor renews. A run
    that finds it taken waits one lease and then gives up, so two runs never overlap,
    whatever enqueued them; a crashed janitor's lease lapses, so it never blocks a later
    run. A started run that does not hold the lock after a short grace is taken for
    crashed, and the next request starts a fresh run.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import NewType

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix
from arq.jobs import Job, JobStatus, serialize_job
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from artifacts_shared.cleanup_result import CleanupResult
from artifacts_shared.redis import CLEANUP_FUNCTION

__all__ = [
    "CLEANUP_QUEUE",
    "CURRENT_RUN_KEY",
    "RUN_LOCK_KEY",
    "CleanupState",
    "CleanupStatus",
    "RunId",
    "cleanup_status",
    "current_run_id",
    "lock_holder",
    "lock_token",
    "request_cleanup",
]

RunId = NewType("RunId", str)
"""An arq job id of a cleanup run, ``cleanup-20250925T030000Z-3f2a9c1b``."""

CLEANUP_QUEUE = "artifacts:janitor:queue"
CURRENT_RUN_KEY = "artifacts:cleanup:current"
RUN_LOCK_KEY = "artifacts:cleanup:lock"

# The slot only outlives its run for garbage collection: arq drops a job nobody started
# within a day, and a run is bounded by the janitor's timeout (at most 23 hours).
_SLOT_TTL_MS = 2 * 86_400_000
_STARTUP_GRACE_SECONDS = 2.0
_MAX_ATTEMPTS = 50
_RUN_ID = re.compile(r"[A-Za-z0-9:._-]{1,200}")


def _new_run_id() -> RunId:
    return RunId(f"cleanup-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}")


def lock_token(run_id: str, attempt: int) -> str:
    """The run lock's value for one attempt of a run (arq retries reuse the run id)."""
    return f"{run_id} {attempt}"


def lock_holder(token: bytes | str | None) -> RunId | None:
    """The run id in a run lock's value, None when nobody holds the lock."""
    if token is None:
        return None
    text = token.decode() if isinstance(token, bytes) else token
    return RunId(text.split(" ", 1)[0])


async def current_run_id(pool: ArqRedis) -> RunId | None:
    """The id in the slot: the last requested run, whether or not it is still active."""
    raw = await pool.get(CURRENT_RUN_KEY)
    return None if raw is None else RunId(raw.decode())


async def request_cleanup(
    pool: ArqRedis, *, startup_grace: float = _STARTUP_GRACE_SECONDS
) -> RunId:
    """Enqueue a cleanup run, or return the id of the one queued or running.

    Optimistic locking (WATCH/MULTI) on the slot makes this race-free across callers:
    whoever changes the slot first wins, the others retry and find the winner's run.
    """
    for _ in range(_MAX_ATTEMPTS):
        async with pool.pipeline(transaction=True) as pipe:
            await pipe.watch(CURRENT_RUN_KEY)
            current = await pipe.get(CURRENT_RUN_KEY)
            if current is not None:
                active = RunId(current.decode())
                if await _is_active(pipe, active, startup_grace):
                    return active
            run_id = _new_run_id()
            enqueued_ms = int(time.time() * 1000)
            job = serialize_job(
                CLEANUP_FUNCTION, (), {}, None, enqueued_ms, serializer=pool.job_serializer
            )
            # The same three writes as arq's enqueue_job, plus the slot, in one MULTI:
            # nobody can see the slot name a run whose job is not there yet.
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.set(CURRENT_RUN_KEY, run_id, px=_SLOT_TTL_MS)
            pipe.psetex(job_key_prefix + run_id, pool.expires_extra_ms, job)
            pipe.zadd(CLEANUP_QUEUE, {run_id: enqueued_ms})
            try:
                await pipe.execute()
            except WatchError:
                continue
            return run_id
    raise RuntimeError(f"could not enqueue a cleanup run in {_MAX_ATTEMPTS} attempts")


async def _is_active(pipe: Pipeline, run_id: RunId, startup_grace: float) -> bool:
    """Whether ``run_id`` is queued, or started and alive (holding the run lock).

    arq keeps a job's key from enqueue to finish, and marks it in progress when a worker
    takes it; a worker killed mid-run leaves that mark until arq's timeout. The run lock
    tells the two apart: a live run holds it within moments of starting and renews it.
    """
    deadline = time.monotonic() + startup_grace
    while True:
        if not await pipe.exists(job_key_prefix + run_id):
            return False
        if not await pipe.exists(in_progress_key_prefix + run_id):
            return True
        if lock_holder(await pipe.get(RUN_LOCK_KEY)) == run_id:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.1)


class CleanupState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"
    NOT_FOUND = "not_found"


class CleanupStatus(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    run_id: str
    state: CleanupState
    enqueued_at: datetime | None = None
    result: CleanupResult | None = None
    error: str | None = None


async def cleanup_status(pool: ArqRedis, run_id: str) -> CleanupStatus:
    """Where run ``run_id`` stands, with its result once it has finished."""
    if not _RUN_ID.fullmatch(run_id):
        return CleanupStatus(run_id=run_id, state=CleanupState.NOT_FOUND)
    job = Job(run_id, pool, _queue_name=CLEANUP_QUEUE, _deserializer=pool.job_deserializer)
    status = await job.status()
    if status is JobStatus.complete:
        return await _finished(job, run_id)
    info = await job.info()
    if status is JobStatus.not_found or info is None:
        return CleanupStatus(run_id=run_id, state=CleanupState.NOT_FOUND)
    state = CleanupState.RUNNING if status is JobStatus.in_progress else CleanupState.QUEUED
    return CleanupStatus(run_id=run_id, state=state, enqueued_at=info.enqueue_time)


async def _finished(job: Job, run_id: str) -> CleanupStatus:
    info = await job.result_info()
    if info is None:  # the result expired between the two reads
        return CleanupStatus(run_id=run_id, state=CleanupState.NOT_FOUND)
    if not info.success:
        return CleanupStatus(
            run_id=run_id,
            state=CleanupState.FAILED,
            enqueued_at=info.enqueue_time,
            error=f"{type(info.result).__name__}: {info.result}",
        )
    try:
        result = CleanupResult.from_stored(info.result)
    except ValidationError as err:
        return CleanupStatus(
            run_id=run_id,
            state=CleanupState.FAILED,
            enqueued_at=info.enqueue_time,
            error=f"unreadable result: {err.errors(include_url=False)[0]['msg']}",
        )
    return CleanupStatus(
        run_id=run_id, state=CleanupState.COMPLETE, enqueued_at=info.enqueue_time, result=result
    )
