"""Reconciling one PhJob directly against the emulator: the pod, the ConfigMap, the phases."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, Protocol

import pytest
from redis.asyncio import Redis
from support.kube import KubeEmulator
from support.phjobs import (
    STAND_IN_SCRIPT,
    create_phjob,
    read_phjob,
    running,
    set_pod_status,
    terminated,
)
from support.servers import free_port

from artifacts_controller.expiry_feed import ExpiryFeed
from artifacts_controller.kube import CONFIGMAPS, PHJOBS, PODS, Kube
from artifacts_controller.kube_runtime import KubeRuntime
from artifacts_controller.metrics import ControllerMetrics
from artifacts_controller.orphans import OrphanGrace
from artifacts_controller.pods import SCRIPTS_CONFIGMAP
from artifacts_controller.reconcile import Reconciler
from artifacts_controller.settings import ControllerSettings
from artifacts_shared.expiry_index import EXPIRY_INDEX_KEY, ExpiryIndex
from artifacts_shared.input_holds import InputHolds
from artifacts_shared.instance_types import InstanceTypeSettings
from artifacts_shared.layout import job_log_key, job_prefix
from artifacts_shared.phjob import ArtifactOverrides, PhJob, PhJobPhase, PhJobStatus
from artifacts_shared.s3 import S3Client
from artifacts_shared.settings import load_settings

PODS_R = "v1/pods"
PHJOBS_R = "primehub.io/v1alpha1/phjobs"


class MakeReconciler(Protocol):
    def __call__(
        self,
        kube: Kube,
        settings: ControllerSettings,
        *,
        feed: ExpiryFeed | None = None,
        **changes: Any,
    ) -> Reconciler: ...


@pytest.fixture
def _reconciler(s3: S3Client, expiry_feed: ExpiryFeed, input_holds: InputHolds) -> MakeReconciler:
    """A reconciler on ``kube`` that delivers finished jobs' logs to the test's bucket and
    feeds the expiry index on the test's Redis (or ``feed``)."""

    def make(
        kube: Kube, settings: ControllerSettings, *, feed: ExpiryFeed | None = None, **changes: Any
    ) -> Reconciler:
        if changes:
            settings = settings.model_copy(update=changes)
        metrics = ControllerMetrics()
        runtime = KubeRuntime(
            kube=kube, settings=settings, script=STAND_IN_SCRIPT, metrics=metrics, s3=s3
        )
        feed = feed or expiry_feed
        orphans = OrphanGrace.for_settings(settings, s3=s3, expiry_feed=feed)
        return Reconciler(
            runtime,
            metrics=metrics,
            expiry_feed=feed,
            orphans=orphans,
            input_holds=input_holds,
        )

    return make


async def _reconcile(reconciler: Reconciler, job: PhJob) -> PhJobStatus:
    return (await reconciler.run_pass(job)).status


async def _pass(reconciler: Reconciler, name: str) -> PhJobStatus:
    outcome = await reconciler.reconcile_name(name)
    assert outcome is not None
    return outcome.status


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("env", [])}


async def test_a_new_phjob_gets_exactly_one_pod_and_the_script_configmap(
    kube: Kube,
    kube_emulator: KubeEmulator,
    kube_namespace: str,
    controller_settings: ControllerSettings,
    _reconciler: MakeReconciler,
) -> None:
    job = await create_phjob(kube, command="echo hello", active_deadline_seconds=600)
    status = await _reconcile(_reconciler(kube, controller_settings), job)

    pods = kube_emulator.list_objects(PODS_R)
    assert len(pods) == 1
    pod = pods[0]
    assert pod["metadata"]["name"] == job.metadata.name == status.pod_name
    assert pod["metadata"]["namespace"] == kube_namespace
    (owner,) = pod["metadata"]["ownerReferences"]
    assert owner == {
        "apiVersion": "primehub.io/v1alpha1",
        "kind": "PhJob",
        "name": job.metadata.name,
        "uid": job.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["activeDeadlineSeconds"] == 600
    assert (
        spec["terminationGracePeriodSeconds"] == controller_settings.job_termination_grace_seconds
    )
    (container,) = spec["containers"]
    assert container["image"] == controller_settings.job_default_image
    assert container["command"] == ["/scripts/run-job.sh", "echo hello"]
    assert container["workingDir"] == "/home/jovyan"
    assert _env(container) == {
        "PHJOB_NAME": job.metadata.name,
        "GROUP_NAME": "ML_Team",
        "PHJOB_ARTIFACT_ENABLED": "true",
        "PHJOB_ARTIFACT_LIMIT_SIZE_MB": "100",
        "PHJOB_ARTIFACT_LIMIT_FILES": "1000",
        "PHJOB_ARTIFACT_RETENTION_SECONDS": "604800",
        "PHJOB_PHFS_ROOT": "/phfs",
        "PHJOB_ARTIFACT_DELIVERY": "phfs",
    }
    mounts = {mount["name"]: mount for mount in container["volumeMounts"]}
    assert mounts["scripts"]["mountPath"] == "/scripts"
    assert mounts["phfs"] == {"name": "phfs", "mountPath": "/phfs", "subPath": "groups/ml-team"}
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    assert volumes["scripts"]["configMap"] == {
        "name": "primehub-controller-job-scripts",
        "defaultMode": 0o755,
    }
    assert volumes["phfs"]["persistentVolumeClaim"] == {
        "claimName": controller_settings.phfs_volume_claim
    }
    assert "staging" not in volumes

    configmap = kube_emulator.read_object("v1/configmaps", kube_namespace, SCRIPTS_CONFIGMAP)
    assert configmap is not None and configmap["data"] == {"run-job.sh": STAND_IN_SCRIPT}
    stored = await read_phjob(kube, job.metadata.name)
    assert stored.status.phase is PhJobPhase.PENDING
    assert stored.status.pod_name == job.metadata.name


async def test_the_s3_delivery_gives_a_staging_folder_and_a_native_uploader_sidecar(
    kube: Kube,
    kube_emulator: KubeEmulator,
    controller_settings: ControllerSettings,
    _reconciler: MakeReconciler,
) -> None:
    settings = controller_settings.model_copy(
        update={
            "artifact_delivery": "s3",
            "s3_endpoint_url": "http://minio:9000",
            "uploader_image": "registry/artifacts-controller:1.2",
            "uploader_s3_secret": "phfs-s3",
        }
    )
    job = await create_phjob(kube)
    await _reconcile(_reconciler(kube, settings), job)

    (pod,) = kube_emulator.list_objects(PODS_R)
    volumes = {volume["name"]: volume for volume in pod["spec"]["volumes"]}
    assert volumes["staging"] == {"name": "staging", "emptyDir": {}}
    assert "phfs" not in volumes
    (job_container,) = pod["spec"]["containers"]
    (uploader,) = pod["spec"]["initContainers"]
    env = _env(job_container)
    assert env["PHJOB_ARTIFACT_DELIVERY"] == "s3"
    staging = env["PHJOB_ARTIFACT_STAGING"]
    assert {m["mountPath"] for m in job_container["volumeMounts"]} == {"/scripts", staging}
    # A native sidecar: started first, stopped by the kubelet after the job container.
    assert uploader["restartPolicy"] == "Always"
    assert uploader["image"] == "registry/artifacts-controller:1.2"
    assert uploader["command"] == [
        *("python", "-m", "artifacts_controller.uploader"),
        *("--when-stopped", "--stop-grace", "5"),
    ]
    assert [m["mountPath"] for m in uploader["volumeMounts"]] == [staging]
    uploader_env = _env(uploader)
    assert uploader_env["PHJOB_ARTIFACT_STAGING"] == staging
    assert uploader_env["PHJOB_NAME"] == job.metadata.name
    assert uploader_env["GROUP_NAME"] == "ML_Team"
    # Our container reads the policy from its own environment, never from the staging
    # folder the job container writes (ARCHITECTURE section 4, the trust boundary).
    assert {name: uploader_env[name] for name in env if name.startswith("PHJOB_ARTIFACT_")} == {
        name: value for name, value in env.items() if name.startswith("PHJOB_ARTIFACT_")
    }
    assert uploader_env["PHJOB_ARTIFACT_RETENTION_SECONDS"] == "604800"
    assert uploader_env["S3_ENDPOINT_URL"] == "http://minio:9000"
    assert uploader_env["PHFS_BUCKET"] == settings.phfs_bucket
    assert "S3_SECRET_ACCESS_KEY" not in uploader_env  # by reference only:
    assert uploader["envFrom"] == [{"secretRef": {"name": "phfs-s3"}}]


async def test_older_clusters_get_the_uploader_as_an_ordinary_container(
    kube: Kube,
    kube_emulator: KubeEmulator,
    controller_settings: ControllerSettings,
    _reconciler: MakeReconciler,
) -> None:
    reconciler = _reconciler(
        kube,
        controller_settings,
        artifact_delivery="s3",
        uploader_sidecar="container",
    )
    await _reconcile(reconciler, await create_phjob(kube))
    (pod,) = kube_emulator.list_objects(PODS_R)
    assert "initContainers" not in pod["spec"]
    names = [container["name"] for container in pod["spec"]["containers"]]
    uploader = pod["spec"]["containers"][1]
    assert names == ["job", "uploader"]
    assert uploader["command"] == ["python", "-m", "artifacts_controller.uploader"]
    assert "restartPolicy" not in uploader


async def test_the_job_overrides_and_image_replace_the_controller_defaults(
    kube: Kube,
    kube_emulator: KubeEmulator,
    controller_settings: ControllerSettings,
    _reconciler: MakeReconciler,
) -> None:
    job = await create_phjob(
        kube,
        image="python:3.12",
        artifact=ArtifactOverrides(retention_seconds=0, limit_files=5),
    )
    await _reconcile(_reconciler(kube, controller_settings, artifact_limit_size_mb=7), job)
    (pod,) = kube_emulator.list_objects(PODS_R)
    (container,) = pod["spec"]["containers"]
    env = _env(container)
    assert container["image"] == "python:3.12"
    assert env["PHJOB_ARTIFACT_RETENTION_SECONDS"] == "0"
    assert env["PHJOB_ARTIFACT_LIMIT_FILES"] == "5"
    assert env["PHJOB_ARTIFACT_LIMIT_SIZE_MB"] == "7"
    assert "activeDeadlineSeconds" not in pod["spec"]


async def test_the_instance_type_sets_the_job_containers_resources_and_placement(
    kube: Kube,
    kube_emulator: KubeEmulator,
    controller_settings: ControllerSettings,
    _reconciler: MakeReconciler,
) -> None:
    presets = load_settings(
        InstanceTypeSettings,
        instance_types=[
            {"name": "gpu-1", "cpuLimit": 4, "memoryLimit": 16, "gpuLimit": 1,
             "cpuRequest": 0.5, "memoryRequest": 2.5,
             "nodeSelector": {"accelerator": "a100"},
             "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists",
                              "effect": "NoSchedule"}]},
        ],
    )  # fmt: skip
    job = await create_phjob(kube, instance_type="gpu-1")
    await _reconcile(
        _reconciler(kube, controller_settings, instance_types=presets.instance_types), job
    )

    (pod,) = kube_emulator.list_objects(PODS_R)
    (container,) = pod["spec"]["containers"]
    assert container["resources"] == {
        "limits": {"cpu": "4", "memory": "16G", "nvidia.com/gpu": "1"},
        "requests": {"cpu": "0.5", "memory": "2.5G"},
    }
    assert pod["spec"]["nodeSelector"] == {"accelerator": "a100"}
    assert pod["spec"]["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]


async def test_a_job_without_an_instance_type_gets_no_resources(
    kube: Kube,
    kube_emulator: KubeEmulator,
    controller_settings: ControllerSettings,
    _reconciler: MakeReconciler,
) -> None:
    job = await create_phjob(kube)
    await _reconcile(_reconciler(kube, controller_settings), job)

    (pod,) = kube_emulator.list_objects(PODS_R)
    (container,) = pod["spec"]["containers"]
    assert "resources" not in container and "nodeSelector" not in pod["spec"]


async def test_an_unknown_instance_type_fails_the_job_without_a_pod(
    kube: Kube,
    kube_emulator: KubeEmulator,
    controller_settings: ControllerSettings,
    _reconciler: MakeReconciler,
) -> None:
    job = await create_phjob(kube, instance_type="gpu-99")
    status = await _reconcile(_reconciler(kube, controller_settings), job)

    assert kube_emulator.list_objects(PODS_R) == []
    assert status.phase is PhJobPhase.FAILED and status.reason == "InvalidSpec"
    assert status.message is not None and "'gpu-99'" in status.message
    assert "cpu-1" in status.message  # the names that do exist


def _writes(emulator: KubeEmulator) -> int:
    return sum(1 for request in emulator.served if request.method not in ("GET",))


def _versions(emulator: KubeEmulator) -> dict[tuple[str, str], str]:
    return {
        (resource, obj["metadata"]["name"]): obj["metadata"]["resourceVersion"]
        for resource in (PODS_R, PHJOBS_R, "v1/configmaps")
        for obj in emulator.list_objects(resource)
    }


async def test_reconciling_twice_changes_nothing(
    kube: Kube,
    kube_emulator: KubeEmulator,
    controller_settings: ControllerSettings,
    _reconciler: MakeReconciler,
) -> None:
    reconciler = _reconciler(kube, controller_settings)
    job = await create_phjob(kube)
    first = await _pass(reconciler, job.metadata.name)
    writes, versions = _writes(kube_emulator), _versions(kube_emulator)
    again = await _pass(reconciler, job.metadata.name)
    # A fresh reconciler (a restarted controller) agrees too.
    fresh = await _pass(_reconciler(kube, controller_settings), job.metadata.name)
    assert first == again == fresh
    assert _writes(kube_emulator) == writes
    assert _versions(kube_emulator) == versions
    assert len(kube_emulator.list_objects(PODS_R)) == 1

    # The same holds in every later phase.
    await set_pod_status(kube, job.metadata.name, running())
    await _pass(reconciler, job.metadata.name)
    writes, versions = _writes(kube_emulator), _versions(kube_emulator)
    await _pass(reconciler, job.metadata.name)
    assert (_writes(kube_emulator), _versions(kube_emulator)) == (writes, versions)


async def test_a_pod_left_by_an_interrupted_pass_is_adopted_not_doubled(
    kube: Kube,
    kube_emulator: KubeEmulator,
    controller_settings: ControllerSettings,
    _reconciler: MakeReconciler,
) -> None:
    job = await create_phjob(kube)
    # A pass that created the pod and died before writing the status:
    await _reconcile(_reconciler(kube, controller_settings), job)
    await kube.patch(PHJOBS, job.metadata.name, {"status": None}, subresource="status")
    status = await _pass(_reconciler(kube, controller_settings), job.metadata.name)
    assert status.pod_name == job.metadata.name
    assert len(kube_emulator.list_objects(PODS_R)) == 1


async def test_a_script_configmap_that_differs_is_put_back(
    kube: Kube,
    kube_emulator: KubeEmulator,
    kube_namespace: str,
    controller_settings: ControllerSettings,
    _reconciler: MakeReconciler,
) -> None:
    await kube.create(
        CONFIGMAPS,
        {"metadata": {"name": SCRIPTS_CONFIGMAP}, "data": {"run-job.sh": "echo outdated"}},
    )
    await _reconcile(_reconciler(kube, controller_settings), await create_phjob(kube))
    configmap = kube_emulator.read_object("v1/configmaps", kube_namespace, SCRIPTS_CONFIGMAP)
    assert configmap is not None and configmap["data"]["run-job.sh"] == STAND_IN_SCRIPT


async def test_pod_phases_drive_the_job_from_pending_to_succeeded(
    kube: Kube, controller_settings: ControllerSettings, _reconciler: MakeReconciler
) -> None:
    reconciler = _reconciler(kube, controller_settings)
    job = await create_phjob(kube)
    name = job.metadata.name
    status = await _pass(reconciler, name)
    assert status.phase is PhJobPhase.PENDING

    await set_pod_status(kube, name, {"conditions": [{"type": "PodScheduled", "status": "True"}]})
    status = await _pass(reconciler, name)
    assert status.phase is PhJobPhase.PREPARING

    await set_pod_status(kube, name, running(started="2026-01-01T00:00:05Z"))
    status = await _pass(reconciler, name)
    assert status.phase is PhJobPhase.RUNNING
    assert (
        status.start_time is not None
        and status.start_time.isoformat() == "2026-01-01T00:00:05+00:00"
    )
    assert status.finish_time is None

    await set_pod_status(kube, name, terminated("Succeeded", 0, finished="2026-01-01T00:01:00Z"))
    status = await _pass(reconciler, name)
    stored = (await read_phjob(kube, name)).status
    assert stored == status
    assert stored.phase is PhJobPhase.SUCCEEDED
    assert (
        stored.start_time is not None
        and stored.start_time.isoformat() == "2026-01-01T00:00:05+00:00"
    )
    assert (
        stored.finish_time is not None
        and stored.finish_time.isoformat() == "2026-01-01T00:01:00+00:00"
    )

    # Finished is final: a later pod change (the garbage collector's deletion) changes nothing.
    await kube.delete(PODS, name)
    assert await _pass(reconciler, name) == stored


async def test_a_failing_command_fails_the_job_with_its_exit_code(
    kube: Kube, controller_settings: ControllerSettings, _reconciler: MakeReconciler
) -> None:
    reconciler = _reconciler(kube, controller_settings)
    job = await create_phjob(kube)
    await _reconcile(reconciler, job)
    await set_pod_status(kube, job.metadata.name, terminated("Failed", 3))
    status = await _pass(reconciler, job.metadata.name)
    assert status.phase is PhJobPhase.FAILED
    assert status.message == "the command exited with code 3"
    assert status.finish_time is not None


async def test_a_job_past_its_deadline_fails_with_the_kubelets_reason(
    kube: Kube, controller_settings: ControllerSettings, _reconciler: MakeReconciler
) -> None:
    reconciler = _reconciler(kube, controller_settings)
    job = await create_phjob(kube, active_deadline_seconds=5)
    await _reconcile(reconciler, job)
    pod_status = terminated("Failed", 143)
    pod_status["reason"] = "DeadlineExceeded"
    pod_status["message"] = "Pod was active on the node longer than the specified deadline"
    await set_pod_status(kube, job.metadata.name, pod_status)
    status = await _pass(reconciler, job.metadata.name)
    assert status.phase is PhJobPhase.FAILED
    assert status.reason == "DeadlineExceeded" and "deadline" in (status.message or "")


async def test_a_failed_upload_fails_a_successful_command(
    kube: Kube, controller_settings: ControllerSettings, _reconciler: MakeReconciler
) -> None:
    reconciler = _reconciler(kube, controller_settings, artifact_delivery="s3")
    job = await create_phjob(kube)
    await _reconcile(reconciler, job)
    pod_status = terminated("Failed", 0)
    pod_status["containerStatuses"].append(
        {
            "name": "uploader",
            "state": {"terminated": {"exitCode": 2, "finishedAt": "2026-01-01T00:02:00Z"}},
        }
    )
    await set_pod_status(kube, job.metadata.name, pod_status)
    status = await _pass(reconciler, job.metadata.name)
    assert status.phase is PhJobPhase.FAILED
    assert status.reason == "UploadFailed" and "uploader exit code 2" in (status.message or "")
    assert (
        status.finish_time is not None
        and status.finish_time.isoformat() == "2026-01-01T00:02:00+00:00"
    )


async def test_a_native_sidecars_failed_upload_fails_a_pod_that_succeeded(
    kube: Kube, controller_settings: ControllerSettings, _reconciler: MakeReconciler
) -> None:
    reconciler = _reconciler(kube, controller_settings, artifact_delivery="s3")
    job = await create_phjob(kube)
    await _reconcile(reconciler, job)
    pod_status = terminated("Succeeded", 0)  # the pod's phase follows the job container only
    pod_status["initContainerStatuses"] = [
        {"name": "uploader", "state": {"terminated": {"exitCode": 1}}}
    ]
    await set_pod_status(kube, job.metadata.name, pod_status)
    status = await _pass(reconciler, job.metadata.name)
    assert status.phase is PhJobPhase.FAILED and status.reason == "UploadFailed"


async def test_an_uploader_that_never_ends_is_stopped_and_the_job_failed(
    kube: Kube,
    kube_emulator: KubeEmulator,
    controller_settings: ControllerSettings,
    _reconciler: MakeReconciler,
) -> None:
    reconciler = _reconciler(
        kube,
        controller_settings,
        artifact_delivery="s3",
        uploader_sidecar="container",
        controller_upload_timeout_seconds=60,
    )
    job = await create_phjob(kube)
    await _reconcile(reconciler, job)
    pod_status = terminated("Running", 0, finished="2026-01-01T00:01:00Z")  # long ago
    pod_status["containerStatuses"].append({"name": "uploader", "state": {"running": {}}})
    await set_pod_status(kube, job.metadata.name, pod_status)
    status = await _pass(reconciler, job.metadata.name)
    assert status.phase is PhJobPhase.FAILED
    assert status.reason == "UploadTimeout"
    assert kube_emulator.list_objects(PODS_R) == []


async def test_cancel_deletes_the_pod_and_ends_cancelled(
    kube: Kube,
    kube_emulator: KubeEmulator,
    controller_settings: ControllerSettings,
    _reconciler: MakeReconciler,
) -> None:
    reconciler = _reconciler(kube, controller_settings)
    job = await create_phjob(kube)
    await _reconcile(reconciler, job)
    await set_pod_status(kube, job.metadata.name, running())
    await _pass(reconciler, job.metadata.name)
    await kube.patch(PHJOBS, job.metadata.name, {"spec": {"cancel": True}})

    status = await _pass(reconciler, job.metadata.name)
    assert status.phase is PhJobPhase.CANCELLED
    assert status.finish_time is not None and status.start_time is not None
    assert kube_emulator.list_objects(PODS_R) == []
    assert (await read_phjob(kube, job.metadata.name)).status == status


async def test_a_cancelled_job_that_never_started_gets_no_pod(
    kube: Kube,
    kube_emulator: KubeEmulator,
    controller_settings: ControllerSettings,
    _reconciler: MakeReconciler,
) -> None:
    job = await create_phjob(kube, cancel=True)
    status = await _reconcile(_reconciler(kube, controller_settings), job)
    assert status.phase is PhJobPhase.CANCELLED
    assert kube_emulator.list_objects(PODS_R) == []


async def test_a_deleted_pod_of_a_running_job_fails_it_with_a_message(
    kube: Kube, controller_settings: ControllerSettings, _reconciler: MakeReconciler
) -> None:
    reconciler = _reconciler(kube, controller_settings)
    job = await create_phjob(kube)
    await _reconcile(reconciler, job)
    await set_pod_status(kube, job.metadata.name, running())
    await _pass(reconciler, job.metadata.name)
    await kube.delete(PODS, job.metadata.name)

    status = await _pass(reconciler, job.metadata.name)
    assert status.phase is PhJobPhase.FAILED
    assert (
        status.message == f"the job's pod {job.metadata.name} was deleted before the job finished"
    )


async def test_a_group_without_a_safe_folder_fails_the_job_without_a_pod(
    kube: Kube,
    kube_emulator: KubeEmulator,
    controller_settings: ControllerSettings,
    _reconciler: MakeReconciler,
) -> None:
    job = await create_phjob(kube, group_name="../etc")
    status = await _reconcile(_reconciler(kube, controller_settings), job)
    assert status.phase is PhJobPhase.FAILED and status.reason == "InvalidSpec"
    assert kube_emulator.list_objects(PODS_R) == []


async def test_a_pod_of_the_same_name_that_is_not_the_jobs_fails_it(
    kube: Kube,
    kube_emulator: KubeEmulator,
    controller_settings: ControllerSettings,
    _reconciler: MakeReconciler,
) -> None:
    job = await create_phjob(kube)
    await kube.create(PODS, {"metadata": {"name": job.metadata.name}, "spec": {"containers": []}})
    status = await _reconcile(_reconciler(kube, controller_settings), job)
    assert status.phase is PhJobPhase.FAILED and status.reason == "PodNameTaken"
    assert len(kube_emulator.list_objects(PODS_R)) == 1


async def test_a_finished_job_gets_its_pods_log_kept_and_one_that_never_started_none(
    kube: Kube,
    kube_emulator: KubeEmulator,
    controller_settings: ControllerSettings,
    _reconciler: MakeReconciler,
    s3: S3Client,
) -> None:
    reconciler = _reconciler(kube, controller_settings)
    ran, never = await create_phjob(kube), await create_phjob(kube)
    for job in (ran, never):
        await _reconcile(reconciler, job)
    kube_emulator.write_pod_log(kube.namespace, ran.metadata.name, b"done\n")
    await set_pod_status(kube, ran.metadata.name, terminated("Succeeded", 0))
    waiting = {"waiting": {"reason": "ErrImagePull"}}
    await set_pod_status(
        kube,
        never.metadata.name,
        {"phase": "Failed", "containerStatuses": [{"name": "job", "state": waiting}]},
    )

    finished = [await _pass(reconciler, job.metadata.name) for job in (ran, never)]

    assert [status.finished for status in finished] == [True, True]  # neither held back
    bucket = controller_settings.phfs_bucket
    kept = await s3.get_object(
        Bucket=bucket, Key=job_log_key(job_prefix("ML_Team", ran.metadata.name))
    )
    assert await kept["Body"].read() == b"done\n"
    listed = await s3.list_objects_v2(
        Bucket=bucket, Prefix=job_prefix("ML_Team", never.metadata.name)
    )
    assert listed.get("KeyCount") == 0


# --- the expiry index ------------------------------------------------------------------------


async def test_a_finished_job_is_indexed_at_its_finish_plus_its_retention(
    kube: Kube, controller_settings: ControllerSettings, _reconciler: MakeReconciler, redis: Redis
) -> None:
    reconciler = _reconciler(kube, controller_settings)
    kept = await create_phjob(kube, artifact=ArtifactOverrides(retention_seconds=0))
    job = await create_phjob(kube, artifact=ArtifactOverrides(retention_seconds=3600))
    for each in (job, kept):
        await _reconcile(reconciler, each)
        await set_pod_status(kube, each.metadata.name, running())
        await _pass(reconciler, each.metadata.name)
        entry = await redis.zscore(EXPIRY_INDEX_KEY, job_prefix("ML_Team", each.metadata.name))
        assert entry is None  # nothing until the job ends
        await set_pod_status(
            kube, each.metadata.name, terminated("Succeeded", 0, finished="2026-01-01T00:01:00Z")
        )
        await _pass(reconciler, each.metadata.name)

    finished = datetime(2026, 1, 1, 0, 1, tzinfo=UTC).timestamp()
    entries = await redis.zrange(EXPIRY_INDEX_KEY, 0, -1, withscores=True)
    # The job kept forever (retention 0) has no entry.
    assert entries == [(job_prefix("ML_Team", job.metadata.name).encode(), finished + 3600)]


async def test_the_controllers_estimate_never_moves_an_entry_later(
    kube: Kube, controller_settings: ControllerSettings, _reconciler: MakeReconciler, redis: Redis
) -> None:
    reconciler = _reconciler(kube, controller_settings)
    job = await create_phjob(kube, artifact=ArtifactOverrides(retention_seconds=3600))
    prefix = job_prefix("ML_Team", job.metadata.name)
    # What the uploader wrote from the expiredAt itself, when the command ended.
    written = int(datetime(2026, 1, 1, 0, 0, 55, tzinfo=UTC).timestamp()) + 3600
    await ExpiryIndex(redis).add(prefix, written)
    await _reconcile(reconciler, job)
    await set_pod_status(kube, job.metadata.name, terminated("Succeeded", 0))

    await _pass(reconciler, job.metadata.name)

    assert await redis.zscore(EXPIRY_INDEX_KEY, prefix) == written


async def test_a_cancelled_job_is_indexed_at_once_and_early(
    kube: Kube, controller_settings: ControllerSettings, _reconciler: MakeReconciler, redis: Redis
) -> None:
    reconciler = _reconciler(kube, controller_settings)
    job = await create_phjob(kube)
    await _reconcile(reconciler, job)
    await kube.patch(PHJOBS, job.metadata.name, {"spec": {"cancel": True}})
    before = time.time()

    status = await _pass(reconciler, job.metadata.name)

    # The pod collects for a while after this: its expiredAt is no earlier than this entry.
    assert status.phase is PhJobPhase.CANCELLED and status.finish_time is not None
    score = await redis.zscore(EXPIRY_INDEX_KEY, job_prefix("ML_Team", job.metadata.name))
    retention = controller_settings.artifact_retention_seconds
    assert score is not None and int(before) - 1 + retention <= score <= time.time() + retention


async def test_a_redis_that_is_down_loses_the_entry_and_nothing_else(
    kube: Kube,
    controller_settings: ControllerSettings,
    _reconciler: MakeReconciler,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gone = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    feed = ExpiryFeed(ExpiryIndex(gone), policy=controller_settings)
    reconciler = _reconciler(kube, controller_settings, feed=feed)
    job = await create_phjob(kube)
    await _reconcile(reconciler, job)
    await set_pod_status(kube, job.metadata.name, terminated("Succeeded", 0))

    status = await _pass(reconciler, job.metadata.name)

    assert status.phase is PhJobPhase.SUCCEEDED
    assert (await read_phjob(kube, job.metadata.name)).status == status
    assert "the janitor's rescan will find it" in caplog.text
    await gone.aclose()
