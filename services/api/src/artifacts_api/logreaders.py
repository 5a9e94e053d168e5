"""Reading one job log, wherever it is kept: a local file, an S3 object, (``kube.py``) a pod.

Every reader is a ``JobLog``: ``stream`` sends the log's bytes as the job wrote them (the
whole log, or from where its last ``tailLines`` lines begin, then, with ``follow``, what is
written next until the job ends) and ``page`` reads lines for GraphQL (``loglines``). A
file and an object can be read at any offset, so ``SeekableLog`` serves both the same way;
a pod's log is a stream the API server tails and follows itself.

The local runtime's file lies in a folder the job's own processes can write to, so it is
opened as the api's own decision, never through a link the job may have put in its place:
no symbolic link at the job's folder or at the file, and nothing but a regular file.
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from botocore.exceptions import ClientError

from artifacts_api.filewatch import Watch
from artifacts_api.loglines import (
    CHUNK,
    LinePage,
    count_lines,
    last_lines,
    tail_start,
    window,
)
from artifacts_shared.layout import ObjectKey
from artifacts_shared.s3 import S3Client

if TYPE_CHECKING:
    from types_aiobotocore_s3.type_defs import GetObjectOutputTypeDef

__all__ = [
    "FOLLOW_POLL_SECONDS",
    "Chunks",
    "FileLog",
    "JobLog",
    "LogGone",
    "LogNotStarted",
    "LogSource",
    "ObjectLog",
    "SeekableLog",
    "open_file_log",
    "open_object_log",
]

LogSource = Literal["LIVE", "ARCHIVE"]
Chunks = AsyncGenerator[bytes, None]
"""A log's bytes as they are read; ``aclose`` stops the reading."""

FOLLOW_POLL_SECONDS = 0.05
"""How often a followed file is checked for new bytes where it cannot be watched (an
``fstat``, no read, when idle); watched files are looked at when the kernel says so."""
STATUS_POLL_SECONDS = 1.0
"""How often a followed file's job is asked whether it has ended."""

_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})


class LogNotStarted(Exception):
    """The job has written nothing yet: its pod's container is still waiting to start."""


class LogGone(Exception):
    """The runtime no longer has the log (the pod was deleted); ``str()`` says so."""


class JobLog(Protocol):
    source: LogSource

    async def stream(self, *, tail_lines: int | None, follow: bool) -> Chunks:
        """The log's bytes from where its last ``tail_lines`` lines begin (all: None); with
        ``follow``, then what is written next, until the job has ended. Opening the log
        (and failing: ``LogGone``, ``LogNotStarted``) happens here, before the first byte."""
        ...

    async def page(self, *, offset: int | None, limit: int) -> LinePage:
        """Lines ``offset..offset+limit-1``; the last ``limit`` lines when ``offset`` is None."""
        ...

    async def aclose(self) -> None: ...


class _Bytes(Protocol):
    async def size(self) -> int: ...

    def read(self, start: int, end: int) -> AsyncIterator[bytes]: ...


class SeekableLog:
    """A log that can be read at any offset (``FileLog``, ``ObjectLog``), as a ``JobLog``.

    ``ended`` says whether the writer is done; a log whose writer may go on (a running
    local job's file) is followed: read again whenever ``watch()`` wakes (inotify), or
    every ``FOLLOW_POLL_SECONDS`` when it cannot be watched.
    """

    def __init__(
        self,
        data: _Bytes,
        *,
        source: LogSource,
        ended: Callable[[], Awaitable[bool]] | None = None,
        watch: Callable[[], Watch | None] = lambda: None,
        close: Callable[[], None] = lambda: None,
    ) -> None:
        self.source = source
        self._data = data
        self._ended = ended
        self._watch = watch
        self._close = close

    async def stream(self, *, tail_lines: int | None, follow: bool) -> Chunks:
        size = await self._data.size()
        start = 0 if tail_lines is None else await tail_start(self._data, tail_lines, size=size)
        return self._chunks(start, size, follow=follow and self._ended is not None)

    async def _chunks(self, position: int, size: int, *, follow: bool) -> Chunks:
        async for chunk in self._data.read(position, size):
            yield chunk
        position = size
        if not follow or self._ended is None:
            return
        watch = self._watch()
        try:
            async for chunk in self._follow(position, self._ended, watch):
                yield chunk
        finally:
            if watch is not None:
                watch.close()

    async def _follow(
        self, position: int, has_ended: Callable[[], Awaitable[bool]], watch: Watch | None
    ) -> Chunks:
        checked = time.monotonic()
        ended = False
        while True:
            if watch is not None:
                watch.arm()  # before looking: a write from now on wakes the wait below
            size = await self._data.size()
            if size > position:
                async for chunk in self._data.read(position, size):
                    yield chunk
                position = size
                continue
            if ended:
                return
            waited = time.monotonic() - checked
            if waited >= STATUS_POLL_SECONDS:
                checked = time.monotonic()
                # Once the job has ended nothing more is written: one last read, then done.
                ended = await has_ended()
                continue
            if watch is not None:
                await watch.wait(STATUS_POLL_SECONDS - waited)
            else:
                await asyncio.sleep(FOLLOW_POLL_SECONDS)

    async def page(self, *, offset: int | None, limit: int) -> LinePage:
        size = await self._data.size()
        if offset is not None:
            return await window(self._data.read(0, size), offset=offset, limit=limit)
        total = await count_lines(self._data.read(0, size))
        start = await tail_start(self._data, limit, size=size)
        tail = await last_lines(self._data.read(start, size), limit=limit)
        return LinePage(offset=total - len(tail.lines), lines=tail.lines, total=total)

    async def aclose(self) -> None:
        self._close()


class FileLog:
    """An open file's bytes; reads run in a worker thread, so a slow disk stalls no request."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    async def size(self) -> int:
        return os.fstat(self.fd).st_size

    async def read(self, start: int, end: int) -> AsyncIterator[bytes]:
        position = start
        while position < end:
            size = min(CHUNK, end - position)
            chunk = await asyncio.to_thread(os.pread, self.fd, size, position)
            if not chunk:
                return  # truncated meanwhile
            position += len(chunk)
            yield chunk

    def close(self) -> None:
        os.close(self.fd)


def open_file_log(path: Path) -> FileLog | None:
    """``path`` (``<runtime>/<job>/job.log``) opened for reading, or None when it is not
    there or not a regular file reached without a symbolic link."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        folder = os.open(path.parent, flags | os.O_DIRECTORY)
    except OSError as err:
        if err.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            return None
        raise
    try:
        # O_NONBLOCK: a FIFO put in the file's place must not hang the open.
        fd = os.open(path.name, flags | os.O_NONBLOCK, dir_fd=folder)
    except OSError as err:
        if err.errno in (errno.ENOENT, errno.ELOOP, errno.ENXIO):
            return None
        raise
    finally:
        os.close(folder)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return FileLog(fd)


class ObjectLog:
    """An S3 object's bytes, read with ranged GETs."""

    def __init__(self, s3: S3Client, bucket: str, key: ObjectKey, size: int, etag: str) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._key = key
        self._size = size
        self._etag = etag

    async def size(self) -> int:
        return self._size

    async def read(self, start: int, end: int) -> AsyncIterator[bytes]:
        if start >= end:
            return
        got: GetObjectOutputTypeDef = await self._s3.get_object(
            Bucket=self._bucket,
            Key=self._key,
            Range=f"bytes={start}-{end - 1}",
            # The same object throughout: a new delivery meanwhile fails the read.
            IfMatch=self._etag,
        )
        async with got["Body"] as body:
            while chunk := await body.read(CHUNK):
                yield chunk


async def open_object_log(s3: S3Client, bucket: str, key: ObjectKey) -> ObjectLog | None:
    """The object at ``key``, or None when there is none."""
    try:
        head = await s3.head_object(Bucket=bucket, Key=key)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in _NOT_FOUND:
            return None
        raise
    return ObjectLog(s3, bucket, key, head["ContentLength"], head.get("ETag", ""))
