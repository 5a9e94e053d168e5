"""Local runtime jobs that cannot reach each other: one unprivileged uid per job.

ARCHITECTURE section 4: in the local runtime a job cannot reach another job's folders.
When the controller runs as root, each job runs under a uid of its own from
``LOCAL_JOB_UIDS``, claimed for as long as the job is not finished (a lock file per uid
under ``LOCAL_RUNTIME_DIR/.uids``, so a restarted controller does not hand it out twice).
Its ``home`` and ``staging`` are that uid's, mode 0700; the job folder around them is
root's, 0711 while the job runs (the job may pass through it to its own folders, not list
or write it) and 0700 once it has ended, so nothing of the uid can enter it again when the
uid is claimed by a later job. Every process of the uid is ended before its artifacts are
read, so nothing of the job changes the staging folder while it is delivered.

When the controller cannot do this (it does not run as root, or other users cannot pass
through to ``LOCAL_RUNTIME_DIR``), every job runs as the controller's own user and could
read another's folders and the controller's environment: ``isolation`` logs that the
local runtime is single-tenant, once, at start.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import signal
import stat
from dataclasses import dataclass
from pathlib import Path

__all__ = ["JobUsers", "end_processes", "isolation", "prepare_folders", "seal_folder"]

log = logging.getLogger(__name__)

_LOCKS = ".uids"
_CURSOR = "next"


@dataclass(frozen=True)
class JobUsers:
    """The uids of ``first``..``last``, claimed one per unfinished job under ``root``."""

    root: Path
    first: int
    last: int

    @property
    def _locks(self) -> Path:
        return self.root / _LOCKS

    def claim(self, job_id: str) -> int:
        """A uid no other unfinished job holds, for ``job_id``; the lowest after the last
        one handed out, so a uid comes back only once the range has gone round."""
        self._locks.mkdir(mode=0o700, exist_ok=True)
        try:
            start = int((self._locks / _CURSOR).read_text(encoding="ascii"))
        except (OSError, ValueError):
            start = self.first
        if not self.first <= start <= self.last:
            start = self.first
        for uid in itertools.chain(range(start, self.last + 1), range(self.first, start)):
            try:
                fd = os.open(self._locks / str(uid), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as lock:
                lock.write(job_id)
            (self._locks / _CURSOR).write_text(str(uid + 1), encoding="ascii")
            return uid
        raise RuntimeError(f"every uid of LOCAL_JOB_UIDS={self.first}-{self.last} is in use")

    def release(self, uid: int) -> None:
        (self._locks / str(uid)).unlink(missing_ok=True)


def _unreachable(folder: Path) -> Path | None:
    """The first folder on the way to ``folder`` that other users cannot pass through."""
    for ancestor in reversed(folder.resolve().parents):
        if not os.stat(ancestor).st_mode & stat.S_IXOTH:
            return ancestor
    return None


def isolation(root: Path, uids: tuple[int, int], *, euid: int) -> JobUsers | None:
    """Per-job users under ``root`` when the controller (effective uid ``euid``) can give
    them, else None; either way one log line says which."""
    if euid != 0:
        log.warning(
            "the local runtime is single-tenant: the controller does not run as root, so every "
            "job runs as uid %s, like the controller, and can read the folders of the others "
            "and the controller's environment",
            euid,
        )
        return None
    blocked = _unreachable(root)
    if blocked is not None:
        log.warning(
            "the local runtime is single-tenant: other users cannot pass through %s to "
            "LOCAL_RUNTIME_DIR=%s, so every job runs as root",
            blocked,
            root,
        )
        return None
    root.chmod(0o711)
    log.info("the local runtime runs each job as a user of its own (uids %s-%s)", *uids)
    return JobUsers(root, *uids)


def prepare_folders(folder: Path, uid: int) -> None:
    """The job folder (root's, 0711) and in it ``home`` and ``staging``, the uid's and 0700."""
    folder.mkdir(mode=0o711, exist_ok=True)
    folder.chmod(0o711)
    for name in ("home", "staging"):
        inner = folder / name
        inner.mkdir(mode=0o700, exist_ok=True)
        os.chown(inner, uid, uid, follow_symlinks=False)
        inner.chmod(0o700)


def seal_folder(folder: Path) -> None:
    """Close the job folder to everyone but root: the uid may serve another job next."""
    with contextlib.suppress(FileNotFoundError):
        folder.chmod(0o700)


def _real_uid(pid: str) -> int | None:
    """The real uid of a live process (not a zombie), None for one gone or exited."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    if fields.get("State", "").strip()[:1] in ("Z", "X"):
        return None
    uid = fields.get("Uid", "").split()
    return int(uid[0]) if uid else None


def end_processes(uid: int) -> int:
    """SIGKILL every process whose real uid is ``uid``, until none is left; how many.

    A process cannot leave its uid, so this reaches everything the job started, whatever
    session or group it moved to; a fork racing the kill is caught by the next round.
    """
    ended = 0
    for _ in range(1000):
        found = [pid for pid in os.listdir("/proc") if pid.isdigit() and _real_uid(pid) == uid]
        if not found:
            return ended
        for pid in found:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
                ended += 1
    raise RuntimeError(f"processes of uid {uid} keep appearing")
