"""How the api asks the janitor for a cleanup run, and reads how it went.

The api and the janitor never import each other (ARCHITECTURE section 2); this module is
their whole agreement on the arq queue. The api calls two functions with an arq pool
(``arq.connections.create_pool``) on the same Redis as the janitor:

``await request_cleanup(pool, rescan=False) -> RunId``
    Enqueue a run of ``cleanup_expired_artifacts`` and return its id, or return the id of
    the run that is already queued or running (section 6: "a second request while one is
    queued or running returns that run's id"). Safe to call from any number of api
    replicas at once: they all get the same id. The janitor's daily cron asks through the
    same function, so a cron run and an admin's request never make two runs.
    ``rescan=True`` also asks for the reconciling full scan: the next run to start does it.

``await cleanup_status(pool, run_id) -> CleanupStatus``
    ``queued``, ``running``, ``complete`` (with the ``CleanupResult``), ``failed`` (with
    the error) or ``not_found`` (unknown id, or its result has expired: results are kept
    for ``JANITOR_RESULT_TTL_SECONDS``, 7 days by default).

How "one run at a time" works: run ids are numbered, ``cleanup-<epoch>-<n>``. A caller
that finds the last requested run finished asks arq for run ``n + 1`` with
``enqueue_job(_job_id=...)``; every caller that saw run ``n`` finish asks for the same id,
arq enqueues it once (the others get ``None``), and all of them return that id.

Redis keys (besides arq's own ``arq:job:<id>``, ``arq:in-progress:<id>``, ``arq:result:<id>``):

``artifacts:janitor:queue``
    the arq queue (sorted set) the janitor's workers read; runs are enqueued here.
``artifacts:cleanup:current``
    the id of the last requested run: the "slot", moved on only after arq holds the next
    run's job. The run it names is *active* while arq still holds its job (queued, or
    started and holding the run lock); once the job is finished, failed or expired, the
    next request asks for the following run. The epoch is drawn when the slot is first
    made, so ids stay unique after a Redis that lost its data.
``artifacts:cleanup:lock``
    the run lock (redis-py's ``Lock``): ``"<run id> <attempt>"`` of the run that is
    deleting, with a lease (``JANITOR_LOCK_SECONDS``, 60 s by default) that the running
    janitor renews. A run that finds it taken waits one lease and then gives up, so two
    runs never overlap, whatever enqueued them; a crashed janitor's lease lapses, so it
    never blocks a later run. A started run that does not hold the lock after a short
    grace is taken for crashed, and the next request starts a fresh run.
``artifacts:cleanup:rescan``
    set by ``request_cleanup(rescan=True)``; the next run to start takes it and rescans.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
import uuid
from datetime import datetime
from enum import StrEnum
from typing import NewType

from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel
from redis.exceptions import WatchError

from artifacts_shared.cleanup_result import CleanupResult
from artifacts_shared.redis import CLEANUP_FUNCTION

__all__ = [
    "CLEANUP_QUEUE",
    "CURRENT_RUN_KEY",
    "RESCAN_REQUEST_KEY",
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
"""An arq job id of a cleanup run, ``cleanup-3f2a9c1b-42``."""

CLEANUP_QUEUE = "artifacts:janitor:queue"
CURRENT_RUN_KEY = "artifacts:cleanup:current"
RUN_LOCK_KEY = "artifacts:cleanup:lock"
RESCAN_REQUEST_KEY = "artifacts:cleanup:rescan"

# The slot only outlives its run for garbage collection: arq drops a job nobody started
# within a day, and a run is bounded by the janitor's timeout (at most 23 hours).
_SLOT_TTL_MS = 2 * 86_400_000
_STARTUP_GRACE_SECONDS = 2.0
_MAX_ATTEMPTS = 50
_RUN_ID = re.compile(r"[A-Za-z0-9:._-]{1,200}")
_NUMBERED = re.compile(r"cleanup-([0-9a-f]{8})-([0-9]{1,18})")


def _following(run_id: str) -> RunId:
    """The id of the run after ``run_id``: the same for every caller that saw ``run_id``."""
    numbered = _NUMBERED.fullmatch(run_id)
    if numbered is not None:
        return RunId(f"cleanup-{numbered[1]}-{int(numbered[2]) + 1}")
    # An id of another form (an older release's): a new epoch, derived, not drawn.
    epoch = hashlib.sha256(run_id.encode()).hexdigest()[:8]
    return RunId(f"cleanup-{epoch}-1")


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
    pool: ArqRedis, *, rescan: bool = False, startup_grace: float = _STARTUP_GRACE_SECONDS
) -> RunId:
    """Enqueue a cleanup run, or return the id of the one queued or running."""
    if rescan:
        await pool.set(RESCAN_REQUEST_KEY, b"1")
    for _ in range(_MAX_ATTEMPTS):
        current = await current_run_id(pool)
        if current is None:
            # Run 0 of a new epoch, which has no job: the next step asks for run 1.
            await pool.set(
                CURRENT_RUN_KEY, f"cleanup-{uuid.uuid4().hex[:8]}-0", nx=True, px=_SLOT_TTL_MS
            )
            continue
        if await _is_active(pool, current, startup_grace):
            return current
        following = _following(current)
        # None when another caller enqueued it first: either way arq now holds it.
        await pool.enqueue_job(CLEANUP_FUNCTION, _job_id=following, _queue_name=CLEANUP_QUEUE)
        await _advance_slot(pool, current, following)
    raise RuntimeError(f"could not enqueue a cleanup run in {_MAX_ATTEMPTS} attempts")


async def _advance_slot(pool: ArqRedis, seen: RunId, following: RunId) -> None:
    """Point the slot at ``following`` unless someone has moved it on from ``seen`` already."""
    async with pool.pipeline(transaction=True) as pipe:
        await pipe.watch(CURRENT_RUN_KEY)
        if await pipe.get(CURRENT_RUN_KEY) != seen.encode():
            return
        pipe.multi()  # type: ignore[no-untyped-call]
        pipe.set(CURRENT_RUN_KEY, following, px=_SLOT_TTL_MS)
        try:
            await pipe.execute()
        except WatchError:
            pass  # moved on by another caller: the next look finds where


async def _is_active(pool: ArqRedis, run_id: RunId, startup_grace: float) -> bool:
    """Whether ``run_id`` is queued, or started and alive (holding the run lock).

    arq keeps a job from enqueue to finish, and marks it in progress when a worker takes
    it; a worker killed mid-run leaves that mark until arq's timeout. The run lock tells
    the two apart: a live run holds it within moments of starting and renews it.
    """
    job = Job(run_id, pool, _queue_name=CLEANUP_QUEUE, _deserializer=pool.job_deserializer)
    deadline = time.monotonic() + startup_grace
    while True:
        status = await job.status()
        if status in (JobStatus.queued, JobStatus.deferred):
            # arq drops a job nobody started within a day; its queue entry may linger.
            return await job.info() is not None
        if status is not JobStatus.in_progress:
            return False
        if lock_holder(await pool.get(RUN_LOCK_KEY)) == run_id:
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
