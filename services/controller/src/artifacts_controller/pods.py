"""The job pod (ARCHITECTURE section 4): what we ask Kubernetes for, and what its status says.

Pure functions, apart from talking to the API server: from a PhJob and the settings to the
pod and script ConfigMap JSON, and from a pod's status to a runtime-neutral
``Observation``. The job's outcome is its command's: the ``job`` container's exit code.
The uploader sidecar (s3 delivery) only decides whether the run is still collecting, and
turns a successful command into a failed job when its artifacts could not be uploaded.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from artifacts_controller.contract import (
    DEFAULT_PHFS_ROOT,
    RUN_JOB_SCRIPT,
    contract_env,
    effective_policy,
    uploader_env,
)
from artifacts_controller.inputs import INPUTS_COMMAND
from artifacts_controller.phases import (
    Observation,
    RunState,
    collecting,
    exit_message,
    upload_failed_message,
)
from artifacts_controller.settings import ControllerSettings
from artifacts_shared.layout import group_path
from artifacts_shared.phjob import API_GROUP, API_VERSION, KIND, PhJob

__all__ = [
    "HOME",
    "INPUTS_CONTAINER",
    "INPUTS_MOUNT",
    "INPUTS_STAGING",
    "JOB_CONTAINER",
    "MANAGED_BY",
    "SCRIPTS_CONFIGMAP",
    "SCRIPTS_MOUNT",
    "SCRIPT_KEY",
    "STAGING_MOUNT",
    "UPLOADER_COMMAND",
    "UPLOADER_CONTAINER",
    "job_pod",
    "observe_pod",
    "owner_of",
    "pod_name_for",
    "scripts_configmap",
    "sidecar_dropped",
    "upload_overdue",
]

SCRIPTS_CONFIGMAP = "primehub-controller-job-scripts"
SCRIPT_KEY = RUN_JOB_SCRIPT
SCRIPTS_MOUNT = "/scripts"
HOME = "/home/jovyan"
STAGING_MOUNT = "/phjob-staging"
JOB_CONTAINER = "job"
UPLOADER_CONTAINER = "uploader"
INPUTS_CONTAINER = "inputs"
INPUTS_MOUNT = f"{HOME}/inputs"
"""Where the job reads its input artifacts (``~/inputs/<jobId>/...``), read-only."""
INPUTS_STAGING = "/phjob-inputs"
"""The same volume in our init container, which writes it."""
_TERMINATION_LOG = "/dev/termination-log"
UPLOADER_COMMAND = ["python", "-m", "artifacts_controller.uploader"]
MANAGED_BY = "artifacts-controller"
_LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
_LABEL_JOB = "primehub.io/phjob"
_OWNER_API_VERSION = f"{API_GROUP}/{API_VERSION}"


def scripts_configmap(script: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": SCRIPTS_CONFIGMAP, "labels": {_LABEL_MANAGED_BY: MANAGED_BY}},
        "data": {SCRIPT_KEY: script},
    }


def pod_name_for(job: PhJob) -> str:
    """One pod per job, named after it: a second create of the same pod is a 409, not a twin."""
    return job.metadata.name


def owner_of(pod: dict[str, Any]) -> str | None:
    """The name of the PhJob that controls ``pod``, if one does."""
    for owner in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if owner.get("kind") == KIND and owner.get("apiVersion") == _OWNER_API_VERSION:
            name = owner.get("name")
            return str(name) if name else None
    return None


def sidecar_dropped(pod: dict[str, Any]) -> bool:
    """Whether the API server dropped the native uploader sidecar's ``restartPolicy``.

    A server older than Kubernetes 1.29 (the cluster tier runs 1.20) does not know the field
    and drops it without a word: the uploader would then be a plain init container waiting
    for a job container that cannot start before it ends.
    """
    for container in (pod.get("spec") or {}).get("initContainers") or []:
        if container.get("name") == UPLOADER_CONTAINER:
            return bool(container.get("restartPolicy") != "Always")
    return False


def _env(variables: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in variables.items()]


def job_pod(job: PhJob, settings: ControllerSettings) -> dict[str, Any]:
    """The pod that runs ``job``.

    Raises ``UnsafeNameError`` for a group without a folder and ``UnknownInstanceTypeError``
    for an instance type that ``INSTANCE_TYPES`` does not define: retrying cannot help either.
    """
    if job.metadata.uid is None:
        raise ValueError("a PhJob read from the API server has a uid; this one has none")
    group = group_path(job.spec.group_name)
    preset = settings.instance_type(job.spec.instance_type) if job.spec.instance_type else None
    policy = effective_policy(job, settings)
    s3 = settings.artifact_delivery == "s3"
    variables = contract_env(
        job,
        policy,
        delivery=settings.artifact_delivery,
        phfs_root=DEFAULT_PHFS_ROOT,
        staging=STAGING_MOUNT if s3 else None,
    )
    mounts: list[dict[str, Any]] = [
        {"name": "scripts", "mountPath": SCRIPTS_MOUNT, "readOnly": True}
    ]
    volumes: list[dict[str, Any]] = [
        {
            "name": "scripts",
            "configMap": {"name": SCRIPTS_CONFIGMAP, "defaultMode": 0o755},
        }
    ]
    containers: list[dict[str, Any]] = []
    init_containers: list[dict[str, Any]] = []
    if job.spec.input_artifacts:
        # First of the init containers: nothing else of the pod starts before the inputs
        # are placed, and a failure fails the pod before the command runs.
        init_containers.append(_inputs(job, variables, settings))
        mounts.append({"name": "inputs", "mountPath": INPUTS_MOUNT, "readOnly": True})
        volumes.append({"name": "inputs", "emptyDir": {}})
    if s3:
        mounts.append({"name": "staging", "mountPath": STAGING_MOUNT})
        volumes.append({"name": "staging", "emptyDir": {}})
    else:
        # The group's folder is the pod's PHFS root, as PrimeHub mounts it.
        mounts.append(
            {"name": "phfs", "mountPath": DEFAULT_PHFS_ROOT, "subPath": f"groups/{group}"}
        )
        volumes.append(
            {"name": "phfs", "persistentVolumeClaim": {"claimName": settings.phfs_volume_claim}}
        )
    job_container: dict[str, Any] = {
        "name": JOB_CONTAINER,
        "image": job.spec.image or settings.job_default_image,
        "command": [f"{SCRIPTS_MOUNT}/{SCRIPT_KEY}", job.spec.command],
        "workingDir": HOME,
        "env": _env(variables),
        "volumeMounts": mounts,
    }
    if preset is not None and preset.pod_resources():
        job_container["resources"] = preset.pod_resources()
    containers.append(job_container)
    if s3:
        uploader = _uploader(variables, settings)
        if settings.uploader_sidecar == "native":
            init_containers.append(uploader)
        else:
            containers.append(uploader)

    labels = {_LABEL_MANAGED_BY: MANAGED_BY}
    if len(job.metadata.name) <= 63:  # a label value's limit; the owner reference always works
        labels[_LABEL_JOB] = job.metadata.name
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        # A user's command has no business with the Kubernetes API: without this a cluster
        # mounts the namespace's default service-account token into every job's containers.
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": settings.job_termination_grace_seconds,
        "containers": containers,
        "volumes": volumes,
    }
    if init_containers:
        spec["initContainers"] = init_containers
    if preset is not None and preset.node_selector:
        spec["nodeSelector"] = dict(preset.node_selector)
    if preset is not None and preset.tolerations:
        spec["tolerations"] = [toleration.to_k8s() for toleration in preset.tolerations]
    if job.spec.active_deadline_seconds is not None:
        # The kubelet stops the pod with its grace period (run-job.sh collects), and the
        # pod fails with reason DeadlineExceeded, which observe_pod reports as the job's.
        spec["activeDeadlineSeconds"] = job.spec.active_deadline_seconds
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name_for(job),
            "labels": labels,
            "annotations": {"primehub.io/group": job.spec.group_name},
            "ownerReferences": [
                {
                    "apiVersion": _OWNER_API_VERSION,
                    "kind": KIND,
                    "name": job.metadata.name,
                    "uid": job.metadata.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
    }


def _uploader(variables: dict[str, str], settings: ControllerSettings) -> dict[str, Any]:
    """Our container that delivers the staging folder once the job container has ended.

    It gets the job's policy (retention, limits) in its own environment: what it keeps is
    decided from there, never from the staging folder the job wrote (``staging.py``).
    Native (Kubernetes 1.29+, services/controller/README.md's advice): an init container
    with ``restartPolicy: Always`` and ``--when-stopped``: the kubelet sends it SIGTERM
    only after the job container ended, and that is when it uploads, within the pod's
    grace period. ``container``: an ordinary second container, for older clusters, that
    uploads when ``done`` appears and exits; the reconciler fails a job whose upload
    outlives ``CONTROLLER_UPLOAD_TIMEOUT_SECONDS``.
    """
    env = uploader_env(variables, settings, with_keys=False)
    container: dict[str, Any] = {
        "name": UPLOADER_CONTAINER,
        "image": settings.uploader_image,
        "command": list(UPLOADER_COMMAND),
        "env": _env(env),
        "volumeMounts": [{"name": "staging", "mountPath": STAGING_MOUNT}],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
    }
    if settings.uploader_sidecar == "native":
        container["restartPolicy"] = "Always"
        container["command"] += ["--when-stopped", "--stop-grace", "5"]
    if settings.uploader_s3_secret:
        # Credentials by reference: the pod spec (readable by the job's users) never holds them.
        container["envFrom"] = [{"secretRef": {"name": settings.uploader_s3_secret}}]
    return container


def _bucket_env(settings: ControllerSettings) -> dict[str, str]:
    env = {"PHFS_BUCKET": settings.phfs_bucket, "S3_REGION": settings.s3_region}
    if settings.s3_endpoint_url:
        env["S3_ENDPOINT_URL"] = settings.s3_endpoint_url
    return env


def _inputs(job: PhJob, variables: dict[str, str], settings: ControllerSettings) -> dict[str, Any]:
    """Our init container that fetches and verifies the job's input artifacts (``inputs.py``).

    It has the bucket's keys (the uploader's Secret, by reference); the job container,
    which starts only after it succeeded, has none and mounts what it wrote read-only.
    """
    inputs = [
        source.model_dump(mode="json", by_alias=True) for source in job.spec.input_artifacts or ()
    ]
    env = {
        "PHJOB_NAME": variables["PHJOB_NAME"],
        "PHJOB_ARTIFACT_LIMIT_SIZE_MB": variables["PHJOB_ARTIFACT_LIMIT_SIZE_MB"],
        "PHJOB_INPUT_ARTIFACTS": json.dumps(inputs, separators=(",", ":")),
        "PHJOB_INPUTS_DIR": INPUTS_STAGING,
        **_bucket_env(settings),
    }
    container: dict[str, Any] = {
        "name": INPUTS_CONTAINER,
        "image": settings.uploader_image,
        "command": [*INPUTS_COMMAND, "--message-file", _TERMINATION_LOG],
        "env": _env(env),
        "volumeMounts": [{"name": "inputs", "mountPath": INPUTS_STAGING}],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
        "terminationMessagePath": _TERMINATION_LOG,
        "terminationMessagePolicy": "File",
    }
    if settings.uploader_s3_secret:
        container["envFrom"] = [{"secretRef": {"name": settings.uploader_s3_secret}}]
    return container


# -- what a pod's status says ----------------------------------------------------------------

# Waiting reasons that will not fix themselves: say so in the job's message.
_STUCK = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _containers(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every container's status by name; a native sidecar reports among the init containers."""
    status = pod.get("status") or {}
    statuses = (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
    return {str(item.get("name")): item for item in statuses}


def _terminated(container: dict[str, Any] | None) -> dict[str, Any] | None:
    if not container:
        return None
    state = (container.get("state") or {}).get("terminated")
    return state if isinstance(state, dict) else None


def _scheduled(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    if status.get("nodeName") or (pod.get("spec") or {}).get("nodeName"):
        return True
    conditions = status.get("conditions") or []
    return any(c.get("type") == "PodScheduled" and c.get("status") == "True" for c in conditions)


def observe_pod(pod: dict[str, Any]) -> Observation:
    name = str((pod.get("metadata") or {}).get("name"))
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    containers = _containers(pod)
    job = containers.get(JOB_CONTAINER)
    job_end = _terminated(job)
    running = (job or {}).get("state", {}).get("running") or {}
    started = (
        _parse_time(running.get("startedAt"))
        or _parse_time((job_end or {}).get("startedAt"))
        or _parse_time(status.get("startTime"))
    )
    finished = _parse_time((job_end or {}).get("finishedAt"))

    if phase == "Pending":
        waiting = ((job or {}).get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in _STUCK:
            return Observation(
                RunState.PREPARING,
                name,
                reason=str(waiting["reason"]),
                message=str(waiting.get("message") or waiting["reason"]),
            )
        if _scheduled(pod):
            return Observation(RunState.PREPARING, name)
        return Observation(RunState.WAITING, name, reason=status.get("reason"))

    if phase == "Running":
        if job_end is not None:
            return collecting(name, started_at=started)
        return Observation(RunState.RUNNING, name, started_at=started)

    if phase in ("Succeeded", "Failed"):
        uploader_end = _terminated(containers.get(UPLOADER_CONTAINER))
        ends = [t for t in (finished, _parse_time((uploader_end or {}).get("finishedAt"))) if t]
        finished_at = max(ends) if ends else None
        upload_failed = uploader_end is not None and uploader_end.get("exitCode") not in (0, None)
        if phase == "Succeeded" and not upload_failed:
            return Observation(
                RunState.SUCCEEDED, name, started_at=started, finished_at=finished_at
            )
        return _failure(pod, name, started, finished_at, job_end, uploader_end)

    return Observation(
        RunState.UNKNOWN,
        name,
        started_at=started,
        reason=status.get("reason") or "Unknown",
        message=status.get("message") or "the pod's node stopped reporting its state",
    )


def _failure(
    pod: dict[str, Any],
    name: str,
    started: datetime | None,
    finished: datetime | None,
    job_end: dict[str, Any] | None,
    uploader_end: dict[str, Any] | None,
) -> Observation:
    status = pod.get("status") or {}
    inputs_end = _terminated(_containers(pod).get(INPUTS_CONTAINER))
    if inputs_end is not None and inputs_end.get("exitCode") not in (0, None):
        # The command never ran: say why in our init container's own words.
        code = inputs_end.get("exitCode")
        said = str(inputs_end.get("message") or "").strip()
        return Observation(
            RunState.FAILED, name, started_at=started, finished_at=finished, reason="InputsFailed",
            message=said.splitlines()[0][:1024] if said
            else f"the input artifacts could not be placed (exit code {code})",
        )  # fmt: skip
    if status.get("reason"):  # the kubelet stopped the pod: DeadlineExceeded, Evicted...
        reason = str(status["reason"])
        message = str(status.get("message") or reason)
    elif job_end is not None and job_end.get("exitCode") not in (0, None):
        reason = str(job_end.get("reason") or "Error")
        message = exit_message(job_end.get("exitCode"), job_end.get("reason"))
    elif uploader_end is not None and uploader_end.get("exitCode") not in (0, None):
        reason = "UploadFailed"
        message = upload_failed_message(uploader_end.get("exitCode"))
    else:
        reason = "Error"
        message = "the pod failed"
    return Observation(
        RunState.FAILED, name, started_at=started, finished_at=finished, reason=reason,
        message=message,
    )  # fmt: skip


def upload_overdue(pod: dict[str, Any], *, now: datetime, limit_seconds: int) -> bool:
    """The command ended longer than ``limit_seconds`` ago and the uploader still runs."""
    if (pod.get("status") or {}).get("phase") != "Running":
        return False
    containers = _containers(pod)
    job_end = _terminated(containers.get(JOB_CONTAINER))
    if job_end is None or UPLOADER_CONTAINER not in containers:
        return False
    if _terminated(containers.get(UPLOADER_CONTAINER)) is not None:
        return False
    ended = _parse_time(job_end.get("finishedAt"))
    return ended is not None and now - ended > timedelta(seconds=limit_seconds)
