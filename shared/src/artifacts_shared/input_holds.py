"""Input holds: a job that has not started yet holds the artifact folders it will read.

A job created with ``inputArtifacts`` reads other jobs' folders only when it starts, which
may be hours later (a queue, an unschedulable pod). Until then the janitor must not delete
them, even past their ``expiredAt``. The api records a hold when it creates such a job; the
controller releases it once the inputs are placed (the job is running), or the job has
ended, was cancelled or deleted; the janitor's daily run defers a due folder that a hold
names, and says which job waits for it.

Redis, one sorted set per source folder, ``artifacts:input-holds:<prefix>``: members are
the waiting jobs' ids, scores when each hold began (UNIX seconds). A hold older than
``ARTIFACT_INPUT_HOLD_SECONDS`` no longer holds anything, so a job stuck in Pending (or
one deleted while the controller was down, whose hold nobody releases) cannot keep a
folder forever; each key also expires that long after its newest hold, so nothing is
left behind in Redis.

A hold only *defers* a deletion; it never makes one. If Redis loses the holds, the janitor
deletes expired folders on time, and a job that starts later fails before its command
runs, saying that its input's artifacts are gone (``artifacts_controller.inputs``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pydantic import Field
from redis.asyncio import Redis

from artifacts_shared.layout import JobPrefix, UnsafeNameError, parse_job_prefix
from artifacts_shared.phjob import is_job_id
from artifacts_shared.settings import BaseServiceSettings

__all__ = ["DEFAULT_HOLD_SECONDS", "INPUT_HOLDS_KEY", "Hold", "InputHoldSettings", "InputHolds"]

INPUT_HOLDS_KEY = "artifacts:input-holds:"
"""The prefix of each source folder's sorted set; the folder's prefix follows it."""
DEFAULT_HOLD_SECONDS = 7 * 86_400


class InputHoldSettings(BaseServiceSettings):
    """How long a job that has not started may hold its input folders."""

    artifact_input_hold_seconds: int = Field(
        DEFAULT_HOLD_SECONDS,
        ge=60,
        le=365 * 86_400,
        description="whole seconds from 60 to 31536000: how long a job that has not started "
        "keeps its input artifacts from being deleted",
    )


@dataclass(frozen=True, slots=True)
class Hold:
    """A job waiting to read a folder, since ``since``, at most until ``until`` (UNIX seconds)."""

    job_id: str
    since: int
    until: int


def _key(prefix: str) -> str:
    if parse_job_prefix(prefix) is None:
        raise UnsafeNameError(f"{prefix!r} is not a job folder prefix")
    return f"{INPUT_HOLDS_KEY}{prefix}"


class InputHolds:
    """The holds on one Redis client; the caller owns the client.

    ``hold_seconds`` bounds holds (``hold``, ``waiting``): the api and the janitor pass
    their ``ARTIFACT_INPUT_HOLD_SECONDS``; the controller only releases, which needs none.
    """

    def __init__(self, redis: Redis, *, hold_seconds: int = DEFAULT_HOLD_SECONDS) -> None:
        self._redis = redis
        self.hold_seconds = hold_seconds

    async def hold(self, job_id: str, prefixes: Iterable[JobPrefix], *, now: float) -> None:
        """``job_id`` will read ``prefixes`` when it starts: keep them until then."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for prefix in dict.fromkeys(prefixes):
                key = _key(prefix)
                pipe.zadd(key, {job_id: int(now)})
                # The newest hold is now's: the key need not outlive it.
                pipe.expire(key, self.hold_seconds)
            await pipe.execute()

    async def release(self, job_id: str, prefixes: Iterable[JobPrefix]) -> None:
        """``job_id`` no longer needs ``prefixes``: placed, ended, cancelled or deleted."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for prefix in dict.fromkeys(prefixes):
                pipe.zrem(_key(prefix), job_id)
            await pipe.execute()

    async def waiting(
        self, prefixes: Sequence[JobPrefix], *, now: float
    ) -> dict[JobPrefix, list[Hold]]:
        """The holds still in force on each of ``prefixes`` (only those that have some).

        One round trip for all of them; holds older than ``hold_seconds`` are left out,
        and members that are not job ids (nothing of ours writes them) too.
        """
        if not prefixes:
            return {}
        oldest = now - self.hold_seconds
        async with self._redis.pipeline(transaction=False) as pipe:
            for prefix in prefixes:
                pipe.zrangebyscore(_key(prefix), oldest, "+inf", withscores=True)
            answers = await pipe.execute()
        found: dict[JobPrefix, list[Hold]] = {}
        for prefix, members in zip(prefixes, answers, strict=True):
            holds = [
                Hold(job, int(score), int(score) + self.hold_seconds)
                for member, score in members
                if is_job_id(job := member.decode("utf-8", "replace"))
            ]
            if holds:
                found[prefix] = holds
        return found
