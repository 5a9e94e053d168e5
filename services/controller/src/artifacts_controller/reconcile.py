"""Reconciling one PhJob: one driver for both runtimes, which differ only behind ``Runtime``.

A pass is level-triggered and idempotent (kopf ``docs/idempotence.rst``): the runtime looks
at the job's run (a pod, or a local process), acts where the spec asks (start it, stop it)
and says what the status should be; the driver writes the status only when it differs,
counts the transition and logs it. Running a pass twice, or after a crash between two of
its steps, does no harm. The phase rules themselves are ``phases.py``'s.

A deleted PhJob (``orphans.py``): while the orphan grace is above 0 each job is held by
our finalizer. Once it is being deleted, a pass stops it as a cancel would, waits for
its run to end (the collection writes the folder's ``expiredAt`` last, which must not
undo ours), shortens the folder's expiry, and only then lets the PhJob go. A crash in
between repeats the steps, each of which is safe twice.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from redis.exceptions import RedisError

from artifacts_controller.expiry_feed import ExpiryFeed
from artifacts_controller.metrics import ControllerMetrics
from artifacts_controller.orphans import FINALIZER, OrphanGrace
from artifacts_controller.phases import utcnow
from artifacts_controller.queueing import KeyedQueue
from artifacts_controller.settings import ControllerSettings
from artifacts_shared.input_holds import InputHolds
from artifacts_shared.layout import JobPrefix, UnsafeNameError, job_prefix
from artifacts_shared.phjob import PhJob, PhJobPhase, PhJobStatus

__all__ = ["Pass", "Reconciler", "Runtime", "Step", "job_queue"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Step:
    """What a runtime decided for one job: the status it should have, and the version of
    the run object it looked at (a pod's resourceVersion; None where there is none)."""

    status: PhJobStatus
    run_version: str | None = None


class Runtime(Protocol):
    """Where jobs run: Kubernetes pods (``kube_runtime``) or local processes (``local_runtime``)."""

    async def get(self, name: str) -> PhJob | None:
        """The PhJob as its store has it now; None when it no longer exists."""
        ...

    async def step(self, job: PhJob, *, now: datetime) -> Step:
        """Start, stop or look at the job's run; the status it should have now."""
        ...

    async def write_status(self, job: PhJob, status: PhJobStatus) -> str | None:
        """Store the job's new status; the job's version after the write, if it has one."""
        ...

    async def hold(self, job: PhJob) -> PhJob:
        """Put ``FINALIZER`` on the job, so its deletion waits for us; the job after it."""
        ...

    async def run_ended(self, job: PhJob) -> bool:
        """Whether nothing of the job's run is left that could still write its folder."""
        ...

    async def release(self, job: PhJob) -> None:
        """Take ``FINALIZER`` off a job being deleted: it goes, with its run."""
        ...


@dataclass(frozen=True)
class Pass:
    """What one reconcile left behind: the status, and the objects' versions after it.

    The Kubernetes controller remembers the versions to recognise its own writes when their
    watch events come back, and to skip the pass they would cost.
    """

    status: PhJobStatus
    job_version: str | None
    run_version: str | None
    held_version: str | None = None
    """The job's version right after this pass put our finalizer on it, if it did."""


class Reconciler:
    def __init__(
        self,
        runtime: Runtime,
        *,
        metrics: ControllerMetrics,
        expiry_feed: ExpiryFeed,
        orphans: OrphanGrace,
        input_holds: InputHolds,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.runtime = runtime
        self._metrics = metrics
        self._expiry_feed = expiry_feed
        self._orphans = orphans
        self._input_holds = input_holds
        self._clock = clock

    async def reconcile_name(self, name: str) -> Pass | None:
        """Reconcile the PhJob as its store has it now; None if it no longer exists."""
        job = await self.runtime.get(name)
        if job is None:
            return None
        return await self.run_pass(job)

    def wants_hold(self, job: PhJob) -> bool:
        """Whether a pass over ``job`` would put our finalizer on it."""
        metadata = job.metadata
        return (
            self._orphans.enabled
            and metadata.deletion_timestamp is None
            and FINALIZER not in metadata.finalizers
        )

    async def run_pass(self, job: PhJob) -> Pass:
        if job.metadata.deletion_timestamp is not None:
            return await self._deleted(job)
        held = None
        if self.wants_hold(job):
            job = await self.runtime.hold(job)
            held = job.metadata.resource_version
        status = job.status
        if status.finished:
            # A finished job's run is left for its logs; it never changes again.
            return Pass(status, job.metadata.resource_version, None)
        outcome = await self._step(job)
        return dataclasses.replace(outcome, held_version=held)

    async def _deleted(self, job: PhJob) -> Pass:
        if FINALIZER not in job.metadata.finalizers:
            # Not held by us (the grace was 0 when we met it): it goes as Kubernetes decides.
            return Pass(job.status, job.metadata.resource_version, None)
        outcome = Pass(job.status, job.metadata.resource_version, None)
        if self._orphans.enabled:
            if not job.status.finished:
                # Stopped as a cancel stops it: the pod's grace period lets it collect.
                spec = job.spec.model_copy(update={"cancel": True})
                outcome = await self._step(job.model_copy(update={"spec": spec}))
            if not await self.runtime.run_ended(job):
                return outcome  # its run's end (a pod event, the local runtime) brings us back
            await self._orphans.job_deleted(job)
        await self.runtime.release(job)
        log.info("%s: deleted; released", job.metadata.name)
        return outcome

    async def _step(self, job: PhJob) -> Pass:
        status = job.status
        step = await self.runtime.step(job, now=self._clock())
        job_version = job.metadata.resource_version
        if step.status != status:
            job_version = await self.runtime.write_status(job, step.status)
            self._metrics.transitions.labels(step.status.phase.value).inc()
            log.info(
                "%s: %s -> %s %s",
                job.metadata.name,
                status.phase,
                step.status.phase,
                step.status.message or "",
            )
            if step.status.finished:
                # A finished job's folder goes into the expiry index (issue 19).
                await self._expiry_feed.job_finished(job, step.status)
            if _past_inputs(step.status) and not _past_inputs(status):
                await self.release_inputs(job)
        return Pass(step.status, job_version, step.run_version)

    async def release_inputs(self, job: PhJob) -> None:
        """The job no longer needs its input folders kept: placed, ended, or deleted.

        A failure is logged and nothing more: the hold lapses after
        ``ARTIFACT_INPUT_HOLD_SECONDS`` (``artifacts_shared.input_holds``).
        """
        prefixes: list[JobPrefix] = []
        for source in job.spec.input_artifacts or ():
            try:
                prefixes.append(job_prefix(source.group_name, source.job_id))
            except UnsafeNameError:
                continue  # no folder of that name can exist, so none is held
        if not prefixes:
            return
        try:
            await self._input_holds.release(job.metadata.name, prefixes)
        except (RedisError, OSError) as err:
            log.warning(
                "%s: could not release the hold on its inputs (%s); it lapses on its own",
                job.metadata.name,
                err,
            )


def _past_inputs(status: PhJobStatus) -> bool:
    """Whether the job's inputs have been placed (it runs), or will never be needed."""
    return status.phase is PhJobPhase.RUNNING or status.finished


def job_queue(
    handler: Callable[[str], Awaitable[object]],
    *,
    settings: ControllerSettings,
    metrics: ControllerMetrics,
) -> KeyedQueue:
    """The per-PhJob queue both runtimes reconcile through, sized and paced by the settings."""
    return KeyedQueue(
        handler,
        max_parallel=settings.controller_workers,
        backoff_initial=settings.controller_backoff_initial_seconds,
        backoff_max=settings.controller_backoff_max_seconds,
        on_depth=metrics.queue_depth.set,
    )
