"""The controller on a real API server, with only its own Role: pods, the script ConfigMap,
phases written through the status subresource, cancel, and a pod that vanished.

There is no kubelet: the test binds pods (the scheduler's part) and writes their status
(the kubelet's), with the admin's token.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis
from support.cluster import TIMEOUT, ChartNamespace, Cluster, bind_pod, finish_pod_deletion
from support.phjobs import (
    STAND_IN_SCRIPT,
    create_phjob,
    eventually,
    new_phjob,
    read_phjob,
    running,
    running_controller,
    set_pod_status,
    terminated,
    wait_for_phase,
    wait_for_pod,
)

from artifacts_controller.expiry_feed import ExpiryFeed
from artifacts_controller.kube import CONFIGMAPS, PHJOBS, PODS, Kube
from artifacts_controller.orphans import FINALIZER
from artifacts_controller.pods import (
    JOB_CONTAINER,
    SCRIPT_KEY,
    SCRIPTS_CONFIGMAP,
    UPLOADER_CONTAINER,
)
from artifacts_controller.settings import ControllerSettings
from artifacts_shared.expiry_index import EXPIRY_INDEX_KEY
from artifacts_shared.layout import expired_at_key, job_prefix
from artifacts_shared.phjob import PhJobPhase
from artifacts_shared.s3 import S3Client

DAY = 86_400


async def test_a_job_gets_its_pod_and_script_and_its_phases_from_the_pod(
    cluster: Cluster,
    chart: ChartNamespace,
    controller_kube: Kube,
    admin_kube: Kube,
    controller_settings: ControllerSettings,
    expiry_feed: ExpiryFeed,
) -> None:
    mark = cluster.audit_mark()
    async with running_controller(
        controller_kube,
        controller_settings,
        expiry_feed,
        sync_timeout=TIMEOUT,
    ):
        good = await create_phjob(admin_kube)
        bad = await create_phjob(admin_kube)
        for job in (good, bad):
            pod = await wait_for_pod(admin_kube, job.metadata.name, timeout=TIMEOUT)
            (owner,) = pod["metadata"]["ownerReferences"]
            assert owner["uid"] == job.metadata.uid and owner["controller"] is True
            # The real admission chain ran: the pod has the namespace's default account,
            # and no API token of it (a user's command has no business with the API).
            spec = pod["spec"]
            assert spec["serviceAccountName"] == "default"
            assert spec["automountServiceAccountToken"] is False
            mounts = spec["containers"][0]["volumeMounts"]
            assert not any("serviceaccount" in m["mountPath"] for m in mounts)
            await wait_for_phase(admin_kube, job.metadata.name, PhJobPhase.PENDING, timeout=TIMEOUT)
            await bind_pod(admin_kube, job.metadata.name)
            await set_pod_status(admin_kube, job.metadata.name, running())
            await wait_for_phase(admin_kube, job.metadata.name, PhJobPhase.RUNNING, timeout=TIMEOUT)
        await set_pod_status(admin_kube, good.metadata.name, terminated("Succeeded", 0))
        await set_pod_status(admin_kube, bad.metadata.name, terminated("Failed", 1))
        await wait_for_phase(admin_kube, good.metadata.name, PhJobPhase.SUCCEEDED, timeout=TIMEOUT)
        await wait_for_phase(admin_kube, bad.metadata.name, PhJobPhase.FAILED, timeout=TIMEOUT)

    failed = await read_phjob(admin_kube, bad.metadata.name)
    assert failed.status.message == "the command exited with code 1"
    assert failed.status.pod_name == bad.metadata.name and failed.status.finish_time is not None
    script = await admin_kube.get(CONFIGMAPS, SCRIPTS_CONFIGMAP)
    assert script is not None and script["data"][SCRIPT_KEY] == STAND_IN_SCRIPT
    # The controller wrote the status through the subresource, and on the user's object only
    # its finalizer (orphans.py): one patch a job, the spec as the user made it.
    writes = [
        event
        for event in cluster.audit_since(mark)
        if event.user == chart.controller.username and event.resource == "phjobs"
        and event.verb not in ("get", "list", "watch")
    ]  # fmt: skip
    assert writes and {(e.verb, e.subresource, e.code) for e in writes} == {
        ("patch", "status", 200),
        ("patch", "", 200),
    }
    assert sorted(e.name for e in writes if not e.subresource) == sorted(
        job.metadata.name for job in (good, bad)
    )
    for job in (good, bad):
        stored = await read_phjob(admin_kube, job.metadata.name)
        assert stored.metadata.finalizers == (FINALIZER,)
        assert stored.spec == job.spec


async def test_status_is_written_only_through_the_status_subresource(
    admin_kube: Kube, controller_kube: Kube
) -> None:
    """The CRD's status subresource, which the emulator's helper imitates, for real: a
    status in a create or in a patch of the object is dropped; only ``/status`` writes it."""
    body = new_phjob().to_k8s()
    body["status"] = {"phase": "Succeeded"}
    created = await admin_kube.create(PHJOBS, body)
    assert "status" not in created
    name = created["metadata"]["name"]
    patched = await admin_kube.patch(PHJOBS, name, {"status": {"phase": "Succeeded"}})
    assert "status" not in patched
    written = await controller_kube.patch(
        PHJOBS, name, {"status": {"phase": "Running"}}, subresource="status"
    )
    assert written["status"] == {"phase": "Running"}
    assert (await read_phjob(admin_kube, name)).status.phase is PhJobPhase.RUNNING


async def test_a_script_configmap_edited_by_hand_is_put_back(
    admin_kube: Kube,
    controller_kube: Kube,
    controller_settings: ControllerSettings,
    expiry_feed: ExpiryFeed,
) -> None:
    await admin_kube.create(
        CONFIGMAPS,
        {"metadata": {"name": SCRIPTS_CONFIGMAP}, "data": {SCRIPT_KEY: "#!/bin/sh\necho edited\n"}},
    )
    async with running_controller(
        controller_kube,
        controller_settings,
        expiry_feed,
        sync_timeout=TIMEOUT,
    ):
        job = await create_phjob(admin_kube)
        await wait_for_pod(admin_kube, job.metadata.name, timeout=TIMEOUT)
    script = await admin_kube.get(CONFIGMAPS, SCRIPTS_CONFIGMAP)
    assert script is not None and script["data"][SCRIPT_KEY] == STAND_IN_SCRIPT


async def test_cancel_deletes_the_pod_gracefully_and_the_job_ends_cancelled(
    admin_kube: Kube,
    controller_kube: Kube,
    controller_settings: ControllerSettings,
    expiry_feed: ExpiryFeed,
    redis: Redis,
) -> None:
    async with running_controller(
        controller_kube,
        controller_settings,
        expiry_feed,
        sync_timeout=TIMEOUT,
    ):
        job = await create_phjob(admin_kube)
        name = job.metadata.name
        await wait_for_pod(admin_kube, name, timeout=TIMEOUT)
        await bind_pod(admin_kube, name)
        await set_pod_status(admin_kube, name, running())
        await wait_for_phase(admin_kube, name, PhJobPhase.RUNNING, timeout=TIMEOUT)
        # The api's cancel: a merge patch of spec.cancel.
        await admin_kube.patch(PHJOBS, name, {"spec": {"cancel": True}})
        await wait_for_phase(admin_kube, name, PhJobPhase.CANCELLED, timeout=TIMEOUT)
        # A bound pod is deleted gracefully: it stays until its kubelet has stopped it,
        # which gives run-job.sh its grace period to collect the artifacts.
        pod = await admin_kube.get(PODS, name)
        assert pod is not None and pod["metadata"]["deletionTimestamp"]
        grace = pod["metadata"]["deletionGracePeriodSeconds"]
        assert grace == controller_settings.job_termination_grace_seconds
        await finish_pod_deletion(admin_kube, name)
        assert await admin_kube.get(PODS, name) is None
    ended = await read_phjob(admin_kube, name)
    assert ended.status.phase is PhJobPhase.CANCELLED
    # The job's end put its folder into the expiry index, at its finish plus the retention.
    assert ended.status.finish_time is not None
    due = ended.status.finish_time.timestamp() + controller_settings.artifact_retention_seconds
    entry = await redis.zscore(EXPIRY_INDEX_KEY, job_prefix(job.spec.group_name, name))
    assert entry is not None and abs(entry - due) <= 1


async def test_a_running_job_deleted_is_stopped_then_its_expiry_shortened_then_released(
    admin_kube: Kube,
    controller_kube: Kube,
    controller_settings: ControllerSettings,
    expiry_feed: ExpiryFeed,
    s3: S3Client,
    redis: Redis,
) -> None:
    bucket = controller_settings.phfs_bucket
    async with running_controller(
        controller_kube, controller_settings, expiry_feed, sync_timeout=TIMEOUT
    ):
        job = await create_phjob(admin_kube)
        name = job.metadata.name
        prefix = job_prefix(job.spec.group_name, name)
        await wait_for_pod(admin_kube, name, timeout=TIMEOUT)
        await bind_pod(admin_kube, name)
        await set_pod_status(admin_kube, name, running())
        await wait_for_phase(admin_kube, name, PhJobPhase.RUNNING, timeout=TIMEOUT)

        await admin_kube.delete(PHJOBS, name)  # kubectl delete phjob
        await wait_for_phase(admin_kube, name, PhJobPhase.CANCELLED, timeout=TIMEOUT)
        # The pod is stopping (graceful: its kubelet has not finished), so the job waits,
        # held by our finalizer, while its collection writes the folder, expiredAt last.
        pod = await admin_kube.get(PODS, name)
        assert pod is not None and pod["metadata"]["deletionTimestamp"]
        held = await read_phjob(admin_kube, name)
        assert held.metadata.deletion_timestamp is not None
        assert held.metadata.finalizers == (FINALIZER,)
        collected = int(time.time()) + 7 * DAY
        await s3.put_object(Bucket=bucket, Key=f"{prefix}test.txt", Body=b"hello\n")
        await s3.put_object(Bucket=bucket, Key=expired_at_key(prefix), Body=str(collected).encode())
        await finish_pod_deletion(admin_kube, name)

        async def gone() -> bool:
            return await admin_kube.get(PHJOBS, name) is None

        await eventually(gone, timeout=TIMEOUT, what=f"{name} to be released and removed")

    response = await s3.get_object(Bucket=bucket, Key=expired_at_key(prefix))
    expired_at = int(await response["Body"].read())
    assert time.time() + DAY - TIMEOUT - 5 <= expired_at <= time.time() + DAY
    assert await redis.zscore(EXPIRY_INDEX_KEY, prefix) == expired_at


async def test_a_job_whose_pod_vanished_fails_with_a_reason(
    admin_kube: Kube,
    controller_kube: Kube,
    controller_settings: ControllerSettings,
    expiry_feed: ExpiryFeed,
) -> None:
    async with running_controller(
        controller_kube,
        controller_settings,
        expiry_feed,
        sync_timeout=TIMEOUT,
    ):
        job = await create_phjob(admin_kube)
        name = job.metadata.name
        await wait_for_pod(admin_kube, name, timeout=TIMEOUT)
        await bind_pod(admin_kube, name)
        await set_pod_status(admin_kube, name, running())
        await wait_for_phase(admin_kube, name, PhJobPhase.RUNNING, timeout=TIMEOUT)
        await admin_kube.delete(PODS, name, grace_period_seconds=0)  # a node lost, say
        await wait_for_phase(admin_kube, name, PhJobPhase.FAILED, timeout=TIMEOUT)
    status = (await read_phjob(admin_kube, name)).status
    assert status.message == f"the job's pod {name} was deleted before the job finished"


async def test_an_s3_delivery_pod_with_an_ordinary_uploader_container_is_admitted(
    admin_kube: Kube,
    controller_kube: Kube,
    controller_settings: ControllerSettings,
    expiry_feed: ExpiryFeed,
) -> None:
    settings = controller_settings.model_copy(
        update={
            "artifact_delivery": "s3",
            "uploader_sidecar": "container",
            "uploader_s3_secret": "uploader-s3",
        }
    )
    async with running_controller(
        controller_kube,
        settings,
        expiry_feed,
        sync_timeout=TIMEOUT,
    ):
        job = await create_phjob(admin_kube)
        pod = await wait_for_pod(admin_kube, job.metadata.name, timeout=TIMEOUT)
        await wait_for_phase(admin_kube, job.metadata.name, PhJobPhase.PENDING, timeout=TIMEOUT)
    containers = {c["name"]: c for c in pod["spec"]["containers"]}
    assert sorted(containers) == [JOB_CONTAINER, UPLOADER_CONTAINER]
    assert containers[UPLOADER_CONTAINER]["envFrom"] == [{"secretRef": {"name": "uploader-s3"}}]
    assert {"name": "staging", "emptyDir": {}} in pod["spec"]["volumes"]


async def test_a_server_without_native_sidecars_fails_the_job_naming_the_setting(
    admin_kube: Kube,
    controller_kube: Kube,
    controller_settings: ControllerSettings,
    expiry_feed: ExpiryFeed,
) -> None:
    """Kubernetes 1.20 drops an init container's ``restartPolicy`` silently: the native
    uploader would block the job forever, so the job fails at once and says what to set."""
    settings = controller_settings.model_copy(
        update={"artifact_delivery": "s3", "uploader_sidecar": "native"}
    )
    async with running_controller(
        controller_kube,
        settings,
        expiry_feed,
        sync_timeout=TIMEOUT,
    ):
        job = await create_phjob(admin_kube)
        await wait_for_phase(admin_kube, job.metadata.name, PhJobPhase.FAILED, timeout=TIMEOUT)
    status = (await read_phjob(admin_kube, job.metadata.name)).status
    assert status.reason == "SidecarUnsupported"
    assert status.message is not None and "UPLOADER_SIDECAR=container" in status.message
    assert await admin_kube.get(PODS, job.metadata.name) is None
