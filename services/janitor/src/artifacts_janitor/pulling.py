"""Working through one stream of items, a fixed number at a time.

Both passes of a run pull folders from a streamed source -- the bucket's listing, the
expiry index -- rather than fanning every item out at once, so memory stays flat
however many there are.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

__all__ = ["first_error", "for_each"]

T = TypeVar("T")


async def for_each(
    source: AsyncIterator[T],
    workers: int,
    handle: Callable[[T], Awaitable[None]],
    *,
    stop: asyncio.Event | None,
) -> None:
    """``handle`` every item of ``source``, ``workers`` at a time, in arrival order."""
    # One shared iterator, read under a lock: an async generator cannot be advanced by
    # two tasks at once, and pulling (rather than fanning out) keeps memory bounded.
    turn = asyncio.Lock()

    async def work() -> None:
        while stop is None or not stop.is_set():
            async with turn:
                try:
                    item = await anext(source)
                except StopAsyncIteration:
                    return
            await handle(item)

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(workers):
                group.create_task(work())
    except ExceptionGroup as failed:
        # Only the source can fail (each item catches its own errors), and every worker
        # then meets the same failure: report that one.
        raise first_error(failed) from None


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first failure in a task group's exceptions, however deeply nested."""
    first = group.exceptions[0]
    return first_error(first) if isinstance(first, BaseExceptionGroup) else first
