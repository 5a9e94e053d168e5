"""A zip archive written while it is sent: no temporary file, memory bounded by one chunk.

``zipfile`` writes to any object with ``write``; given one without ``tell``/``seek`` it
switches to streaming mode (sizes and CRC in a data descriptor after each entry, the
central directory at the end). ``ZipStream`` feeds it chunks read from S3 and hands the
bytes it produced to an async sink after every chunk, so a slow client slows the S3 reads
(back-pressure) instead of filling memory.

Entries are stored, not deflated: artifacts are often already compressed (models, images,
archives), the api shares its CPU with every other request, and a stored entry streams at
the speed of the network. Entries larger than 4 GiB and archives of more than 65,535 files
get zip64 records.
"""

from __future__ import annotations

import stat
import zipfile
from collections.abc import Awaitable, Callable
from datetime import datetime

from artifacts_shared.manifest import PERMISSION_BITS

__all__ = ["ZipStream"]

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
"""The earliest time a zip entry can carry."""
_UNIX = 3
"""``create_system`` of an entry whose external attributes hold Unix mode bits."""


class _Buffer:
    """Collects what ``zipfile`` writes; deliberately has no ``tell`` (streaming mode)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes | memoryview) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


class ZipStream:
    def __init__(self, sink: Callable[[bytes], Awaitable[object]]) -> None:
        self._sink = sink
        self._buffer = _Buffer()
        self._zip = zipfile.ZipFile(self._buffer, mode="w", compression=zipfile.ZIP_STORED)

    async def _drain(self) -> None:
        data = self._buffer.take()
        if data:
            await self._sink(data)

    async def add(
        self,
        name: str,
        *,
        size: int,
        modified: datetime,
        chunks: Callable[[], Awaitable[bytes]],
        mode: int = 0o644,
    ) -> None:
        """Add ``name``: ``chunks()`` returns the next piece of its content, ``b""`` at the end.

        ``mode``: the file's permission bits; anything beyond ``0o777`` is dropped."""
        info = zipfile.ZipInfo(name, date_time=max(_ZIP_EPOCH, modified.timetuple()[:6]))
        info.compress_type = zipfile.ZIP_STORED
        # A regular file with its permission bits only: an unzip that restores modes
        # (Info-ZIP's does, for entries made on Unix) never makes a setuid file of ours.
        info.create_system = _UNIX
        info.external_attr = (stat.S_IFREG | (mode & PERMISSION_BITS)) << 16
        # Known up front so zipfile writes zip64 headers for entries beyond 4 GiB.
        info.file_size = size
        with self._zip.open(info, mode="w", force_zip64=size > zipfile.ZIP64_LIMIT) as entry:
            await self._drain()
            while chunk := await chunks():
                entry.write(chunk)
                await self._drain()
        await self._drain()

    async def close(self) -> None:
        self._zip.close()
        await self._drain()
