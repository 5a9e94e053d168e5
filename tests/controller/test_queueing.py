"""Per-object queues: one pass at a time per key, keys in parallel, bursts coalesced."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from artifacts_controller.queueing import Backoff, KeyedQueue


class Depth:
    """The queue's depth as its metric sees it (``on_depth``), and a way to wait for 0."""

    def __init__(self) -> None:
        self.idle = asyncio.Event()

    def __call__(self, depth: int) -> None:
        if depth == 0:
            self.idle.set()
        else:
            self.idle.clear()


async def test_one_key_is_never_handled_twice_at_once_and_keys_run_in_parallel() -> None:
    active: Counter[str] = Counter()
    most_per_key: Counter[str] = Counter()
    most_overall = 0
    passes: Counter[str] = Counter()

    async def handle(key: str) -> None:
        nonlocal most_overall
        active[key] += 1
        most_per_key[key] = max(most_per_key[key], active[key])
        most_overall = max(most_overall, sum(active.values()))
        passes[key] += 1
        await asyncio.sleep(0.05)
        active[key] -= 1

    depth = Depth()
    queue = KeyedQueue(
        handle, max_parallel=4, backoff_initial=0.01, backoff_max=0.05, on_depth=depth
    )
    async with queue:
        for _ in range(10):  # a burst of events for each of six objects
            for key in "abcdef":
                queue.submit(key)
            await asyncio.sleep(0.001)
        await asyncio.wait_for(depth.idle.wait(), 5)

    assert set(most_per_key.values()) == {1}
    assert most_overall == 4  # bounded by max_parallel, and really parallel
    # Ten events during a pass make one more pass, not ten.
    assert all(1 <= count <= 3 for count in passes.values()), passes


async def test_a_failing_key_is_retried_without_blocking_the_others() -> None:
    attempts: Counter[str] = Counter()
    done: list[str] = []

    async def handle(key: str) -> None:
        attempts[key] += 1
        if key == "bad" and attempts[key] < 3:
            raise RuntimeError("API hiccup")
        done.append(key)

    depth = Depth()
    queue = KeyedQueue(
        handle, max_parallel=1, backoff_initial=0.05, backoff_max=0.1, on_depth=depth
    )
    async with queue:
        queue.submit("bad")
        await asyncio.sleep(0.01)
        queue.submit("good")
        await asyncio.wait_for(depth.idle.wait(), 5)
    assert done == ["good", "bad"]  # the retry waited outside its slot
    assert attempts == Counter({"bad": 3, "good": 1})


def test_backoff_grows_to_its_bound_and_resets() -> None:
    backoff = Backoff(initial=0.5, maximum=4.0)
    delays = [backoff.next_delay() for _ in range(8)]
    assert delays[0] <= 0.5 and delays[1] > delays[0]
    assert max(delays) <= 4.0 and delays[-1] >= 4.0 * 0.8
    backoff.reset()
    assert backoff.next_delay() <= 0.5


async def test_submitting_to_a_stopped_queue_is_an_error() -> None:
    async def handle(key: str) -> None:
        pass

    queue = KeyedQueue(handle, max_parallel=1, backoff_initial=0.1, backoff_max=1)
    with pytest.raises(RuntimeError):
        queue.submit("a")
    async with queue:
        queue.submit("a")
    with pytest.raises(RuntimeError):
        queue.submit("a")  # after the block too
