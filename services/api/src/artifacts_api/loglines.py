"""Lines of a job log in bounded memory: where the last N begin, and pages of lines.

A log is what a job wrote: bytes in any encoding, lines of any length, maybe no final
newline, maybe one 50 MB line. Nothing here holds more than a chunk, a page
(``PAGE_BYTES``) and one line cut at ``LINE_CAP`` bytes, whatever the log's size:

- ``tail_start`` reads a random-access log (a file, an S3 object) backwards from its end,
  a chunk at a time, to find the offset where its last N lines begin (``tailLines``);
- ``count_lines``, ``window`` and ``last_lines`` read a stream of chunks forwards: the
  number of lines, the lines ``offset..offset+limit-1`` (chunks wholly before or after the
  page are only counted, at C speed), and the last ``limit`` lines.

Lines are split on ``\\n``; a final line without one still counts. A page's text is decoded
as UTF-8 with replacement characters (the log itself is served as the job wrote it), a
trailing ``\\r`` dropped, and a line longer than ``LINE_CAP`` cut, saying how much is left out.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "CHUNK",
    "LINE_CAP",
    "PAGE_BYTES",
    "LinePage",
    "RandomAccessLog",
    "count_lines",
    "last_lines",
    "tail_start",
    "window",
]

CHUNK = 64 * 1024
LINE_CAP = 16 * 1024
"""Bytes of one line a page shows; the whole line is in the log itself (the download)."""
PAGE_BYTES = 2 * 1024 * 1024
"""Bytes of lines one page holds at most; a page of long lines has fewer than asked for."""


class RandomAccessLog(Protocol):
    """A log that can be read from any offset: a file, an S3 object."""

    def read(self, start: int, end: int) -> AsyncIterator[bytes]:
        """The bytes ``[start, end)``, in chunks of at most ``CHUNK`` bytes."""
        ...


@dataclass(frozen=True, slots=True)
class LinePage:
    offset: int
    """The index (0-based) of ``lines[0]`` in the whole log."""
    lines: list[str]
    total: int
    """How many lines the log held when it was read."""


def _text(content: bytes, length: int) -> str:
    text = content.decode("utf-8", "replace").removesuffix("\r")
    if length > len(content):
        text += f"… [{length - len(content)} more bytes in this line; download the log for all]"
    return text


class _Lines:
    """Chunks in, lines out: each line cut at ``LINE_CAP`` bytes, with its real length."""

    def __init__(self) -> None:
        self.completed = 0
        """Lines ended by a newline so far."""
        self._part = bytearray()
        self._part_length = 0
        self.pending = False
        """Whether bytes after the last newline started a line not yet ended."""

    def _extend(self, piece: bytes) -> None:
        room = LINE_CAP - len(self._part)
        if room > 0:
            self._part += piece[:room]
        self._part_length += len(piece)
        self.pending = self.pending or bool(piece)

    def _restart(self, piece: bytes) -> None:
        self._part = bytearray(piece[:LINE_CAP])
        self._part_length = len(piece)
        self.pending = bool(piece)

    def newlines_in(self, chunk: bytes) -> int:
        return chunk.count(b"\n")

    def skip(self, chunk: bytes, newlines: int) -> None:
        """Take ``chunk`` (holding ``newlines`` newlines) without producing its lines."""
        if newlines == 0:
            self._extend(chunk)
            return
        self.completed += newlines
        self._restart(chunk[chunk.rindex(b"\n") + 1 :])

    def split(self, chunk: bytes) -> list[tuple[int, bytes, int]]:
        """The lines ``chunk`` ends: ``(index, content cut at LINE_CAP, length)``."""
        ended: list[tuple[int, bytes, int]] = []
        start = 0
        while (newline := chunk.find(b"\n", start)) >= 0:
            self._extend(chunk[start:newline])
            ended.append((self.completed, bytes(self._part), self._part_length))
            self.completed += 1
            self._restart(b"")
            start = newline + 1
        self._extend(chunk[start:])
        return ended

    def finish(self) -> tuple[int, bytes, int] | None:
        """The last line, if the log did not end with a newline."""
        if not self.pending:
            return None
        line = (self.completed, bytes(self._part), self._part_length)
        self.completed += 1
        self._restart(b"")
        return line

    @property
    def total(self) -> int:
        return self.completed + (1 if self.pending else 0)


async def count_lines(chunks: AsyncIterator[bytes]) -> int:
    lines = _Lines()
    async for chunk in chunks:
        lines.skip(chunk, lines.newlines_in(chunk))
    return lines.total


async def window(chunks: AsyncIterator[bytes], *, offset: int, limit: int) -> LinePage:
    """Lines ``offset`` to ``offset + limit - 1`` of the log ``chunks`` holds from its start."""
    lines = _Lines()
    kept: list[str] = []
    size = 0
    end = offset + limit
    full = limit == 0

    def keep(index: int, content: bytes, length: int) -> None:
        nonlocal size, full
        if full or index < offset:
            return
        if index >= end or (kept and size + len(content) > PAGE_BYTES):
            full = True
            return
        kept.append(_text(content, length))
        size += len(content)

    async for chunk in chunks:
        newlines = lines.newlines_in(chunk)
        first = lines.completed
        if full or first + newlines < offset:
            lines.skip(chunk, newlines)
            continue
        for line in lines.split(chunk):
            keep(*line)
    last = lines.finish()
    if last is not None:
        keep(*last)
    return LinePage(offset=offset, lines=kept, total=lines.completed)


async def last_lines(chunks: AsyncIterator[bytes], *, limit: int) -> LinePage:
    """The last ``limit`` lines of the log ``chunks`` holds (fewer when they are long)."""
    lines = _Lines()
    kept: deque[tuple[bytes, int]] = deque()
    size = 0

    def keep(content: bytes, length: int) -> None:
        nonlocal size
        kept.append((content, length))
        size += len(content)
        while len(kept) > limit or (len(kept) > 1 and size > PAGE_BYTES):
            size -= len(kept.popleft()[0])

    async for chunk in chunks:
        for _, content, length in lines.split(chunk):
            keep(content, length)
    last = lines.finish()
    if last is not None:
        keep(last[1], last[2])
    total = lines.completed
    return LinePage(
        offset=total - len(kept),
        lines=[_text(content, length) for content, length in kept],
        total=total,
    )


async def _read_all(log: RandomAccessLog, start: int, end: int) -> bytes:
    return b"".join([chunk async for chunk in log.read(start, end)])


async def tail_start(log: RandomAccessLog, lines: int, *, size: int) -> int:
    """The offset in ``log[0:size]`` where its last ``lines`` lines begin."""
    if lines <= 0 or size == 0:
        return size
    seen = 0
    end = size
    final = True  # a newline that ends the log ends its last line; it starts none
    while end > 0:
        start = max(0, end - CHUNK)
        block = await _read_all(log, start, end)
        search = len(block)
        if final and block.endswith(b"\n"):
            search -= 1
        final = False
        while (newline := block.rfind(b"\n", 0, search)) >= 0:
            seen += 1
            if seen == lines:
                return start + newline + 1
            search = newline
        end = start
    return 0
