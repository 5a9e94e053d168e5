"""The job's log as our side delivers it: ``.primehub/metadata/job.log``, capped.

The log is the job's stdout and stderr in order, then run-job.sh's collection lines, as
the runtime captured them into a file of its own (the local runtime: the file it opened
for the job's output, in a folder the job cannot write). That file is read here, by our
process, from a path our side gives (``UPLOADER_JOB_LOG``); nothing in the staging folder
is ever taken for the log. Its contents are the job's output, so data: a log can say
anything, and only its size decides what is kept.

Over the cap (``ARTIFACT_JOB_LOG_LIMIT_MB``), the end is kept, where a failed job's error
and the collection lines are, after one line that says what was left out. The cut falls
after a newline, so the kept part starts at a whole line.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from artifacts_shared.layout import JobPrefix, job_log_key
from artifacts_shared.manifest import ManifestLog
from artifacts_shared.s3 import S3Client

__all__ = ["JobLog", "capped_log", "put_job_log", "read_job_log"]

_LINE_SEARCH = 64 * 1024
"""How far past the cut a newline is looked for; a longer line is cut where it is."""


@dataclass(frozen=True, slots=True)
class JobLog:
    body: bytes
    entry: ManifestLog


def _truncation_line(written: int, limit: int) -> bytes:
    mb = limit // (1024 * 1024)
    return (
        f"[job.log truncated: the job's output was {written} bytes, over the limit of "
        f"{mb} MB (ARTIFACT_JOB_LOG_LIMIT_MB); its first bytes are left out and its end "
        "follows]\n"
    ).encode()


def capped_log(tail: bytes, written: int, *, limit: int) -> JobLog:
    """The log to store from the last bytes of the job's output, ``written`` in all."""
    if written <= limit and len(tail) <= limit:
        body, truncated = tail, False
    else:
        head = _truncation_line(written, limit)
        kept = tail[-max(limit - len(head), 0) :]
        newline = kept.find(b"\n", 0, _LINE_SEARCH)
        body, truncated = head + (kept[newline + 1 :] if newline >= 0 else kept), True
    entry = ManifestLog(
        size=len(body),
        sha256=hashlib.sha256(body).hexdigest(),
        written=max(written, len(tail)),
        truncated=truncated,
    )
    return JobLog(body, entry)


def read_job_log(path: Path, *, limit: int) -> JobLog:
    """The log at ``path``, its end within ``limit`` bytes; ``OSError`` if unreadable.

    A link or anything but a regular file is refused: the path is ours, and what lies
    there should be the file the runtime wrote.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"{path} is not a regular file")
        written = info.st_size
        # What it held at the look (a writer may go on): its end, within the limit.
        handle.seek(max(written - limit, 0))
        tail = handle.read(limit)
    return capped_log(tail, written, limit=limit)


async def put_job_log(s3: S3Client, bucket: str, prefix: JobPrefix, log: JobLog) -> None:
    await s3.put_object(
        Bucket=bucket,
        Key=job_log_key(prefix),
        Body=log.body,
        ContentType="text/plain; charset=utf-8",
        ChecksumSHA256=base64.b64encode(bytes.fromhex(log.entry.sha256)).decode("ascii"),
    )
