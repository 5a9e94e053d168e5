"""Per-object work queues: one reconcile at a time per PhJob, many PhJobs at once.

As kopf's ``_core/reactor/queueing.py``: every PhJob has its own worker while it has work.
Events for a PhJob whose worker is busy are coalesced into one more pass (reconcile reads
the current state anyway, so ten events need one pass, not ten). A semaphore bounds how many
PhJobs are reconciled at once; a failing reconcile is retried after a growing delay without
holding a slot or blocking other PhJobs. ``async with`` a queue owns its workers: they run
inside the block, and leaving it by an error or a cancellation cancels them.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self

__all__ = ["Backoff", "KeyedQueue"]

log = logging.getLogger(__name__)


class Backoff:
    """Exponential delays between ``initial`` and ``maximum``, with jitter, reset on success."""

    def __init__(self, *, initial: float, maximum: float, factor: float = 2.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.attempts = 0

    def next_delay(self) -> float:
        delay = min(self.maximum, self.initial * self.factor**self.attempts)
        self.attempts += 1
        # Jitter keeps replicas and objects that failed together from retrying together.
        return delay * random.uniform(0.8, 1.0)

    def reset(self) -> None:
        self.attempts = 0


class KeyedQueue:
    """Runs ``handler(key)`` for submitted keys; serial per key, parallel across keys."""

    def __init__(
        self,
        handler: Callable[[str], Awaitable[object]],
        *,
        max_parallel: int,
        backoff_initial: float,
        backoff_max: float,
        on_depth: Callable[[int], None] | None = None,
    ) -> None:
        self._handler = handler
        self._slots = asyncio.Semaphore(max_parallel)
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._on_depth = on_depth
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()
        self._group: asyncio.TaskGroup | None = None

    async def __aenter__(self) -> Self:
        group = asyncio.TaskGroup()
        await group.__aenter__()
        self._group = group
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        group, self._group = self._group, None
        if group is not None:
            await group.__aexit__(kind, error, traceback)

    def submit(self, key: str) -> None:
        if key in self._workers:
            self._again.add(key)  # the busy worker makes one more pass
            return
        if self._group is None:
            raise RuntimeError("the queue is not running")
        self._workers[key] = self._group.create_task(self._work(key), name=f"reconcile {key}")
        self._report()

    async def _work(self, key: str) -> None:
        backoff = Backoff(initial=self._backoff_initial, maximum=self._backoff_max)
        try:
            while True:
                self._again.discard(key)
                async with self._slots:
                    try:
                        await self._handler(key)
                        ok = True
                    except Exception:
                        log.exception("reconciling %s failed; retrying", key)
                        ok = False
                if ok:
                    backoff.reset()
                    if key not in self._again:
                        return
                else:
                    await asyncio.sleep(backoff.next_delay())
        finally:
            del self._workers[key]
            self._again.discard(key)
            self._report()

    def _report(self) -> None:
        if self._on_depth is not None:
            self._on_depth(len(self._workers))
