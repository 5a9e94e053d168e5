"""Verified, atomic downloads of artifact files from their presigned links.

A file is written where it will live only once it is known to be right:
- the local path is the artifact's relative name under the destination folder, and a
  name that would land anywhere else (``..``, absolute, a link out of the folder) is
  refused before anything is fetched — ``Content-Disposition`` is never consulted;
- bytes stream into a temporary file beside the destination (same folder, so the final
  rename is atomic), hashed as they arrive;
- the size must match the listing, and the sha256 too when the listing has one (from the
  collection's manifest); on a mismatch the temporary file is deleted and
  ``IntegrityError`` raised, so a corrupted or truncated file is never left behind;
- a verified file gets the mode the collection recorded (``PhJobArtifactItem.mode``) as
  Python's ``tarfile`` data filter would set it (PEP 706): never setuid, setgid or sticky,
  never writable by group or others, always readable and writable by its owner, so a job's
  ``0755`` script comes back ``0755`` and no recorded mode can make a hazard of it; a file
  with no recorded mode keeps the umask's default, as any new file does;
- without ``overwrite`` the rename is a hard link, which fails if the destination
  appeared meanwhile, so an existing file is never replaced by accident.

``download_many`` runs these in a thread pool: network-bound work that the standard
library's threads do well, with a stop flag so Ctrl-C or a first failure ends the others
promptly and each cleans up after itself.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import secrets
import stat
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from pathlib import Path, PurePosixPath, PureWindowsPath

from artifacts_client.errors import (
    ArtifactExistsError,
    ClientError,
    DownloadError,
    IntegrityError,
    UnsafeNameError,
)
from artifacts_client.models import Artifact, Download
from artifacts_client.progress import Progress

__all__ = ["CHUNK", "download_many", "fetch_artifact", "restored_mode", "target_path"]

CHUNK = 1 << 20
_S3_ERROR_CODE = re.compile(rb"<Code>([A-Za-z]{1,64})</Code>")
_MODE = re.compile(r"[0-7]{1,4}")
_GROUP_OTHER_EXECUTE = stat.S_IXGRP | stat.S_IXOTH
_NEVER = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX | stat.S_IWGRP | stat.S_IWOTH


def restored_mode(mode: str | None) -> int | None:
    """The bits a downloaded file gets for the recorded ``mode``; None to leave the umask's.

    ``tarfile.data_filter``'s rule for regular files (Python 3.11.4 and later), written
    out so every 3.11 has it: the owner may read and write; group and others may not
    execute what the owner cannot; no setuid, setgid, sticky, group or other write. What
    is not 1 to 4 octal digits is no mode at all.
    """
    if mode is None or not _MODE.fullmatch(mode):
        return None
    bits = int(mode, 8) | stat.S_IRUSR | stat.S_IWUSR
    if not bits & stat.S_IXUSR:
        bits &= ~_GROUP_OTHER_EXECUTE
    return bits & ~_NEVER & 0o777


def target_path(dest_dir: str | Path, name: str) -> Path:
    """``dest_dir/name``, or ``UnsafeNameError`` if the file would not be inside ``dest_dir``."""
    parts = name.split("/")
    if (
        not name
        or "\x00" in name
        or "\\" in name
        or PurePosixPath(name).is_absolute()
        or PureWindowsPath(name).drive
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise UnsafeNameError(f"refusing the artifact name {name!r}: it would leave the folder")
    root = Path(dest_dir)
    target = root.joinpath(*parts)
    # Existing links on the way (dest/sub -> /etc) must not carry the file out either.
    resolved_root = root.resolve()
    if not target.resolve().is_relative_to(resolved_root) or target.resolve() == resolved_root:
        raise UnsafeNameError(f"refusing {name!r}: {target} leads outside {root}")
    return target


def _s3_error(err: urllib.error.HTTPError) -> str:
    try:
        body = err.read(4096)
    except (OSError, http.client.HTTPException):
        body = b""
    found = _S3_ERROR_CODE.search(body)
    return f" ({found.group(1).decode()})" if found else ""


def _temporary(target: Path) -> tuple[Path, int]:
    """A new file beside ``target``; created with 0o666 so the umask applies as usual."""
    while True:
        path = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
        try:
            return path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue


def _place(temporary: Path, target: Path, *, overwrite: bool) -> None:
    if overwrite:
        os.replace(temporary, target)
        return
    try:
        os.link(temporary, target)  # fails if the target exists, atomically
    except FileExistsError:
        raise ArtifactExistsError(
            f"{target} exists; pass overwrite=True (--overwrite) to replace it"
        ) from None
    except OSError:
        # A file system without hard links: check, then rename (a small race, no data lost).
        if target.exists() or target.is_symlink():
            raise ArtifactExistsError(
                f"{target} exists; pass overwrite=True (--overwrite) to replace it"
            ) from None
        os.replace(temporary, target)
    else:
        temporary.unlink()


def _open_link(
    artifact: Artifact, opener: urllib.request.OpenerDirector, timeout: float
) -> http.client.HTTPResponse:
    request = urllib.request.Request(artifact.download_url, method="GET")
    response: http.client.HTTPResponse = opener.open(request, timeout=timeout)
    return response


def _stream(
    artifact: Artifact,
    response: http.client.HTTPResponse,
    fd: int,
    advance: Callable[[int], None],
    stop: threading.Event | None,
) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with os.fdopen(fd, "wb", closefd=False) as stream:
        while chunk := response.read(CHUNK):
            if stop is not None and stop.is_set():
                raise DownloadError(f"{artifact.name}: download stopped")
            stream.write(chunk)
            digest.update(chunk)
            size += len(chunk)
            advance(len(chunk))
        stream.flush()
        os.fsync(stream.fileno())
    return size, digest.hexdigest()


def _verify(artifact: Artifact, size: int, sha256: str) -> None:
    if size != artifact.size:
        raise IntegrityError(
            f"{artifact.name}: received {size} bytes but the listing says {artifact.size}; "
            "the file was not kept",
            name=artifact.name,
            expected=str(artifact.size),
            actual=str(size),
        )
    if artifact.sha256 is not None and sha256 != artifact.sha256.lower():
        raise IntegrityError(
            f"{artifact.name}: sha256 mismatch (expected {artifact.sha256[:12]}…, "
            f"got {sha256[:12]}…); the file was not kept",
            name=artifact.name,
            expected=artifact.sha256,
            actual=sha256,
        )


def fetch_artifact(
    artifact: Artifact,
    target: Path,
    *,
    overwrite: bool = False,
    opener: urllib.request.OpenerDirector,
    timeout: float = 60.0,
    advance: Callable[[int], None] = lambda size: None,
    refresh: Callable[[], Artifact] | None = None,
    stop: threading.Event | None = None,
) -> Download:
    """Download ``artifact`` to ``target``, verified, atomically; see the module docstring.

    ``refresh`` gives the artifact again with a fresh link: a link that expired while
    other files were downloading (HTTP 403) is retried once with it.
    """
    if stop is not None and stop.is_set():
        raise DownloadError(f"{artifact.name}: download stopped")
    if not overwrite and (target.exists() or target.is_symlink()):
        raise ArtifactExistsError(
            f"{target} exists; pass overwrite=True (--overwrite) to replace it"
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary, fd = _temporary(target)
    except OSError as err:
        raise DownloadError(f"{artifact.name}: cannot write to {target.parent}: {err}") from None
    host = urllib.parse.urlsplit(artifact.download_url).netloc
    try:
        try:
            response = _open_link(artifact, opener, timeout)
        except urllib.error.HTTPError as err:
            if err.code != 403 or refresh is None:
                raise
            err.close()
            artifact = refresh()
            response = _open_link(artifact, opener, timeout)
        with response:
            size, sha256 = _stream(artifact, response, fd, advance, stop)
        os.close(fd)
        fd = -1
        _verify(artifact, size, sha256)
        mode = restored_mode(artifact.mode)
        if mode is not None:
            os.chmod(temporary, mode)  # before the rename: the file appears with its mode
        if artifact.last_modified is not None:
            # Like `curl -R`: the file carries the artifact's time, as the listing shows it.
            modified = artifact.last_modified.timestamp()
            os.utime(temporary, (modified, modified))
        _place(temporary, target, overwrite=overwrite)
    except urllib.error.HTTPError as err:
        raise DownloadError(
            f"{artifact.name}: the download link answered HTTP {err.code}{_s3_error(err)}"
        ) from None
    except urllib.error.URLError as err:
        raise DownloadError(f"{artifact.name}: cannot reach {host}: {err.reason}") from None
    except (OSError, http.client.HTTPException) as err:
        if isinstance(err, ClientError):
            raise
        raise DownloadError(f"{artifact.name}: the download failed: {err}") from None
    finally:
        if fd >= 0:
            os.close(fd)
        temporary.unlink(missing_ok=True)
    verified = "sha256" if artifact.sha256 is not None else "size"
    return Download(artifact.name, str(target), size, sha256, verified)


def download_many(
    plan: Sequence[tuple[Artifact, Path]],
    fetch: Callable[[Artifact, Path, Callable[[int], None], threading.Event], Download],
    *,
    workers: int,
    progress: Progress,
) -> list[Download]:
    """Run ``fetch`` for every ``(artifact, target)`` in parallel, in ``plan``'s order.

    The first failure stops the rest (queued files are not started, running ones abort
    and remove their temporary files) and is raised; files already verified stay.
    """
    progress.start(len(plan), sum(artifact.size for artifact, _ in plan))
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="jobartifacts")
    done: dict[int, Download] = {}
    first_error: BaseException | None = None
    try:
        futures: dict[Future[Download], int] = {
            pool.submit(fetch, artifact, target, progress.advance, stop): index
            for index, (artifact, target) in enumerate(plan)
        }
        for future in as_completed(futures):
            try:
                done[futures[future]] = future.result()
            except Exception as err:
                if first_error is None:
                    first_error = err
                    stop.set()
                    for waiting in futures:
                        waiting.cancel()
                continue
            progress.file_done()
    except BaseException:
        stop.set()  # Ctrl-C: the workers stop between chunks and clean up
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        progress.close()
    if first_error is not None:
        raise first_error
    return [done[index] for index in sorted(done)]
