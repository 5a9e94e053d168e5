"""``python -m artifacts_controller.uploader``: deliver a job's staged artifacts to the bucket.

The ``s3`` delivery mode's second half (ARCHITECTURE section 4), on our side of the trust
boundary: run-job.sh copies the job's files into the staging folder and writes ``done``
last (``staging.py``); this process learns that the job has ended, then delivers
(``delivery.py``: our own walk, our own limits, our own clock, then ``manifest.json``,
then ``expiredAt``; the job's log with them when ``UPLOADER_JOB_LOG`` names the file our
side captured it in, see ``joblog.py``), and puts the folder into the expiry index when it
has a ``REDIS_URL``. How it learns the job has ended depends on where it runs:

- a native sidecar (``--when-stopped``, Kubernetes 1.29+): the kubelet sends it SIGTERM
  only once the job container has ended, also when the pod is deleted. It waits for that
  signal, then up to ``--stop-grace`` seconds for ``done``. A marker that appears while
  the job still runs starts nothing.
- the local runtime: the controller starts it once run-job.sh has exited, with
  ``--wait-timeout 0`` (``done`` must exist already) and the exit code it saw.
- an ordinary second container (older clusters, nothing tells it when the job container
  ends): it waits for ``done``, so a job can start its own upload early. That costs the
  job its later files and nothing else: what is kept, and for how long, is decided here
  as always. Prefer the native sidecar.

Without ``--when-stopped``, SIGTERM or SIGINT while waiting does not stop it at once -- a
deleted pod's containers get SIGTERM together, and the job container is collecting --
it waits ``--stop-grace`` seconds more for ``done``. A signal during the upload is noted
and the upload finishes.

Exit codes: 0 delivered, or nothing to deliver; 1 the delivery failed (bucket unreachable
after retries, staging folder unreadable) and no ``expiredAt`` exists; 2 bad settings;
3 no ``done`` came.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from artifacts_controller.delivery import Delivery, DeliveryFailed, Policy, deliver
from artifacts_controller.direct_put import open_direct_put
from artifacts_controller.settings import UploaderSettings
from artifacts_controller.staging import Done, StagingError, read_done
from artifacts_controller.transfer import MIB, Tuning
from artifacts_shared.s3 import open_s3
from artifacts_shared.settings import RedisSettings, SettingsError, load_settings

__all__ = ["console", "main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_SETTINGS = 2
EXIT_NO_MARKER = 3
POLL_SECONDS = 0.2
USER_AGENT = "artifacts-uploader/0.1.0"


def say(line: str) -> None:
    print(f"uploader: {line}", file=sys.stderr, flush=True)


class _Stop:
    """Signals received: when the first came, and whether an upload was under way."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.first_at: float | None = None
        self.wall_time: float | None = None
        self.uploading = False

    def request(self, name: str) -> None:
        if self.first_at is None:
            self.first_at, self.wall_time = time.monotonic(), time.time()
        doing = "finishing the upload first" if self.uploading else "stopping"
        say(f"{name} received; {doing}")
        self.event.set()


async def _wait_for_done(
    staging: Path, *, timeout: float | None, stop: _Stop, stop_grace: float
) -> Done | str:
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
                # Wake at once on a first signal: the grace period counts from it.
                await asyncio.wait_for(stop.event.wait(), POLL_SECONDS)


def _policy(settings: UploaderSettings) -> Policy:
    return Policy(
        job=settings.phjob_name,
        group=settings.group_name,
        enabled=settings.phjob_artifact_enabled,
        retention_seconds=settings.phjob_artifact_retention_seconds,
        limit_size_mb=settings.phjob_artifact_limit_size_mb,
        limit_files=settings.phjob_artifact_limit_files,
    )


def _report(delivery: Delivery, bucket: str) -> None:
    if delivery.outcome == "none":
        say(f"nothing to upload ({delivery.message})")
        return
    expiry = (
        "kept until deleted by hand"
        if delivery.expired_at is None
        else f"expiredAt {delivery.expired_at}"
    )
    where = f"s3://{bucket}/{delivery.prefix}"
    if delivery.outcome == "skipped":
        say(f"{delivery.message}; manifest written to {where}; {expiry}")
    else:
        say(f"{delivery.message} to {where} in {delivery.seconds:.1f} s; {expiry}")


async def _run(settings: UploaderSettings, *, when_stopped: bool) -> int:
    stop = _Stop()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.request, signal.Signals(signum).name)
    staging = settings.phjob_artifact_staging
    grace = settings.uploader_stop_grace_seconds
    if when_stopped:
        say("waiting for the job container to end (SIGTERM from the kubelet)")
        await stop.event.wait()
        timeout: float | None = grace
    else:
        say(f"waiting for {staging}/done")
        timeout = settings.uploader_wait_timeout_seconds
    try:
        done = await _wait_for_done(staging, timeout=timeout, stop=stop, stop_grace=grace)
    except StagingError as err:
        say(f"failed, no expiredAt written: {err}")
        return EXIT_FAILED
    if isinstance(done, str):
        say(f"{done}; nothing uploaded")
        return EXIT_NO_MARKER
    # The end time is ours: when we learnt that the job had ended.
    ended_at = stop.wall_time if when_stopped and stop.wall_time is not None else time.time()
    exit_code = settings.uploader_exit_code
    stop.uploading = True
    connections, attempts = settings.uploader_concurrency, settings.uploader_attempts
    try:
        async with (
            open_s3(
                settings,
                max_connections=connections,
                max_attempts=attempts,
                sign_payloads=False,  # transfer.py hashes every body once, itself
                # Per call, botocore would rebuild its user agent and check every parameter
                # against its model: a third of the CPU a small file costs.
                botocore_options={"user_agent": USER_AGENT, "parameter_validation": False},
            ) as s3,
            open_direct_put(settings, connections=connections, attempts=attempts) as direct,
        ):
            delivery = await deliver(
                staging,
                policy=_policy(settings),
                ended_at=int(ended_at),
                exit_code=done.exit_code if exit_code is None else exit_code,
                s3=s3,
                bucket=settings.phfs_bucket,
                tuning=Tuning(concurrency=settings.uploader_concurrency),
                owner=settings.uploader_owner_uid,
                direct=direct,
                job_log=settings.uploader_job_log,
                job_log_limit=settings.phjob_log_limit_mb * MIB,
                say=say,
            )
    except DeliveryFailed as err:
        say(
            f"failed, no expiredAt written: {err} "
            f"(each request tried up to {settings.uploader_attempts} times)"
        )
        return EXIT_FAILED
    finally:
        stop.uploading = False
    _report(delivery, settings.phfs_bucket)
    await _index(settings, delivery)
    return EXIT_OK


async def _index(settings: UploaderSettings, delivery: Delivery) -> None:
    """Put the folder into the expiry index when there is a ``REDIS_URL`` (the local
    runtime's uploader has one; a pod's sidecar has none, and the controller indexes the job
    when it sees it end)."""
    if settings.redis_url is None or delivery.prefix is None or delivery.expired_at is None:
        return
    # Imported here, once the files are up: redis-py is a quarter of a second of the
    # sidecar's start-up, which every job's collection waits for, and a pod never needs it.
    from redis.exceptions import RedisError

    from artifacts_shared.expiry_index import ExpiryIndex
    from artifacts_shared.redis import open_redis

    try:
        async with open_redis(RedisSettings(redis_url=settings.redis_url)) as redis:
            await ExpiryIndex(redis).add(delivery.prefix, delivery.expired_at)
    except (RedisError, OSError) as err:
        # Delivered all the same: the index only says when to look, and the janitor's
        # rescan finds a folder it misses.
        say(f"could not put {delivery.prefix} into the expiry index: {err}")


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m artifacts_controller.uploader",
        description="Deliver a job's staged artifacts once the job has ended. Settings come "
        "from the environment; these flags override them.",
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
        "--exit-code", type=int, help="the job's exit code, as seen (UPLOADER_EXIT_CODE)"
    )
    parser.add_argument(
        "--when-stopped",
        action="store_true",
        help="deliver once SIGTERM/SIGINT says the job container has ended (native sidecars)",
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
        "uploader_exit_code": args.exit_code,
    }
    try:
        settings = load_settings(
            UploaderSettings, **{name: value for name, value in flags.items() if value is not None}
        )
    except SettingsError as err:
        say(str(err))
        return EXIT_SETTINGS
    return asyncio.run(_run(settings, when_stopped=args.when_stopped))


def console() -> None:
    """The ``artifacts-uploader`` console script."""
    sys.exit(main())


if __name__ == "__main__":
    console()
