"""Reconcile one PhJob on Kubernetes: compare what should exist with what does, then act.

``Reconciler.reconcile`` is level-triggered and idempotent (kopf ``docs/idempotence.rst``):
it reads the pod, decides, and writes only what differs, so running it twice, or after a
crash between two of its steps, does no harm. The pod is named after the job, so a second
create is a 409 and never a second pod; the status is patched only when it changes. A job
whose status names no pod yet is started by creating the pod outright (one request, not a
read then a write); a 409 then says a pod exists, and it is adopted if it is the job's own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from artifacts_controller.expiry_feed import ExpiryFeed
from artifacts_controller.kube import CONFIGMAPS, PHJOBS, PODS, JsonObject, Kube, KubeApiError
from artifacts_controller.metrics import ControllerMetrics
from artifacts_controller.phases import advance, cancelled, failed, vanished
from artifacts_controller.podspec import (
    SCRIPT_KEY,
    SCRIPTS_CONFIGMAP,
    job_pod,
    pod_name_for,
    scripts_configmap,
    sidecar_dropped,
)
from artifacts_controller.podstate import observe_pod, upload_overdue
from artifacts_controller.settings import ControllerSettings
from artifacts_shared.instance_types import UnknownInstanceTypeError
from artifacts_shared.layout import UnsafeNameError
from artifacts_shared.phjob import KIND, PhJob, PhJobStatus

__all__ = ["Pass", "Reconciler", "ScriptsConfigMap", "utcnow"]

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    # Kubernetes times have whole seconds; so do ours, or a re-read status would differ.
    return datetime.now(UTC).replace(microsecond=0)


def status_patch(status: PhJobStatus) -> JsonObject:
    """A merge patch that makes the status exactly ``status``: ``None`` removes a field."""
    return {"status": status.model_dump(mode="json", by_alias=True)}


class ScriptsConfigMap:
    """Keeps the run-job.sh ConfigMap equal to the shipped script.

    Checked before creating a pod, at most once per ``recheck_seconds``: 500 jobs created
    at once need one check, not 500, and a ConfigMap edited by hand is repaired within
    a resync period.
    """

    def __init__(self, kube: Kube, script: str, *, recheck_seconds: float) -> None:
        self._kube = kube
        self._script = script
        self._recheck = recheck_seconds
        self._verified_at: float | None = None
        self._lock = asyncio.Lock()

    async def ensure(self) -> None:
        async with self._lock:
            if (
                self._verified_at is not None
                and time.monotonic() - self._verified_at < self._recheck
            ):
                return
            current = await self._kube.get(CONFIGMAPS, SCRIPTS_CONFIGMAP)
            if current is None:
                try:
                    await self._kube.create(CONFIGMAPS, scripts_configmap(self._script))
                    log.info("created ConfigMap %s", SCRIPTS_CONFIGMAP)
                except KubeApiError as err:
                    if not err.conflict:  # another writer was first: check its content below
                        raise
                    current = await self._kube.get(CONFIGMAPS, SCRIPTS_CONFIGMAP)
            if current is not None and (current.get("data") or {}).get(SCRIPT_KEY) != self._script:
                await self._kube.patch(
                    CONFIGMAPS, SCRIPTS_CONFIGMAP, {"data": {SCRIPT_KEY: self._script}}
                )
                log.info("updated ConfigMap %s to the shipped run-job.sh", SCRIPTS_CONFIGMAP)
            self._verified_at = time.monotonic()


@dataclass(frozen=True)
class Pass:
    """What one reconcile left behind: the status, and the objects' versions after it.

    The controller remembers the versions to recognise its own writes when their watch
    events come back, and to skip the pass they would cost.
    """

    status: PhJobStatus
    job_version: str | None
    pod_version: str | None


def _version(obj: JsonObject) -> str | None:
    version = (obj.get("metadata") or {}).get("resourceVersion")
    return str(version) if version else None


def _owner_uid(pod: JsonObject) -> str | None:
    for owner in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if owner.get("kind") == KIND and owner.get("controller"):
            uid = owner.get("uid")
            return str(uid) if uid else None
    return None


class Reconciler:
    def __init__(
        self,
        *,
        kube: Kube,
        settings: ControllerSettings,
        script: str,
        expiry_feed: ExpiryFeed,
        metrics: ControllerMetrics | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._kube = kube
        self._settings = settings
        self._expiry_feed = expiry_feed
        self._metrics = metrics or ControllerMetrics()
        self._clock = clock
        self.scripts = ScriptsConfigMap(
            kube, script, recheck_seconds=settings.controller_resync_seconds
        )

    async def reconcile_name(self, name: str) -> Pass | None:
        """Reconcile the PhJob as the API server has it now; None if it no longer exists."""
        document = await self._kube.get(PHJOBS, name)
        if document is None:
            return None
        return await self.run_pass(PhJob.from_k8s(document))

    async def reconcile(self, job: PhJob) -> PhJobStatus:
        """Bring the job's pod and status in line with its spec; returns the status."""
        return (await self.run_pass(job)).status

    async def run_pass(self, job: PhJob) -> Pass:
        status = job.status
        if status.finished:
            # A finished job's pod is left for its logs; the garbage collector removes it.
            return Pass(status, job.metadata.resource_version, None)
        now = self._clock()
        if status.pod_name is None and not job.spec.cancel:
            # Never started, as far as the status says: create first, and look only if the
            # name is taken (a pass that died before writing the status, or a stranger).
            desired, pod = await self._start(job, status, now)
        else:
            desired, pod = await self._follow(job, status, now)
        job_version = job.metadata.resource_version
        if desired != status:
            updated = await self._kube.patch(
                PHJOBS, job.metadata.name, status_patch(desired), subresource="status"
            )
            job_version = _version(updated)
            self._metrics.transitions.labels(desired.phase.value).inc()
            log.info(
                "%s: %s -> %s %s",
                job.metadata.name,
                status.phase,
                desired.phase,
                desired.message or "",
            )
            if desired.finished:
                await self._expiry_feed.job_finished(job, desired)
        return Pass(desired, job_version, _version(pod) if pod is not None else None)

    async def _follow(
        self, job: PhJob, status: PhJobStatus, now: datetime
    ) -> tuple[PhJobStatus, JsonObject | None]:
        name = pod_name_for(job)
        pod = await self._kube.get(PODS, name)
        if pod is not None and _owner_uid(pod) != job.metadata.uid:
            return self._foreign_pod(status, pod, now), pod
        if job.spec.cancel:
            if pod is not None and not (pod.get("metadata") or {}).get("deletionTimestamp"):
                # The pod's own grace period lets run-job.sh collect the artifacts.
                await self._kube.delete(PODS, name)
                self._metrics.pods_deleted.labels("cancel").inc()
            return cancelled(status, now=now), None
        if pod is None:
            what = f"the job's pod {status.pod_name} was deleted"
            return vanished(status, now=now, what=what), None
        limit = self._settings.controller_upload_timeout_seconds
        if upload_overdue(pod, now=now, limit_seconds=limit):
            await self._kube.delete(PODS, name)
            self._metrics.pods_deleted.labels("timeout").inc()
            message = f"the command ended but uploading its artifacts did not finish in {limit} s"
            return failed(status, now=now, reason="UploadTimeout", message=message), None
        return advance(status, observe_pod(pod), now=now), pod

    async def _start(
        self, job: PhJob, status: PhJobStatus, now: datetime
    ) -> tuple[PhJobStatus, JsonObject | None]:
        try:
            body = job_pod(job, self._settings)
        except UnsafeNameError as err:
            return failed(status, now=now, reason="InvalidSpec", message=f"groupName: {err}"), None
        except UnknownInstanceTypeError as err:
            message = f"instanceType: {err}"
            return failed(status, now=now, reason="InvalidSpec", message=message), None
        await self.scripts.ensure()
        try:
            pod = await self._kube.create(PODS, body)
            self._metrics.pods_created.inc()
        except KubeApiError as err:
            if err.status in (400, 422):  # the API server refuses this pod: retrying cannot help
                return failed(status, now=now, reason="InvalidSpec", message=err.message), None
            if not err.conflict:
                raise
            existing = await self._kube.get(PODS, body["metadata"]["name"])
            if existing is None:
                raise  # deleted in between: the next pass starts again
            if _owner_uid(existing) != job.metadata.uid:
                return self._foreign_pod(status, existing, now), existing
            pod = existing  # created by an earlier pass that died before writing the status
        if sidecar_dropped(pod):
            await self._kube.delete(PODS, body["metadata"]["name"])
            message = (
                "this Kubernetes dropped the uploader's restartPolicy: Always (native sidecars "
                "need Kubernetes 1.29 or newer): set UPLOADER_SIDECAR=container"
            )
            return failed(status, now=now, reason="SidecarUnsupported", message=message), None
        return advance(status, observe_pod(pod), now=now), pod

    def _foreign_pod(self, status: PhJobStatus, pod: JsonObject, now: datetime) -> PhJobStatus:
        name = (pod.get("metadata") or {}).get("name")
        owners: list[Any] = (pod.get("metadata") or {}).get("ownerReferences") or []
        if any(owner.get("kind") == KIND for owner in owners):
            # A PhJob of the same name was deleted and created again: the garbage collector
            # is removing its pod; the pod's DELETED event brings us back.
            return status.model_copy(
                update={"reason": "Waiting", "message": f"waiting for the old pod {name} to go"}
            )
        return failed(
            status,
            now=now,
            reason="PodNameTaken",
            message=f"a pod named {name} exists and does not belong to this job",
        )
