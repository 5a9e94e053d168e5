"""Our side of the ``s3`` delivery: what of a staged job folder is kept, and for how long.

Everything that decides comes from our side of the trust boundary (ARCHITECTURE section
4; ``staging.py`` says what the job's side hands over): the job, its group, the retention
and the limits from the uploader's own settings (the controller sets them in our
container's environment), the end time from our own clock, the file list from our own
walk of the staging folder, each size and sha256 from the bytes actually sent. The limits
hold for those bytes: a file that grows while it is read cannot take the delivery past
the size limit; then nothing is kept and the manifest says why. The job's log, when our
side gives one (``joblog.py``), goes up as ``.primehub/metadata/job.log`` whatever
happened to the files, and the manifest's ``log`` counts it.

The order, so that an ``expiredAt`` never stands beside a partial folder (section 3):
delete a stale ``expiredAt``, abort multipart uploads a killed attempt left, upload the
files, the log, ``manifest.json``, then ``expiredAt`` -- in ``_write_metadata``, the one place
this delivery writes it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Literal

from botocore.exceptions import BotoCoreError, ClientError

from artifacts_controller.direct_put import DirectPut
from artifacts_controller.joblog import JobLog, put_job_log, read_job_log
from artifacts_controller.staging import Listing, StagingError, open_staged, walk
from artifacts_controller.transfer import (
    MIB,
    Budget,
    FileChangedError,
    FileToUpload,
    LimitExceeded,
    Tuning,
    abort_stale_multipart_uploads,
    upload_files,
)
from artifacts_shared.expiry import expiry_after
from artifacts_shared.layout import (
    JobPrefix,
    UnsafeNameError,
    artifact_key,
    expired_at_key,
    job_prefix,
)
from artifacts_shared.manifest import Manifest, ManifestFile, ManifestLimits, SkipReason
from artifacts_shared.metadata_store import write_expired_at, write_manifest
from artifacts_shared.s3 import S3Client, delete_keys

__all__ = ["Delivery", "DeliveryFailed", "Policy", "deliver"]


@dataclass(frozen=True, slots=True)
class Policy:
    """What our side decides for one job's artifacts."""

    job: str
    group: str
    enabled: bool
    retention_seconds: int
    limit_size_mb: int
    limit_files: int

    @property
    def limit_bytes(self) -> int:
        return self.limit_size_mb * MIB

    @property
    def limits(self) -> ManifestLimits:
        return ManifestLimits(size_mb=self.limit_size_mb, files=self.limit_files)


@dataclass(frozen=True, slots=True)
class Delivery:
    outcome: Literal["delivered", "skipped", "none"]
    message: str
    """One line saying what was decided, without a program's prefix."""
    prefix: JobPrefix | None = None
    file_count: int = 0
    total_size: int = 0
    expired_at: int | None = None
    seconds: float = 0.0


class DeliveryFailed(Exception):
    """The delivery could not be completed, and no ``expiredAt`` was written; ``str()`` is
    the one line to print."""


def _size_text(size: int) -> str:
    """``12 B``, or ``157286400 B (150.0 MB)`` from one MiB; the MB rounded up, so a size
    just over a limit never reads as equal to it (run-job.sh says sizes the same way)."""
    if size < MIB:
        return f"{size} B"
    tenths = -(-size * 10 // MIB)
    return f"{size} B ({tenths // 10}.{tenths % 10} MB)"


def _count(files: int) -> str:
    return "1 file" if files == 1 else f"{files} files"


def _error_text(error: BaseException) -> str:
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        return f"{details.get('Code', '?')}: {details.get('Message', '') or error}"
    return str(error) or type(error).__name__


async def deliver(
    staging: Path,
    *,
    policy: Policy,
    ended_at: int,
    exit_code: int | None,
    s3: S3Client,
    bucket: str,
    tuning: Tuning,
    owner: int | None = None,
    direct: DirectPut | None = None,
    job_log: Path | None = None,
    job_log_limit: int = 10 * MIB,
    say: Callable[[str], None] = lambda line: None,
) -> Delivery:
    """Deliver the staged files within ``policy``; ``DeliveryFailed`` on any failure.

    ``say`` gets one line for each staged entry that is not delivered, and why; small
    files go through ``direct`` when given (``transfer.upload_files``). ``job_log``, the
    job's output as our side captured it, is delivered too, its end within
    ``job_log_limit`` bytes, read once the files are up (so their lines are in it).
    """
    started = time.monotonic()
    try:
        prefix = job_prefix(policy.group, policy.job)
    except UnsafeNameError as err:
        raise DeliveryFailed(str(err)) from None
    if not policy.enabled:
        return Delivery("none", "disabled (PHJOB_ARTIFACT_ENABLED=false); nothing delivered")
    try:
        listing = walk(staging, owner=owner)
    except StagingError as err:
        raise DeliveryFailed(str(err)) from None
    for line in listing.skipped:
        say(line)
    if not listing.files and job_log is None:
        return Delivery("none", "none: the staging folder holds no files")
    finish = _Finish(s3=s3, bucket=bucket, prefix=prefix, policy=policy, ended_at=ended_at,
                     exit_code=exit_code, job_log=job_log, job_log_limit=job_log_limit,
                     say=say)  # fmt: skip
    try:
        # Before any artifact object changes: no expiredAt beside a partial upload. Being
        # the first request, it also finds out whether the bucket can be reached.
        await s3.delete_object(Bucket=bucket, Key=expired_at_key(prefix))
        if not listing.files:
            return await finish.delivered([], started, none=True)
        refusal = _refusal(listing, policy)
        if refusal is not None:
            return await finish.skipped(refusal, started)
        with contextlib.suppress(ClientError):  # listing uploads may not be allowed
            await abort_stale_multipart_uploads(s3, bucket, prefix)
        plan = [
            FileToUpload(
                key=artifact_key(prefix, staged.name),
                open=partial(open_staged, staging, staged.name, owner=owner),
                size=staged.size,
            )
            for staged in listing.files
        ]
        try:
            uploaded = await upload_files(
                plan,
                s3=s3,
                bucket=bucket,
                tuning=tuning,
                budget=Budget(policy.limit_bytes),
                direct=direct,
            )
        except LimitExceeded as over:
            await delete_keys(s3, bucket, [item.key for item in plan])
            reason = SkipReason(
                limit="size",
                found=over.read,
                allowed=policy.limit_bytes,
                message=f"artifacts: skipped, {_size_text(over.read)} read while uploading, "
                f"over the limit of {policy.limit_size_mb} MB; nothing kept",
            )
            return await finish.skipped(reason, started)
        files = [
            ManifestFile(name=staged.name, size=sent.size, sha256=sent.sha256, mode=staged.mode)
            for staged, sent in zip(listing.files, uploaded, strict=True)
        ]
        return await finish.delivered(files, started)
    except (BotoCoreError, ClientError, OSError, StagingError, FileChangedError) as err:
        raise DeliveryFailed(
            f"upload to s3://{bucket}/{prefix} failed: {_error_text(err)}"
        ) from None


def _refusal(listing: Listing, policy: Policy) -> SkipReason | None:
    """The limit the listed files exceed, before a byte is read."""
    count = len(listing.files)
    if count > policy.limit_files:
        line = f"{count} files exceed the limit of {policy.limit_files}; nothing uploaded"
        return SkipReason(
            limit="files", found=count, allowed=policy.limit_files,
            message=f"artifacts: skipped, {line}",
        )  # fmt: skip
    total = sum(staged.size for staged in listing.files)
    if total > policy.limit_bytes:
        limit = policy.limit_size_mb
        line = f"{_size_text(total)} exceed the limit of {limit} MB; nothing uploaded"
        return SkipReason(
            limit="size", found=total, allowed=policy.limit_bytes,
            message=f"artifacts: skipped, {line}",
        )  # fmt: skip
    return None


@dataclass(frozen=True, slots=True)
class _Finish:
    """The metadata of one delivery, written after every artifact object."""

    s3: S3Client
    bucket: str
    prefix: JobPrefix
    policy: Policy
    ended_at: int
    exit_code: int | None
    job_log: Path | None
    job_log_limit: int
    say: Callable[[str], None]

    async def delivered(
        self, files: list[ManifestFile], started: float, *, none: bool = False
    ) -> Delivery:
        total = sum(entry.size for entry in files)
        expired_at = await self._write_metadata(files, skip=None)
        if none:
            message = "none: the staging folder holds no files; the job's log delivered"
        else:
            message = f"{_count(len(files))}, {total} B uploaded"
        return Delivery(
            "none" if none else "delivered", message, self.prefix, len(files), total, expired_at,
            time.monotonic() - started,
        )  # fmt: skip

    async def skipped(self, reason: SkipReason, started: float) -> Delivery:
        expired_at = await self._write_metadata([], skip=reason)
        message = reason.message.removeprefix("artifacts: ")
        return Delivery(
            "skipped", message, self.prefix, 0, 0, expired_at, time.monotonic() - started
        )

    async def _write_metadata(
        self, files: list[ManifestFile], *, skip: SkipReason | None
    ) -> int | None:
        expired_at = expiry_after(self.ended_at, self.policy.retention_seconds)
        log = await self._write_log()
        manifest = Manifest(
            job=self.policy.job,
            group=self.policy.group,
            collected_at=datetime.now(UTC),
            expired_at=expired_at,
            exit_code=self.exit_code,
            file_count=len(files),
            total_size=sum(entry.size for entry in files),
            limits=self.policy.limits,
            skipped=skip is not None,
            skip_reason=skip,
            files=files,
            log=None if log is None else log.entry,
        )
        await write_manifest(self.s3, self.bucket, self.prefix, manifest)
        if expired_at is not None:
            await write_expired_at(self.s3, self.bucket, self.prefix, expired_at)
        return expired_at

    async def _write_log(self) -> JobLog | None:
        if self.job_log is None:
            return None
        try:
            log = read_job_log(self.job_log, limit=self.job_log_limit)
        except OSError as err:
            # The files are delivered all the same; the manifest has no log then.
            self.say(f"the job's log {self.job_log} could not be read ({err}); not delivered")
            return None
        await put_job_log(self.s3, self.bucket, self.prefix, log)
        return log
