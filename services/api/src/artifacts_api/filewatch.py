"""Waking a followed log file's reader when the job writes to it: Linux inotify, shared.

A follower that polled its file's size would add half the polling interval to every line's
trip and wake up all the time for nothing. With inotify the kernel says when the file was
written. One inotify instance serves the whole process (a user may open only 128 of them):
each follower watches its open file through ``/proc/self/fd/<fd>``, which names the inode
it holds, not whatever the job may since have put at the file's path, and waits on an
event set when that inode is modified. Where inotify cannot be had (another OS, a full
watch table), ``watch`` answers None and the follower polls instead.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["FileWatcher", "Watch", "open_file_watcher"]

log = logging.getLogger(__name__)

_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_IN_MODIFY = 0x00000002
_IN_ATTRIB = 0x00000004
_IN_CLOSE_WRITE = 0x00000008
_IN_IGNORED = 0x00008000
_MASK = _IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of name
_READ = 64 * 1024


class Watch:
    """One follower's wake-up: ``wait`` returns once its file changed since ``arm``."""

    def __init__(self, watcher: FileWatcher, wd: int) -> None:
        self._watcher = watcher
        self.wd = wd
        self._changed = asyncio.Event()

    def arm(self) -> None:
        """Forget earlier changes: call before looking at the file, then ``wait``."""
        self._changed.clear()

    def notify(self) -> None:
        self._changed.set()

    async def wait(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            pass

    def close(self) -> None:
        self._watcher.release(self)


class FileWatcher:
    """The process's inotify instance, or none (``available`` False): then nobody watches."""

    def __init__(self) -> None:
        self._libc: ctypes.CDLL | None = None
        self._fd = -1
        self._watches: dict[int, set[Watch]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def available(self) -> bool:
        return self._fd >= 0

    def start(self) -> None:
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name, use_errno=True)
            init = libc.inotify_init1
        except (OSError, AttributeError):
            log.info("no inotify here: followed logs are polled")
            return
        fd = init(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            log.warning(
                "inotify_init1 failed (%s): followed logs are polled",
                os.strerror(ctypes.get_errno()),
            )
            return
        self._libc, self._fd = libc, fd
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(fd, self._read)

    def close(self) -> None:
        if self._fd >= 0 and self._loop is not None:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
        self._fd = -1
        self._watches.clear()

    def watch(self, fd: int) -> Watch | None:
        """A wake-up for the file open as ``fd``, or None when it cannot be watched."""
        if self._libc is None or self._fd < 0:
            return None
        wd = self._libc.inotify_add_watch(self._fd, f"/proc/self/fd/{fd}".encode(), _MASK)
        if wd < 0:
            log.warning(
                "cannot watch a log file (%s): it is polled", os.strerror(ctypes.get_errno())
            )
            return None
        # The same inode watched twice shares one wd: each follower has its own Watch.
        watch = Watch(self, wd)
        self._watches.setdefault(wd, set()).add(watch)
        return watch

    def release(self, watch: Watch) -> None:
        followers = self._watches.get(watch.wd)
        if followers is None:
            return
        followers.discard(watch)
        if not followers:
            del self._watches[watch.wd]
            if self._libc is not None and self._fd >= 0:
                self._libc.inotify_rm_watch(self._fd, watch.wd)

    def _read(self) -> None:
        try:
            data = os.read(self._fd, _READ)
        except BlockingIOError:
            return
        offset = 0
        while offset + _EVENT.size <= len(data):
            wd, mask, _, length = _EVENT.unpack_from(data, offset)
            offset += _EVENT.size + length
            followers = self._watches.get(wd, ())
            for watch in followers:
                watch.notify()
            if mask & _IN_IGNORED:
                # The kernel dropped the watch (the file is gone): wake, then forget it.
                self._watches.pop(wd, None)


@asynccontextmanager
async def open_file_watcher() -> AsyncIterator[FileWatcher]:
    watcher = FileWatcher()
    watcher.start()
    try:
        yield watcher
    finally:
        watcher.close()
