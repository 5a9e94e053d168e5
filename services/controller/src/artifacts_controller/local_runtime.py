"""The local runtime (``CONTROLLER_RUNTIME=local``): PhJobs as processes, for the dev stack.

No Kubernetes: the api writes PhJobs into the local job store (``LOCAL_JOBS_DIR``) and this
runtime writes their status there. Each job runs as ``bash run-job.sh <command>`` in a home
of its own (``LOCAL_RUNTIME_DIR/<job>/home``), in a process group of its own, with the same
contract variables a pod gets (``s3`` delivery); when the script ends, the uploader sends
the staged artifacts to the bucket, exactly as the pod's sidecar would, with the job's log
(``job.log``: its output, which this process captured, then run-job.sh's lines; the
uploader's own lines go to ``uploader.log``). It is a
``reconcile.Runtime``: the reconcile driver and the phase rules are the Kubernetes
runtime's; only the observation differs.

Jobs cannot reach each other's folders: run as root, the controller gives each job a uid
of its own and folders only that uid can enter (``isolation.py``); otherwise it says at
start that the local runtime is single-tenant.

Cancel sends SIGTERM to the job's process group (run-job.sh forwards it to the command, then
collects), and SIGKILL if it is still there after the grace period. A job that runs longer
than its ``activeDeadlineSeconds`` is stopped the same way and ends Failed with the reason
``DeadlineExceeded``, as the kubelet fails a pod past its deadline. Instance types are
checked (an unknown one fails the job) but not enforced: a local process has no cgroup of
its own to hold CPU or memory to a preset. When run-job.sh has ended, so has everything
the job started (every process of its uid, or of its session), before its staged
artifacts are read.

When the controller stops it stops its jobs the same way (the dev stack stops as a whole).
What survives a restart is on disk: ``run.json`` (the process and when it started),
``result.json`` (how it ended), and the staging folder's ``done`` marker (the command's
exit code, written by run-job.sh). A job found running with no process of ours is adopted:
its process, if still alive, is watched until it ends; then its staged artifacts are
delivered and its exit code read from the marker. A job whose process vanished without a
marker ends Failed with a message.

Deleting a job: nothing of ours deletes a job from the store (the api has no such
operation); an operator removes its folder from ``LOCAL_JOBS_DIR``. The runtime plays
Kubernetes' finalizer for it (``orphans.py``): while the orphan grace is above 0 it
holds every job it reconciles by keeping a copy in ``LOCAL_RUNTIME_DIR/.held/<job>.json``
(its status kept current). A held job whose folder has gone reads as being deleted (a
``deletionTimestamp``, our finalizer): the reconciler stops it if it runs, waits for its
upload to end, shortens its artifacts' expiry, then ``release`` removes the copy and the
job's run folder, as Kubernetes removes a deleted job's pod. The copy is on disk, so a
job deleted while the controller was down is found at its next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn, Self

from artifacts_controller.contract import (
    RUN_JOB_SCRIPT,
    contract_env,
    effective_policy,
    uploader_env,
)
from artifacts_controller.expiry_feed import ExpiryFeed
from artifacts_controller.inputs import InputsError, place_inputs
from artifacts_controller.isolation import (
    JobUsers,
    end_processes,
    isolation,
    prepare_folders,
    seal_folder,
)
from artifacts_controller.metrics import ControllerMetrics
from artifacts_controller.orphans import FINALIZER, OrphanGrace
from artifacts_controller.phases import (
    Observation,
    RunState,
    advance,
    cancelled,
    collecting,
    exit_message,
    failed,
    upload_failed_message,
    utcnow,
)
from artifacts_controller.reconcile import Reconciler, Step, job_queue
from artifacts_controller.settings import ControllerSettings
from artifacts_controller.staging import DONE, StagingError, read_done
from artifacts_controller.transfer import MIB
from artifacts_shared.input_holds import InputHolds
from artifacts_shared.instance_types import UnknownInstanceTypeError
from artifacts_shared.jobstore import JobNotFoundError, LocalJobStore
from artifacts_shared.phjob import JobId, PhJob, PhJobStatus, is_job_id
from artifacts_shared.s3 import S3Client

__all__ = ["UPLOADER", "LocalRuntime", "run_local"]

log = logging.getLogger(__name__)

UPLOADER = [sys.executable, "-m", "artifacts_controller.uploader", "--wait-timeout", "0"]
"""The uploader, run once the script has ended: the done marker must exist already."""

_UPLOADER_LOG = "uploader.log"
_HELD = ".held"
"""Copies of the jobs we hold (our finalizer): a name no job id can take."""
_RUN_FILE = "run.json"
_RESULT_FILE = "result.json"
_POLL_CHILD_SECONDS = 0.1


def _write_json(path: Path, document: dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with _open_private(temporary, os.O_TRUNC) as stream:
        stream.write(json.dumps(document).encode())
    os.replace(temporary, path)


def _open_private(path: Path, flags: int = os.O_APPEND) -> Any:
    """``path`` for writing, readable by the controller's user alone."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | flags, 0o600), "wb")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first), if any."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot: with the pid, it names one process
    (a pid alone may have been reused by now)."""
    fields = _stat(pid)
    return fields[19] if fields else None


def _alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _stat(pid)
    if fields is None:  # no /proc: trust the signal
        return True
    if fields[0] in ("Z", "X"):  # ended, waiting for its parent to notice
        return False
    return started is None or fields[19] == started


def _end_session(sid: int) -> None:
    """SIGKILL what is left of a job's session (a single-tenant runtime's jobs share a uid,
    so the session is what tells theirs apart; a process that left it escapes this)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(sid, signal.SIGKILL)
    try:
        entries = list(Path("/proc").iterdir())
    except OSError:
        return  # no /proc: the process group above is what we can reach
    for entry in entries:
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if (
            fields is not None and int(fields[3]) == sid
        ):  # the session id: the job's groups (set -m) share it
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)


def _log_removal_error(function: Any, path: str, error: tuple[Any, BaseException, Any]) -> None:
    if not isinstance(error[1], FileNotFoundError):
        log.warning("could not remove %s of a deleted job: %s", path, error[1])


async def _wait(process: subprocess.Popen[bytes]) -> int:
    while (code := process.poll()) is None:
        await asyncio.sleep(_POLL_CHILD_SECONDS)
    return code


@dataclass
class _Run:
    """One job's run as this controller process knows it."""

    job_id: str
    folder: Path
    pid: int
    started_at: datetime
    process_start: str | None = None
    uid: int | None = None
    """The job's own user, when the runtime isolates jobs."""
    command_ended_at: datetime | None = None
    exit_code: int | None = None
    upload_code: int | None = None
    finished_at: datetime | None = None
    signalled: bool = False
    lost: bool = False
    deadline_seconds: int | None = None
    """Set when the run was stopped for running past the job's activeDeadlineSeconds."""

    @property
    def name(self) -> str:
        return f"local-{self.pid}"

    def observe(self) -> Observation:
        if self.finished_at is None:
            if self.command_ended_at is None:
                return Observation(RunState.RUNNING, self.name, started_at=self.started_at)
            return collecting(self.name, started_at=self.started_at)
        if self.deadline_seconds is not None:
            return Observation(
                RunState.FAILED,
                self.name,
                started_at=self.started_at,
                finished_at=self.finished_at,
                reason="DeadlineExceeded",
                message=f"the job ran longer than its activeDeadlineSeconds "
                f"({self.deadline_seconds} s): it was stopped and its artifacts collected",
            )
        if self.exit_code not in (0, None):
            return Observation(
                RunState.FAILED,
                self.name,
                started_at=self.started_at,
                finished_at=self.finished_at,
                reason="Error",
                message=exit_message(self.exit_code),
            )
        if self.upload_code != 0:
            return Observation(
                RunState.FAILED,
                self.name,
                started_at=self.started_at,
                finished_at=self.finished_at,
                reason="UploadFailed",
                message=upload_failed_message(self.upload_code),
            )
        return Observation(
            RunState.SUCCEEDED,
            self.name,
            started_at=self.started_at,
            finished_at=self.finished_at,
        )


class LocalRuntime:
    """``reconcile.Runtime`` on the local job store and local processes.

    ``async with`` it: the task group that watches the runs lives as long as the block,
    and leaving it stops every job still running (see ``_stop_all``). ``on_change`` is
    called with a job's id when its run changed on its own (the command or the upload
    ended), so the caller reconciles it.
    """

    def __init__(
        self,
        *,
        store: LocalJobStore,
        settings: ControllerSettings,
        script: Path,
        metrics: ControllerMetrics,
        on_change: Callable[[str], None],
        s3: S3Client,
        uploader: list[str] | None = None,
    ) -> None:
        self._store = store
        self._s3 = s3
        self._settings = settings
        self._root = settings.local_runtime_dir
        self._installed_script = script
        self._script = self._root / RUN_JOB_SCRIPT
        self._metrics = metrics
        self._on_change = on_change
        self._uploader = uploader or UPLOADER
        self._runs: dict[str, _Run] = {}
        self._users: JobUsers | None = None
        self._group: asyncio.TaskGroup | None = None

    async def __aenter__(self) -> Self:
        self._root.mkdir(parents=True, exist_ok=True)
        self._users = isolation(self._root, self._settings.job_uid_range, euid=os.geteuid())
        # A copy every job's user can read: the installed one may lie where only we can.
        shutil.copyfile(self._installed_script, self._script)
        self._script.chmod(0o755)
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop_all()
        group, self._group = self._group, None
        if group is not None:
            # Leaving by an error or a cancellation cancels the watchers; a plain exit
            # waits for the runs to end.
            await group.__aexit__(kind, error, traceback)

    def _stop_all(self) -> None:
        """The dev stack stops: so do its jobs. run-job.sh collects as it is stopped, and the
        next start delivers what it staged (see ``_adopt``)."""
        for run in self._runs.values():
            if run.command_ended_at is None and run.pid and _alive(run.pid, run.process_start):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(run.pid, signal.SIGTERM)

    async def get(self, name: str) -> PhJob | None:
        held = self._held_path(name)
        try:
            job = self._store.get(name)
        except JobNotFoundError:
            kept = _read_json(held) if held is not None else None
            if kept is None:
                return None
            # Gone from the store while we held it: being deleted, as Kubernetes shows it.
            job = PhJob.from_k8s(kept)
            metadata = job.metadata.model_copy(
                update={"deletion_timestamp": utcnow(), "finalizers": (FINALIZER,)}
            )
            return job.model_copy(update={"metadata": metadata})
        if held is not None and held.exists():
            metadata = job.metadata.model_copy(update={"finalizers": (FINALIZER,)})
            job = job.model_copy(update={"metadata": metadata})
        return job

    async def write_status(self, job: PhJob, status: PhJobStatus) -> str | None:
        held = self._held_path(job.metadata.name)
        if held is not None and held.exists():
            self._keep(held, job.model_copy(update={"status": status}))
        try:
            self._store.write_status(job.metadata.name, status)
        except JobNotFoundError:
            if job.metadata.deletion_timestamp is None:
                raise
        return None

    def _held_path(self, name: str) -> Path | None:
        return self._root / _HELD / f"{name}.json" if is_job_id(name) else None

    def _keep(self, path: Path, job: PhJob) -> None:
        path.parent.mkdir(mode=0o700, exist_ok=True)
        document = job.to_k8s()
        document["metadata"].pop("finalizers", None)
        document["metadata"].pop("deletionTimestamp", None)
        _write_json(path, document)

    def held_ids(self) -> set[JobId]:
        """The jobs we hold, whether or not the store still has them."""
        try:
            names = [path.stem for path in (self._root / _HELD).glob("*.json")]
        except OSError:
            return set()
        return {JobId(name) for name in names if is_job_id(name)}

    async def hold(self, job: PhJob) -> PhJob:
        held = self._held_path(job.metadata.name)
        if held is None:
            return job
        self._keep(held, job)
        metadata = job.metadata.model_copy(update={"finalizers": (FINALIZER,)})
        return job.model_copy(update={"metadata": metadata})

    async def run_ended(self, job: PhJob) -> bool:
        run = self._runs.get(job.metadata.name)
        return run is None or run.finished_at is not None or run.lost

    async def release(self, job: PhJob) -> None:
        name = job.metadata.name
        self._runs.pop(name, None)
        held = self._held_path(name)
        if held is None:
            return
        # The job is gone: so is its run folder (home, staging, logs), as a pod goes.
        shutil.rmtree(self._folder(name), onerror=_log_removal_error)
        held.unlink(missing_ok=True)

    async def step(self, job: PhJob, *, now: datetime) -> Step:
        status = job.status
        run = self._runs.get(job.metadata.name)
        if run is None and status.pod_name is not None:
            run = self._adopt(job)  # started by an earlier controller process
        if job.spec.cancel:
            if run is not None:
                self._stop(run)
            return Step(cancelled(status, now=now))
        if run is None:
            try:
                if job.spec.instance_type:
                    self._settings.instance_type(job.spec.instance_type)
            except UnknownInstanceTypeError as err:
                message = f"instanceType: {err}"
                return Step(failed(status, now=now, reason="InvalidSpec", message=message))
            try:
                run = await self._start(job)
            except InputsError as err:
                return Step(failed(status, now=now, reason="InputsFailed", message=err.message))
        elif run.lost:
            return Step(
                failed(
                    status,
                    now=now,
                    reason="RunLost",
                    message=f"the job's process {run.pid} ended while the controller was down, "
                    "without collecting its artifacts",
                )
            )
        self._enforce_deadline(job, run, now)
        return Step(advance(status, run.observe(), now=now))

    # -- starting and stopping ----------------------------------------------------------

    def _folder(self, job_id: str) -> Path:
        return self._root / job_id

    def _env(self, job: PhJob, folder: Path) -> dict[str, str]:
        policy = effective_policy(job, self._settings)
        contract = contract_env(job, policy, delivery="s3", staging=str(folder / "staging"))
        # A small environment of its own: the controller's (S3 credentials...) is not the job's.
        base = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(folder / "home"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
        }
        return base | contract

    async def _start(self, job: PhJob) -> _Run:
        folder = self._folder(job.metadata.name)
        uid = None if self._users is None else self._users.claim(job.metadata.name)
        if uid is None:
            (folder / "home").mkdir(parents=True, exist_ok=True)
            (folder / "staging").mkdir(exist_ok=True)
            as_user: dict[str, Any] = {}
        else:
            prepare_folders(folder, uid)
            as_user = {"user": uid, "group": uid, "extra_groups": []}
        env = self._env(job, folder)
        try:
            if job.spec.input_artifacts:
                await self._place_inputs(job, folder / "home" / "inputs", uid)
            with _open_private(self._settings.local_job_log(job.metadata.name)) as output:
                # subprocess, not asyncio's: asyncio kills a child whose transport is
                # collected, and the job's fate must be ours to decide (see _stop_all).
                process = subprocess.Popen(
                    ["bash", str(self._script), job.spec.command],
                    cwd=folder / "home",
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: cancel reaches it all
                    **as_user,
                )
        except BaseException:
            self._finish_user(folder, uid)
            raise
        run = _Run(
            job.metadata.name, folder, process.pid, utcnow(), _process_start(process.pid), uid
        )
        _write_json(
            folder / _RUN_FILE,
            {
                "pid": process.pid,
                "processStart": run.process_start,
                "startedAt": run.started_at.isoformat(),
                "uid": uid,
            },
        )
        self._runs[run.job_id] = run
        self._metrics.pods_created.inc()
        self._spawn(self._supervise(run, process, env), run)
        return run

    async def _place_inputs(self, job: PhJob, target: Path, uid: int | None) -> None:
        """The job's inputs in its home, by this process (the job never holds S3 keys),
        before anything of the job runs; ``InputsError`` when they cannot be."""
        inputs = job.spec.input_artifacts or ()
        placed = await place_inputs(
            inputs,
            target,
            s3=self._s3,
            bucket=self._settings.phfs_bucket,
            limit_bytes=effective_policy(job, self._settings).limit_size_mb * MIB,
            owner=uid,
        )
        log.info(
            "%s: placed %d input files (%d bytes) of %d jobs",
            job.metadata.name, placed.files, placed.bytes, len(inputs),
        )  # fmt: skip

    def _finish_user(self, folder: Path, uid: int | None) -> None:
        """The job has ended for good: its folder closes, its uid is free again."""
        if uid is not None and self._users is not None:
            seal_folder(folder)
            self._users.release(uid)

    def _end_processes(self, run: _Run) -> None:
        """SIGKILL what is left of a job once run-job.sh has ended, as the end of a pod's
        container would: background processes the command left behind, timers."""
        if run.uid is not None:
            end_processes(run.uid)
        elif run.pid:
            _end_session(run.pid)

    def _spawn(self, work: Coroutine[Any, Any, None], run: _Run) -> asyncio.Task[None]:
        if self._group is None:
            raise RuntimeError("the local runtime is not running")
        return self._group.create_task(work, name=f"run {run.job_id}")

    def _enforce_deadline(self, job: PhJob, run: _Run, now: datetime) -> None:
        deadline = job.spec.active_deadline_seconds
        if deadline is None or run.deadline_seconds is not None or run.command_ended_at:
            return
        if now - run.started_at >= timedelta(seconds=deadline):
            log.info("%s: past its activeDeadlineSeconds (%s s); stopping it", run.job_id, deadline)
            run.deadline_seconds = deadline
            self._stop(run, "deadline")

    def _stop(self, run: _Run, why: str = "cancel") -> None:
        if run.signalled or run.command_ended_at is not None:
            return
        if not run.pid or not _alive(run.pid, run.process_start):
            return  # an adopted run whose process is gone: that pid may be someone else's now
        run.signalled = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(run.pid, signal.SIGTERM)
        self._metrics.pods_deleted.labels(why).inc()
        grace = self._settings.job_termination_grace_seconds
        self._spawn(self._kill_after(run, grace), run)

    async def _kill_after(self, run: _Run, grace: float) -> None:
        await asyncio.sleep(grace)
        if run.command_ended_at is None:
            log.warning("%s: still running %s s after SIGTERM; killing it", run.job_id, grace)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(run.pid, signal.SIGKILL)

    # -- watching a run to its end ---------------------------------------------------------

    async def _supervise(
        self, run: _Run, process: subprocess.Popen[bytes], env: dict[str, str]
    ) -> None:
        code = await _wait(process)
        run.exit_code = code if code >= 0 else 128 - code  # killed by a signal: as a shell says
        self._end_processes(run)
        await self._deliver(run, env)

    async def _deliver(self, run: _Run, env: dict[str, str]) -> None:
        run.command_ended_at = utcnow()
        self._on_change(run.job_id)
        if not (run.folder / "staging" / DONE).exists():
            log.warning("%s: run-job.sh left no done marker; nothing to upload", run.job_id)
            run.upload_code = 0 if run.exit_code not in (0, None) else 1
        else:
            run.upload_code = await self._upload(run, env)
        run.finished_at = utcnow()
        _write_json(
            run.folder / _RESULT_FILE,
            {
                "exitCode": run.exit_code,
                "uploadExitCode": run.upload_code,
                "finishedAt": run.finished_at.isoformat(),
            },
        )
        self._finish_user(run.folder, run.uid)
        self._on_change(run.job_id)

    async def _upload(self, run: _Run, env: dict[str, str]) -> int:
        env = uploader_env(env, self._settings, with_keys=True)
        if run.uid is not None:  # what the job's user does not own is not the job's to hand over
            env["UPLOADER_OWNER_UID"] = str(run.uid)
        # The file this process opened for the job's output, in a folder the job cannot
        # write, complete now that run-job.sh has exited: the log delivered with the
        # artifacts. The uploader's own lines go beside it, so that the log served live
        # and the one kept are the same bytes (as a pod's job container log is).
        log = self._settings.local_job_log(run.job_id)
        env["UPLOADER_JOB_LOG"] = str(log)
        with _open_private(log.with_name(_UPLOADER_LOG)) as output:
            process = subprocess.Popen(
                [*self._uploader, "--exit-code", str(run.exit_code)],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        # If the controller stops meanwhile, the uploader finishes on its own; a restart
        # delivers again, which the uploader makes safe (the same keys, expiredAt last).
        return await _wait(process)

    def _adopt(self, job: PhJob) -> _Run:
        """A run this process did not start: from its files, and its process if alive."""
        folder = self._folder(job.metadata.name)
        record = _read_json(folder / _RUN_FILE) or {}
        pid = int(record.get("pid") or 0)
        started = job.status.start_time or utcnow()
        process_start = record.get("processStart")
        uid = record.get("uid")
        run = _Run(job.metadata.name, folder, pid, started, process_start, uid)
        self._runs[run.job_id] = run
        result = _read_json(folder / _RESULT_FILE)
        if result is not None:  # it ended and was delivered; only the status was not written
            run.exit_code = result.get("exitCode")
            run.upload_code = result.get("uploadExitCode")
            run.command_ended_at = run.finished_at = utcnow()
            self._finish_user(folder, uid)
            return run
        self._spawn(self._follow_adopted(run), run)
        return run

    async def _follow_adopted(self, run: _Run) -> None:
        while run.pid and _alive(run.pid, run.process_start):
            await asyncio.sleep(self._settings.local_poll_seconds)
        self._end_processes(run)
        try:
            marker = read_done(run.folder / "staging")
        except StagingError as err:
            log.warning("%s: %s", run.job_id, err)
            marker = None
        if marker is None or marker.exit_code is None:
            run.lost = True
            self._finish_user(run.folder, run.uid)
            self._on_change(run.job_id)
            return
        run.exit_code = marker.exit_code
        job = await self.get(run.job_id)  # a job deleted while we held it reads as such
        if job is None:
            run.lost = True
            self._finish_user(run.folder, run.uid)
            self._on_change(run.job_id)
            return
        await self._deliver(run, self._env(job, run.folder))


async def run_local(
    settings: ControllerSettings,
    metrics: ControllerMetrics,
    script: Path,
    expiry_feed: ExpiryFeed,
    orphans: OrphanGrace,
    *,
    s3: S3Client,
    input_holds: InputHolds,
) -> NoReturn:
    """Scan the job store every ``LOCAL_POLL_SECONDS`` and reconcile what is unfinished, and
    what we hold that has gone from it, until cancelled; the jobs still running stop with it."""
    store = LocalJobStore(settings.local_jobs_dir)
    finished: set[str] = set()

    async def reconcile(job_id: str) -> None:
        outcome = await reconciler.reconcile_name(job_id)
        if outcome is None or outcome.status.finished:
            finished.add(job_id)

    async with (
        job_queue(reconcile, settings=settings, metrics=metrics) as queue,
        LocalRuntime(
            store=store,
            settings=settings,
            script=script,
            metrics=metrics,
            on_change=queue.submit,
            s3=s3,
        ) as runtime,
    ):
        reconciler = Reconciler(
            runtime,
            metrics=metrics,
            expiry_feed=expiry_feed,
            orphans=orphans,
            input_holds=input_holds,
        )
        while True:
            present = set(store.ids())
            for job_id in sorted(present - finished):
                queue.submit(job_id)
            for job_id in sorted(runtime.held_ids() - present):
                queue.submit(job_id)  # deleted while held
            await asyncio.sleep(settings.local_poll_seconds)
    raise AssertionError("the scan never ends")
