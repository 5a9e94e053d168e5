"""The expiry index: job folders by when they expire, so a cleanup run reads only what is due.

A Redis sorted set (ARCHITECTURE sections 6 and 10) at ``EXPIRY_INDEX_KEY``: each member
is a job prefix (``groups/<grouppath>/jobArtifacts/<job>/``), its score the folder's
``expiredAt`` in UNIX seconds. Whoever writes or changes an ``expiredAt`` adds the folder
here -- the uploader as it writes one, the controller when it sees a job's collection
end, the api when a user changes an expiry -- and the janitor's daily run takes what is
due (``ZRANGEBYSCORE``) instead of reading every folder of the bucket.

The index only says *when to look*: the janitor re-reads each candidate's ``expiredAt``
from S3 before deleting anything, so a stale, lost or forged entry deletes nothing early,
and a reconciling full scan (the janitor's rescan) adds what the index missed. A folder
kept forever (no ``expiredAt``) has no entry.

Needs Redis 6.2 or later (``ZADD LT``, ``ZRANGESTORE``, ``ZMSCORE``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from redis.asyncio import Redis

from artifacts_shared.layout import JobPrefix, UnsafeNameError, parse_job_prefix

__all__ = ["EXPIRY_INDEX_KEY", "ExpiryIndex", "IndexEntry"]

EXPIRY_INDEX_KEY = "artifacts:expiry-index"


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One member as stored: anyone who can write to Redis can put anything here."""

    member: bytes
    score: float

    @property
    def prefix(self) -> JobPrefix | None:
        """The job folder this entry names, None when it names anything else."""
        try:
            text = self.member.decode("utf-8")
        except UnicodeDecodeError:
            return None
        return JobPrefix(text) if parse_job_prefix(text) is not None else None

    @property
    def expired_at(self) -> int | None:
        """The score as ``expiredAt`` seconds, None when it is not a whole number."""
        return int(self.score) if self.score.is_integer() and self.score >= 0 else None


def _checked(prefix: str) -> str:
    if parse_job_prefix(prefix) is None:
        raise UnsafeNameError(f"{prefix!r} is not a job folder prefix")
    return prefix


class ExpiryIndex:
    """The index on one Redis client; the caller owns the client."""

    def __init__(self, redis: Redis, *, key: str = EXPIRY_INDEX_KEY) -> None:
        self._redis = redis
        self.key = key

    async def add(self, prefix: str, expired_at: int, *, keep_earlier: bool = False) -> None:
        """Index ``prefix`` as expiring at ``expired_at``.

        ``keep_earlier``: an estimate, which must not move an entry later than one
        written from the ``expiredAt`` itself (``ZADD LT``). An entry too early costs the
        janitor one look; one too late would delay the deletion.
        """
        await self._redis.zadd(self.key, {_checked(prefix): expired_at}, lt=keep_earlier)

    async def add_many(self, entries: Mapping[JobPrefix, int]) -> int:
        """Index every entry as read from S3; how many were missing or scored otherwise."""
        if not entries:
            return 0
        scores: dict[str, int] = {_checked(prefix): at for prefix, at in entries.items()}
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zmscore(self.key, list(scores))
            pipe.zadd(self.key, scores)
            before, _ = await pipe.execute()
        return sum(
            1 for score, value in zip(before, scores.values(), strict=True) if score != value
        )

    async def remove(self, *members: str | bytes) -> None:
        if members:
            await self._redis.zrem(self.key, *members)

    async def snapshot_due(self, now: float, into: str, *, ttl_seconds: int) -> int:
        """Copy every entry due at ``now`` to the sorted set ``into``; how many there are.

        A run works through its own copy (``pop``) while the index goes on changing, so
        an entry re-indexed later or left in place after a failure is not met twice.
        """
        async with self._redis.pipeline(transaction=True) as pipe:
            # redis-py annotates the bounds as int; with byscore Redis takes any score.
            pipe.zrangestore(into, self.key, "-inf", now, byscore=True)  # type: ignore[arg-type]
            pipe.expire(into, ttl_seconds)
            count, _ = await pipe.execute()
        return int(count)

    async def pop(self, snapshot: str, count: int) -> list[IndexEntry]:
        """Take the ``count`` earliest entries from a snapshot made by ``snapshot_due``."""
        popped = await self._redis.zpopmin(snapshot, count)
        return [
            IndexEntry(member if isinstance(member, bytes) else member.encode(), float(score))
            for member, score in popped
        ]

    async def drop_snapshot(self, snapshot: str) -> None:
        await self._redis.delete(snapshot)

    async def size(self) -> int:
        return int(await self._redis.zcard(self.key))
