"""The staging folder (``s3`` delivery): what the job's side hands over, and how we read it.

This module owns the contract; run-job.sh, the uploader and the READMEs refer to it.
Layout of ``$PHJOB_ARTIFACT_STAGING`` (an ``emptyDir`` both containers mount, or a folder
of the local runtime)::

    files/<relative path>   the copies of ./artifacts (links inside it resolved), a+rX
    modes                   "<octal mode> <relative path>\\0" per file: the originals' bits
                            (a report that may only narrow the copy's: ``recorded_mode``)
    done                    the command's exit code in decimal, renamed into place last

run-job.sh deletes a stale ``done`` when it starts and empties ``files/`` before copying.

Trust boundary (ARCHITECTURE section 4): run-job.sh writes this folder from the job's
container with the job's rights, and so can anything the command left running, so all of
it is data: the files, the permission bits reported for them, and one signal -- ``done``
exists -- that the copy is complete (with the exit code the job reports). Retention, end
time, limits and the file list are never read from here: the uploader takes them from its
own settings, its own clock and its own ``walk`` of ``files/``. That walk follows no link,
opens nothing but regular files (checked again when each is opened), and never leaves
``files/``: a job could point a link at our credentials, or plant one where we look.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from artifacts_shared.layout import METADATA_DIRS, JobPrefix, UnsafeNameError, artifact_key
from artifacts_shared.manifest import PERMISSION_BITS

__all__ = [
    "DONE",
    "FILES",
    "MODES",
    "Done",
    "Listing",
    "StagedFile",
    "StagingError",
    "open_staged",
    "read_done",
    "recorded_mode",
    "walk",
]

FILES = "files"
MODES = "modes"
DONE = "done"

_DONE_MAX = 64
_MODE = re.compile(rb"[0-7]{1,4}")
_MAX_DEPTH = 256  # folders deeper than this are not walked: each level holds a descriptor
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class StagingError(Exception):
    """The staging folder cannot be read as the contract says; ``str()`` is one line."""


@dataclass(frozen=True, slots=True)
class Done:
    """The job's side says its copy is complete; ``exit_code`` is what it reports, if any."""

    exit_code: int | None


@dataclass(frozen=True, slots=True)
class StagedFile:
    name: str
    size: int
    mode: str
    """Octal permission bits, ``recorded_mode``'s: the copy's own, narrowed by the report."""


@dataclass
class Listing:
    """What ``walk`` found in ``files/``: the files to deliver, and one line per skip."""

    files: list[StagedFile] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _open_regular(name: str, *, dir_fd: int | None, limit: int) -> bytes | None:
    """At most ``limit`` bytes of a regular file, None if there is none; no link followed
    and nothing that could block (a FIFO) is waited on."""
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise StagingError(f"{name}: {err.strerror} (not a regular file?)") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise StagingError(f"{name} is not a regular file")
    with os.fdopen(fd, "rb") as handle:
        return handle.read(limit + 1)


def read_done(staging: Path) -> Done | None:
    """The done marker, None while there is none; ``StagingError`` when it is not a file.

    Its content is only the job's report of its exit code: anything else reads as None.
    """
    raw = _open_regular(str(staging / DONE), dir_fd=None, limit=_DONE_MAX)
    if raw is None:
        return None
    text = raw.strip()
    code = int(text) if len(raw) <= _DONE_MAX and re.fullmatch(rb"[0-9]{1,3}", text) else None
    return Done(exit_code=code if code is not None and code <= 255 else None)


def _reported_modes(staging_fd: int, limit: int) -> dict[str, int]:
    """``modes``, read no further than ``limit`` bytes; what does not parse is left out."""
    try:
        raw = _open_regular(MODES, dir_fd=staging_fd, limit=limit) or b""
    except StagingError:
        return {}
    modes = {}
    # Every record ends in NUL: what follows the last one is empty, or cut off by the limit.
    for record in raw[:limit].split(b"\0")[:-1]:
        mode, _, name = record.partition(b" ")
        if _MODE.fullmatch(mode) and name:
            modes[os.fsdecode(name)] = int(mode, 8)
    return modes


def recorded_mode(own: int, reported: int | None) -> str:
    """The ``mode`` the manifest records for a staged file whose copy has the bits ``own``.

    The copy is what we deliver, and our own walk read its bits; run-job.sh had to widen
    them (``a+rX``, so that the uploader, maybe another user, can read it) and reports the
    original's in ``modes``. That report is the job's word: it may only take bits away
    from the copy's, never add one, and setuid, setgid and sticky are never recorded.
    """
    bits = own & PERMISSION_BITS
    if reported is not None:
        bits &= reported
    return f"{bits:03o}"


def _skip_reason(relative: str, entry: os.DirEntry[str], *, owner: int | None) -> str | None:
    """Why ``entry`` is not delivered, or None to deliver it."""
    try:
        relative.encode("utf-8")
    except UnicodeEncodeError:
        return "the name is not UTF-8, so it cannot become an object key"
    try:
        artifact_key(JobPrefix(""), relative)
    except UnsafeNameError as err:
        return str(err)
    if entry.is_symlink():
        return "a link (run-job.sh stages copies, never links)"
    if not entry.is_file(follow_symlinks=False):
        return "not a regular file"
    details = entry.stat(follow_symlinks=False)
    if owner is not None and details.st_uid != owner:
        return f"owned by uid {details.st_uid}, not by the job's {owner}"
    return None


def walk(staging: Path, *, owner: int | None = None, modes_limit: int = 64 << 20) -> Listing:
    """Our own list of what ``files/`` holds, in name order, without following any link.

    ``owner``: deliver only files of this uid (the local runtime's per-job user), so a
    hard link to a file the job could not read is not read for it either.
    """
    listing = Listing()
    try:
        staging_fd = os.open(staging, _DIR_FLAGS)
    except OSError as err:
        raise StagingError(f"{staging}: {err.strerror}") from None
    try:
        try:
            files_fd = os.open(FILES, _DIR_FLAGS, dir_fd=staging_fd)
        except FileNotFoundError:
            return listing
        except OSError as err:
            raise StagingError(f"{staging / FILES}: {err.strerror} (not a folder?)") from None
        try:
            found: list[tuple[str, os.stat_result]] = []
            _walk_folder(files_fd, "", found, listing.skipped, owner=owner, depth=0)
        finally:
            os.close(files_fd)
        modes = _reported_modes(staging_fd, modes_limit) if found else {}
    finally:
        os.close(staging_fd)
    for name, details in found:
        mode = recorded_mode(stat.S_IMODE(details.st_mode), modes.get(name))
        listing.files.append(StagedFile(name, details.st_size, mode))
    return listing


def _walk_folder(
    fd: int,
    prefix: str,
    found: list[tuple[str, os.stat_result]],
    skipped: list[str],
    *,
    owner: int | None,
    depth: int,
) -> None:
    with os.scandir(fd) as scan:
        entries = sorted(scan, key=lambda entry: entry.name)
    folders = []
    for entry in entries:
        relative = prefix + entry.name
        if entry.is_dir(follow_symlinks=False):
            folders.append(entry)
            continue
        reason = _skip_reason(relative, entry, owner=owner)
        if reason is None:
            found.append((relative, entry.stat(follow_symlinks=False)))
        else:
            skipped.append(f"skipped {relative!r}: {reason}")
    for entry in folders:
        relative = prefix + entry.name
        if not prefix and entry.name in METADATA_DIRS:
            skipped.append(f"skipped {relative}: the name is reserved for the job's metadata")
        elif depth >= _MAX_DEPTH:
            skipped.append(f"skipped folder {relative!r}: deeper than {_MAX_DEPTH} levels")
        else:
            try:
                child = os.open(entry.name, _DIR_FLAGS, dir_fd=fd)
            except OSError as err:
                skipped.append(f"skipped folder {relative!r}: {err.strerror}")
                continue
            try:
                _walk_folder(child, relative + "/", found, skipped, owner=owner, depth=depth + 1)
            finally:
                os.close(child)


def open_staged(staging: Path, name: str, *, owner: int | None = None) -> IO[bytes]:
    """Open a file ``walk`` listed, through ``files/`` one folder at a time, following no
    link; ``StagingError`` if it is no longer a regular file (of ``owner``, if given)."""
    *folders, last = name.split("/")
    opened: list[int] = []
    try:
        fd = os.open(staging / FILES, _DIR_FLAGS)
        opened.append(fd)
        for folder in folders:
            fd = os.open(folder, _DIR_FLAGS, dir_fd=fd)
            opened.append(fd)
        fd = os.open(last, _FILE_FLAGS, dir_fd=fd)
    except OSError as err:
        raise StagingError(f"{name!r}: {err.strerror}") from None
    finally:
        for each in opened:
            os.close(each)
    details = os.fstat(fd)
    if not stat.S_ISREG(details.st_mode) or owner not in (None, details.st_uid):
        os.close(fd)
        raise StagingError(f"{name!r} changed after it was listed")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")
