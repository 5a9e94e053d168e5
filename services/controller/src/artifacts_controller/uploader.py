"""``python -m artifacts_controller.uploader``: deliver a staged job folder to the bucket.

The ``s3`` delivery mode's second half (ARCHITECTURE section 4). run-job.sh copies the
job's artifacts into the staging folder and writes the done marker last (the layout and
the marker are described in ``staging.py``); this process waits for that marker, then

1. deletes a stale ``expiredAt`` of the job folder and aborts multipart uploads a killed
   earlier attempt left, so a retry after a crash starts clean and no ``expiredAt`` ever
   stands beside a partial upload;
2. uploads every file to ``groups/<grouppath>/jobArtifacts/<job>/<name>`` (bounded
   parallelism, multipart in 16 MiB parts from 16 MiB), hashing what it sends;
3. writes ``manifest.json``, then ``expiredAt`` (none when the retention is 0);
4. leaves an ``uploaded`` receipt in the staging folder.

Waiting and stopping, for a sidecar whose job container may die without a done marker:
it waits for ``done`` without limit unless ``--wait-timeout`` (0: it must exist already).
SIGTERM or SIGINT while waiting does not stop it at once -- when a pod is deleted both
containers get SIGTERM together and the job container is then collecting -- it waits
``--stop-grace`` seconds more for the marker. Once uploading, a signal is noted and the
upload finishes. ``--stay-until-stopped`` keeps the process alive after it finished,
until a signal: a native sidecar (restartPolicy Always) must not exit by itself.

Exit codes: 0 delivered (or nothing to deliver, or delivered already); 1 the delivery
failed (bucket unreachable after retries, unreadable marker, staging not as announced)
and no ``expiredAt`` was written; 2 bad settings; 3 no done marker came.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from artifacts_controller.settings import UploaderSettings
from artifacts_controller.staging import (
    DoneMarker,
    Receipt,
    StagingError,
    read_done,
    read_receipt,
    staged_path,
    write_receipt,
)
from artifacts_controller.transfer import (
    FileChangedError,
    FileToUpload,
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
from artifacts_shared.manifest import Manifest, ManifestFile
from artifacts_shared.metadata_store import write_expired_at, write_manifest
from artifacts_shared.s3 import S3Client, open_s3
from artifacts_shared.settings import SettingsError, load_settings

__all__ = ["Delivery", "UploadFailed", "deliver", "main", "wait_for_done"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_SETTINGS = 2
EXIT_NO_MARKER = 3
POLL_SECONDS = 0.2


class UploadFailed(Exception):
    """The delivery could not be completed; ``str()`` is the one line to print."""


def say(line: str) -> None:
    print(f"uploader: {line}", file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class Delivery:
    prefix: JobPrefix
    file_count: int
    total_size: int
    expired_at: int | None
    seconds: float


class _Stop:
    """Signals received: when the first came, and whether an upload was under way."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.first_at: float | None = None
        self.uploading = False

    def request(self, name: str) -> None:
        if self.first_at is None:
            self.first_at = time.monotonic()
        doing = "finishing the upload first" if self.uploading else "stopping"
        say(f"{name} received; {doing}")
        self.event.set()


async def wait_for_done(
    staging: Path, *, timeout: float | None, stop: _Stop, stop_grace: float
) -> DoneMarker | str:
    """The done marker, or why there is none (a one-line reason)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        done = read_done(staging)
        if done is not None:
            return done
        now = time.monotonic()
        if stop.first_at is not None and now >= stop.first_at + stop_grace:
            return (
                f"stopped before {staging}/done appeared (waited {stop_grace:g} s after the signal)"
            )
        if deadline is not None and now >= deadline:
            return f"no {staging}/done after {timeout:g} s"
        if stop.event.is_set():
            await asyncio.sleep(POLL_SECONDS)
        else:
            with contextlib.suppress(TimeoutError):
                # Wake at once on a signal: the grace period counts from it.
                await asyncio.wait_for(stop.event.wait(), POLL_SECONDS)


def _plan(staging: Path, done: DoneMarker, prefix: JobPrefix) -> list[FileToUpload]:
    plan = []
    for entry in done.files:
        path = staged_path(staging, entry.name)
        try:
            size = path.stat().st_size
        except OSError as err:
            raise StagingError(f"{path}: {err.strerror} (listed in done)") from None
        if size != entry.size:
            raise StagingError(f"{path}: {size} bytes, done says {entry.size}")
        try:
            plan.append(FileToUpload(path=path, key=artifact_key(prefix, entry.name)))
        except UnsafeNameError as err:
            raise StagingError(f"{staging}/done: {err}") from None
    return plan


def _count(files: int) -> str:
    return "1 file" if files == 1 else f"{files} files"


def _error_text(error: BaseException) -> str:
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        return f"{details.get('Code', '?')}: {details.get('Message', '') or error}"
    return str(error) or type(error).__name__


async def deliver(
    done: DoneMarker,
    *,
    staging: Path,
    s3: S3Client,
    bucket: str,
    job: str,
    group: str,
    tuning: Tuning,
) -> Delivery:
    """Upload what ``done`` announces, then the metadata; ``UploadFailed`` on any failure."""
    started = time.monotonic()
    try:
        prefix = job_prefix(group, job)
    except UnsafeNameError as err:
        raise UploadFailed(str(err)) from None
    try:
        plan = _plan(staging, done, prefix)
    except StagingError as err:
        raise UploadFailed(str(err)) from None
    expired_at = expiry_after(done.ended_at, done.retention_seconds)
    where = f"s3://{bucket}/{prefix}"
    try:
        # Before any artifact object changes: no expiredAt beside a partial upload. Being
        # the first request, it also finds out whether the bucket can be reached.
        await s3.delete_object(Bucket=bucket, Key=expired_at_key(prefix))
        with contextlib.suppress(ClientError):  # listing uploads may not be allowed
            await abort_stale_multipart_uploads(s3, bucket, prefix)
        uploaded = await upload_files(plan, s3=s3, bucket=bucket, tuning=tuning)
        manifest = Manifest(
            job=job,
            group=group,
            collected_at=datetime.now(UTC),
            expired_at=expired_at,
            exit_code=done.exit_code,
            file_count=len(uploaded),
            total_size=sum(item.size for item in uploaded),
            limits=done.limits,
            skipped=done.outcome == "skipped",
            skip_reason=done.skip_reason,
            files=[
                ManifestFile(name=entry.name, size=item.size, sha256=item.sha256, mode=entry.mode)
                for entry, item in zip(done.files, uploaded, strict=True)
            ],
        )
        await write_manifest(s3, bucket, prefix, manifest)
        if expired_at is not None:
            await write_expired_at(s3, bucket, prefix, expired_at)
    except (BotoCoreError, ClientError, OSError, FileChangedError) as err:
        raise UploadFailed(f"upload to {where} failed: {_error_text(err)}") from None
    return Delivery(
        prefix=prefix,
        file_count=manifest.file_count,
        total_size=manifest.total_size,
        expired_at=expired_at,
        seconds=time.monotonic() - started,
    )


async def _run(settings: UploaderSettings, *, stay: bool) -> int:
    stop = _Stop()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.request, signal.Signals(signum).name)
    say(f"waiting for {settings.phjob_artifact_staging}/done")
    code = await _deliver_once(settings, stop=stop)
    if stay and stop.first_at is None:
        say("finished; staying until stopped")
        await stop.event.wait()
    return code


async def _deliver_once(settings: UploaderSettings, *, stop: _Stop) -> int:
    staging = settings.phjob_artifact_staging
    try:
        done = await wait_for_done(
            staging,
            timeout=settings.uploader_wait_timeout_seconds,
            stop=stop,
            stop_grace=settings.uploader_stop_grace_seconds,
        )
    except StagingError as err:
        say(f"failed: {err}")
        return EXIT_FAILED
    if isinstance(done, str):
        say(f"{done}; nothing uploaded")
        return EXIT_NO_MARKER
    if done.outcome == "none":
        say(f"nothing to upload ({done.message or 'the job collected nothing'})")
        return EXIT_OK
    if done.job and done.job != settings.phjob_name:
        say(f"failed: {staging}/done is for job {done.job!r}, not {settings.phjob_name!r}")
        return EXIT_FAILED
    receipt = read_receipt(staging)
    if receipt is not None and (receipt.job, receipt.ended_at) == (
        settings.phjob_name,
        done.ended_at,
    ):
        say(f"already uploaded ({_count(receipt.file_count)}); nothing to do")
        return EXIT_OK
    stop.uploading = True
    try:
        async with open_s3(
            settings,
            max_connections=settings.uploader_concurrency,
            max_attempts=settings.uploader_attempts,
        ) as s3:
            delivery = await deliver(
                done,
                staging=staging,
                s3=s3,
                bucket=settings.phfs_bucket,
                job=settings.phjob_name,
                group=settings.group_name,
                tuning=Tuning(concurrency=settings.uploader_concurrency),
            )
    except UploadFailed as err:
        say(
            f"failed, no expiredAt written: {err} "
            f"(each request tried up to {settings.uploader_attempts} times)"
        )
        return EXIT_FAILED
    finally:
        stop.uploading = False
    write_receipt(
        staging,
        Receipt(
            job=settings.phjob_name,
            ended_at=done.ended_at,
            file_count=delivery.file_count,
            total_size=delivery.total_size,
        ),
    )
    expiry = (
        "kept until deleted by hand"
        if delivery.expired_at is None
        else f"expiredAt {delivery.expired_at}"
    )
    if done.outcome == "skipped":
        say(f"manifest written for a skipped collection ({done.message}); {expiry}")
    else:
        say(
            f"{_count(delivery.file_count)}, {delivery.total_size} B uploaded to "
            f"s3://{settings.phfs_bucket}/{delivery.prefix} in {delivery.seconds:.1f} s; "
            f"{expiry}"
        )
    return EXIT_OK


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m artifacts_controller.uploader",
        description="Upload a job's staged artifacts once run-job.sh has written its done "
        "marker. Settings come from the environment; these flags override them.",
    )
    parser.add_argument("--staging", type=Path, help="the staging folder (PHJOB_ARTIFACT_STAGING)")
    parser.add_argument("--job", help="the job's name (PHJOB_NAME)")
    parser.add_argument("--group", help="the job's group name (GROUP_NAME)")
    parser.add_argument("--concurrency", type=int, help="requests at once (UPLOADER_CONCURRENCY)")
    parser.add_argument("--attempts", type=int, help="attempts per request (UPLOADER_ATTEMPTS)")
    parser.add_argument(
        "--wait-timeout",
        type=float,
        help="seconds to wait for the done marker, 0: it must exist already "
        "(UPLOADER_WAIT_TIMEOUT_SECONDS)",
    )
    parser.add_argument(
        "--stop-grace",
        type=float,
        help="seconds to wait for the marker after SIGTERM (UPLOADER_STOP_GRACE_SECONDS)",
    )
    parser.add_argument(
        "--stay-until-stopped",
        action="store_true",
        help="after finishing, wait for SIGTERM/SIGINT before exiting (native sidecars)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    flags = {
        "phjob_artifact_staging": args.staging,
        "phjob_name": args.job,
        "group_name": args.group,
        "uploader_concurrency": args.concurrency,
        "uploader_attempts": args.attempts,
        "uploader_wait_timeout_seconds": args.wait_timeout,
        "uploader_stop_grace_seconds": args.stop_grace,
    }
    try:
        settings = load_settings(
            UploaderSettings, **{name: value for name, value in flags.items() if value is not None}
        )
    except SettingsError as err:
        say(str(err))
        return EXIT_SETTINGS
    return asyncio.run(_run(settings, stay=args.stay_until_stopped))


def console() -> None:
    """The ``artifacts-uploader`` console script."""
    sys.exit(main())


if __name__ == "__main__":
    console()
