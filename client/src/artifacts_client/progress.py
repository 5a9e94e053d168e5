"""A one-line progress bar for parallel downloads, with nothing but a text stream.

Download threads report bytes as they arrive; the bar redraws in place (``\\r``) at most
ten times a second, which terminals and Jupyter's output cells both understand, and ends
with a final line that says what was done. A bar that is not wanted is ``NoProgress``, so
the download code never asks whether someone is watching.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol, TextIO

__all__ = ["NoProgress", "Progress", "ProgressBar", "human_size"]

_WIDTH = 24
_REDRAW_SECONDS = 0.1


def human_size(size: float) -> str:
    """``6 B``, ``1.5 KiB``, ``3.2 GiB``: binary units, one decimal above bytes."""
    if size < 1024:
        return f"{int(size)} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        size /= 1024
        if size < 1024 or unit == "TiB":
            break
    return f"{size:.1f} {unit}"


class Progress(Protocol):
    """What ``download_artifacts`` tells whoever follows it; called from worker threads."""

    def start(self, files: int, size: int) -> None: ...

    def advance(self, size: int) -> None: ...

    def file_done(self) -> None: ...

    def close(self) -> None: ...


class NoProgress:
    def start(self, files: int, size: int) -> None:
        pass

    def advance(self, size: int) -> None:
        pass

    def file_done(self) -> None:
        pass

    def close(self) -> None:
        pass


class ProgressBar:
    """``downloading  1/2 files [############            ]  6 B / 12 B`` on ``stream``."""

    def __init__(self, stream: TextIO, *, label: str = "downloading") -> None:
        self._stream = stream
        self._label = label
        self._lock = threading.Lock()
        self._files = self._size = self._files_done = self._size_done = 0
        self._drawn_at = 0.0
        self._drawn_width = 0
        self._closed = False

    def start(self, files: int, size: int) -> None:
        with self._lock:
            self._files, self._size = files, size
            self._draw(force=True)

    def advance(self, size: int) -> None:
        with self._lock:
            self._size_done += size
            self._draw()

    def file_done(self) -> None:
        with self._lock:
            self._files_done += 1
            self._draw(force=self._files_done == self._files)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._draw(force=True)
            self._stream.write("\n")
            self._stream.flush()

    def _line(self) -> str:
        fraction = (
            self._size_done / self._size if self._size else self._files_done / max(self._files, 1)
        )
        filled = min(_WIDTH, int(fraction * _WIDTH))
        width = len(str(self._files))
        return (
            f"{self._label} {self._files_done:>{width}}/{self._files} files "
            f"[{'#' * filled}{' ' * (_WIDTH - filled)}] "
            f"{human_size(self._size_done)} / {human_size(self._size)}"
        )

    def _draw(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if self._closed or (not force and now - self._drawn_at < _REDRAW_SECONDS):
            return
        self._drawn_at = now
        line = self._line()
        # Pad over a longer previous line ("1023 B" becomes "1.0 KiB").
        self._stream.write(f"\r{line:<{self._drawn_width}}")
        self._drawn_width = len(line)
        self._stream.flush()
