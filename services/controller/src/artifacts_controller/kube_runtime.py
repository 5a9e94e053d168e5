"""The Kubernetes runtime: a PhJob runs as one pod named after it (``pods.py`` says which).

A job whose status names no pod yet is started by creating the pod outright (one request,
not a read then a write); a 409 then says a pod exists, and it is adopted if it is the
job's own. The pod is named after the job, so a second create is a 409 and never a second
pod. The status goes through the status subresource, patched only when it changes (the
driver in ``reconcile.py`` decides that).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import Any

from artifacts_controller.kube import CONFIGMAPS, PHJOBS, PODS, JsonObject, Kube, KubeApiError
from artifacts_controller.metrics import ControllerMetrics
from artifacts_controller.orphans import FINALIZER
from artifacts_controller.phases import advance, cancelled, failed, vanished
from artifacts_controller.pod_logs import deliver_pod_log
from artifacts_controller.pods import (
    SCRIPT_KEY,
    SCRIPTS_CONFIGMAP,
    job_pod,
    observe_pod,
    pod_name_for,
    scripts_configmap,
    sidecar_dropped,
    upload_overdue,
)
from artifacts_controller.reconcile import Step
from artifacts_controller.settings import ControllerSettings
from artifacts_shared.instance_types import UnknownInstanceTypeError
from artifacts_shared.layout import UnsafeNameError
from artifacts_shared.phjob import KIND, PhJob, PhJobStatus
from artifacts_shared.s3 import S3Client

__all__ = ["KubeRuntime", "ScriptsConfigMap", "status_patch"]

log = logging.getLogger(__name__)


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


def _version(obj: JsonObject | None) -> str | None:
    version = ((obj or {}).get("metadata") or {}).get("resourceVersion")
    return str(version) if version else None


def _finalizers_patch(job: PhJob, finalizers: list[str]) -> JsonObject:
    return {
        "metadata": {"finalizers": finalizers, "resourceVersion": job.metadata.resource_version}
    }


def _owner_uid(pod: JsonObject) -> str | None:
    for owner in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if owner.get("kind") == KIND and owner.get("controller"):
            uid = owner.get("uid")
            return str(uid) if uid else None
    return None


class KubeRuntime:
    """``reconcile.Runtime`` on the Kubernetes API: PhJobs, their pods, the script ConfigMap."""

    def __init__(
        self,
        *,
        kube: Kube,
        settings: ControllerSettings,
        script: str,
        metrics: ControllerMetrics,
        s3: S3Client,
    ) -> None:
        self._kube = kube
        self._s3 = s3
        self._settings = settings
        self._metrics = metrics
        self.scripts = ScriptsConfigMap(
            kube, script, recheck_seconds=settings.controller_resync_seconds
        )

    async def get(self, name: str) -> PhJob | None:
        document = await self._kube.get(PHJOBS, name)
        return None if document is None else PhJob.from_k8s(document)

    async def write_status(self, job: PhJob, status: PhJobStatus) -> str | None:
        updated = await self._kube.patch(
            PHJOBS, job.metadata.name, status_patch(status), subresource="status"
        )
        return _version(updated)

    async def hold(self, job: PhJob) -> PhJob:
        # The whole list, with the version it was read at: a merge patch replaces a list,
        # so a finalizer someone else added meanwhile is kept by the 409 and a new pass.
        updated = await self._kube.patch(
            PHJOBS, job.metadata.name, _finalizers_patch(job, [*job.metadata.finalizers, FINALIZER])
        )
        return PhJob.from_k8s(updated)

    async def release(self, job: PhJob) -> None:
        current = await self.get(job.metadata.name)  # the status was maybe just written
        if current is None or FINALIZER not in current.metadata.finalizers:
            return
        kept = [name for name in current.metadata.finalizers if name != FINALIZER]
        try:
            await self._kube.patch(PHJOBS, job.metadata.name, _finalizers_patch(current, kept))
        except KubeApiError as err:
            if not err.not_found:
                raise

    async def run_ended(self, job: PhJob) -> bool:
        pod = await self._kube.get(PODS, pod_name_for(job))
        if pod is None or _owner_uid(pod) != job.metadata.uid:
            return True
        # Ended: every container has stopped, the collection and the uploader too.
        return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")

    async def step(self, job: PhJob, *, now: datetime) -> Step:
        status = job.status
        if status.pod_name is None and not job.spec.cancel:
            # Never started, as far as the status says: create first, and look only if the
            # name is taken (a pass that died before writing the status, or a stranger).
            desired, pod = await self._start(job, status, now)
        else:
            desired, pod = await self._follow(job, status, now)
        return Step(desired, _version(pod))

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
        desired = advance(status, observe_pod(pod), now=now)
        if desired.finished and not status.finished:
            # Before the finished status: a pass that fails here is tried again.
            await deliver_pod_log(
                job, name, kube=self._kube, s3=self._s3, settings=self._settings, ended_at=now
            )
        return desired, pod

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
