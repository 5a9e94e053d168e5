"""The desired job pod and script ConfigMap for a PhJob (ARCHITECTURE section 4).

Pure functions from a PhJob and the settings to Kubernetes JSON, so what a job's pod looks
like is decided (and tested) in one place, apart from talking to the API server.
"""

from __future__ import annotations

from typing import Any

from artifacts_controller.job_script import RUN_JOB_SCRIPT
from artifacts_controller.jobenv import DEFAULT_PHFS_ROOT, contract_env, effective_policy
from artifacts_controller.settings import ControllerSettings
from artifacts_shared.layout import group_path
from artifacts_shared.phjob import API_GROUP, API_VERSION, KIND, PhJob

__all__ = [
    "HOME",
    "JOB_CONTAINER",
    "MANAGED_BY",
    "SCRIPTS_CONFIGMAP",
    "SCRIPTS_MOUNT",
    "SCRIPT_KEY",
    "STAGING_MOUNT",
    "UPLOADER_COMMAND",
    "UPLOADER_CONTAINER",
    "job_pod",
    "owner_of",
    "pod_name_for",
    "scripts_configmap",
    "sidecar_dropped",
]

SCRIPTS_CONFIGMAP = "primehub-controller-job-scripts"
SCRIPT_KEY = RUN_JOB_SCRIPT
SCRIPTS_MOUNT = "/scripts"
HOME = "/home/jovyan"
STAGING_MOUNT = "/phjob-staging"
JOB_CONTAINER = "job"
UPLOADER_CONTAINER = "uploader"
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
    init_containers: list[dict[str, Any]] = []
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
        # pod fails with reason DeadlineExceeded, which podstate reports as the job's.
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
    """The sidecar that pushes the staging folder to the bucket once run-job.sh is done.

    Native (Kubernetes 1.29+, services/controller/README.md's advice): an init container
    with ``restartPolicy: Always`` that uploads when ``done`` appears and stays up; the
    kubelet stops it only after the job container ended, so a job container that died
    without ``done`` cannot keep the pod running. ``container``: an ordinary second
    container that exits after the upload, for older clusters; the reconciler fails a job
    whose upload outlives ``CONTROLLER_UPLOAD_TIMEOUT_SECONDS``.
    """
    env = dict(variables)
    env["PHFS_BUCKET"] = settings.phfs_bucket
    env["S3_REGION"] = settings.s3_region
    if settings.s3_endpoint_url:
        env["S3_ENDPOINT_URL"] = settings.s3_endpoint_url
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
        container["command"] += ["--stay-until-stopped", "--stop-grace", "5"]
    if settings.uploader_s3_secret:
        # Credentials by reference: the pod spec (readable by the job's users) never holds them.
        container["envFrom"] = [{"secretRef": {"name": settings.uploader_s3_secret}}]
    return container
