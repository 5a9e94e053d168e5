"""The log line algorithms against the plain reading of a log, and the file wake-ups.

``loglines`` reads in chunks with bounded memory; here every answer is compared with
what ``bytes.split`` says about the whole log held at once, for logs of any shape cut
into chunks anywhere (hypothesis), and across the 64 KiB blocks ``tail_start`` reads.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from artifacts_api.filewatch import FileWatcher, open_file_watcher
from artifacts_api.loglines import (
    CHUNK,
    LINE_CAP,
    PAGE_BYTES,
    count_lines,
    last_lines,
    tail_start,
    window,
)
from artifacts_api.logreaders import FileLog, SeekableLog, open_file_log


def reference_lines(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    return lines[:-1] if lines and lines[-1] == b"" else lines


def text(line: bytes) -> str:
    return line.decode("utf-8", "replace").removesuffix("\r")


class Memory:
    """A log held in memory, read as ``RandomAccessLog`` in chunks of ``CHUNK``."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def read(self, start: int, end: int) -> AsyncIterator[bytes]:
        for offset in range(start, end, CHUNK):
            yield self.data[offset : min(end, offset + CHUNK)]


async def chunked(data: bytes, cuts: list[int]) -> AsyncIterator[bytes]:
    start = 0
    for cut in [*sorted({c % (len(data) + 1) for c in cuts}), len(data)]:
        if cut > start:
            yield data[start:cut]
            start = cut


logs = st.lists(
    st.one_of(
        st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"")),
        st.just(b""),
        st.just("é€".encode()),
        st.just(b"\r"),
    ),
    max_size=30,
).flatmap(
    lambda parts: st.tuples(
        st.just(parts), st.booleans(), st.lists(st.integers(0, 500), max_size=8)
    )
)


def build(parts: list[bytes], final_newline: bool) -> bytes:
    data = b"\n".join(parts)
    return data + b"\n" if final_newline and parts else data


@settings(max_examples=300, deadline=None)
@given(logs, st.integers(0, 35), st.integers(0, 12))
async def test_window_and_last_lines_agree_with_splitting_the_whole_log(
    shape: tuple[list[bytes], bool, list[int]], offset: int, limit: int
) -> None:
    parts, final, cuts = shape
    data = build(parts, final)
    expected = reference_lines(data)

    page = await window(chunked(data, cuts), offset=offset, limit=limit)
    tail = await last_lines(chunked(data, cuts), limit=limit)
    total = await count_lines(chunked(data, cuts))

    assert total == len(expected)
    assert page.total == len(expected)
    assert page.lines == [text(line) for line in expected[offset : offset + limit]]
    assert tail.total == len(expected)
    kept = expected[max(0, len(expected) - limit) :] if limit else []
    assert tail.lines == [text(line) for line in kept]
    assert tail.offset == len(expected) - len(kept)


@settings(max_examples=300, deadline=None)
@given(logs, st.integers(0, 35))
async def test_tail_start_is_where_the_last_lines_begin(
    shape: tuple[list[bytes], bool, list[int]], count: int
) -> None:
    parts, final, _ = shape
    data = build(parts, final)

    start = await tail_start(Memory(data), count, size=len(data))

    expected = reference_lines(data)
    assert reference_lines(data[start:]) == (
        expected[max(0, len(expected) - count) :] if count else []
    )


@pytest.mark.parametrize("count", [1, 2, 1000, 40_000, 40_001, 10**6])
async def test_tail_start_across_many_blocks(count: int) -> None:
    data = b"".join(b"%07d\n" % i for i in range(40_000))  # 320 kB: five blocks
    start = await tail_start(Memory(data), count, size=len(data))
    assert start == max(0, len(data) - 8 * count)


async def test_a_huge_line_is_cut_with_its_length_and_pages_stay_within_their_bytes() -> None:
    huge = b"x" * (LINE_CAP * 3)
    data = huge + b"\n" + b"short\n" + (b"y" * (LINE_CAP - 1) + b"\n") * 200

    page = await window(chunked(data, [7, 70_000]), offset=0, limit=1000)
    tail = await last_lines(chunked(data, [1]), limit=1000)

    assert (
        page.lines[0]
        == "x" * LINE_CAP + f"… [{LINE_CAP * 2} more bytes in this line; download the log for all]"
    )
    assert page.lines[1] == "short"
    assert sum(len(line) for line in page.lines) <= PAGE_BYTES + LINE_CAP + 200
    assert len(page.lines) < 202 and page.total == 202
    assert sum(len(line) for line in tail.lines) <= PAGE_BYTES
    assert tail.offset + len(tail.lines) == 202


# --- following a file: inotify, and polling without it --------------------------------------


async def _follow(path: Path, watcher: FileWatcher, writes: list[bytes]) -> bytes:
    log = open_file_log(path)
    assert isinstance(log, FileLog)
    ended = asyncio.Event()

    async def has_ended() -> bool:
        return ended.is_set()

    reader = SeekableLog(
        log, source="LIVE", ended=has_ended, watch=lambda: watcher.watch(log.fd), close=log.close
    )
    chunks = await reader.stream(tail_lines=None, follow=True)
    received = b""

    async def job() -> None:
        for data in writes:
            await asyncio.sleep(0.05)
            with path.open("ab") as out:
                out.write(data)
        ended.set()

    writer = asyncio.create_task(job())
    async for chunk in chunks:
        received += chunk
    await writer
    await reader.aclose()
    return received


async def test_a_followed_file_is_read_as_written_with_inotify_and_without(
    tmp_path: Path,
) -> None:
    path = tmp_path / "job" / "job.log"
    path.parent.mkdir()
    path.write_bytes(b"a\n")
    async with open_file_watcher() as watcher:
        assert watcher.available  # Linux: the kernel wakes followers
        watched = await _follow(path, watcher, [b"b\n", b"c\n"])
    polled = await _follow(path, FileWatcher(), [b"d\n"])  # never started: no inotify

    assert watched == b"a\nb\nc\n"
    assert polled == b"a\nb\nc\nd\n"


async def test_two_followers_of_one_file_each_wake_and_leave_alone(tmp_path: Path) -> None:
    path = tmp_path / "job.log"
    path.write_bytes(b"")
    async with open_file_watcher() as watcher:
        first_fd = os.open(path, os.O_RDONLY)
        second_fd = os.open(path, os.O_RDONLY)
        first = watcher.watch(first_fd)
        second = watcher.watch(second_fd)
        assert first is not None and second is not None
        assert first.wd == second.wd  # one inode, one kernel watch
        first.close()
        second.arm()
        with path.open("ab") as out:
            out.write(b"x\n")
        await asyncio.wait_for(second.wait(5), 6)
        second.close()
        os.close(first_fd)
        os.close(second_fd)
