"""Job logs from Kubernetes: the pod's log through the API server (kmock's emulator), then S3.

The api reads PhJobs and pod logs with kubernetes-asyncio over HTTP from the emulator
(``support/kube.py`` serves ``pods/<name>/log`` as the API server does); the test plays
the controller (the PhJob's status) and the kubelet (the pod's status and its output).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes_asyncio import client as k8s
from redis.asyncio import Redis
from support.api import Api, serve
from support.folders import FixedClock
from support.joblogs import archive_log
from support.kube import KubeEmulator, api_client_for, serve_kube

from artifacts_api.kube import JOB_CONTAINER, KubernetesJobSource
from artifacts_api.settings import ApiSettings
from artifacts_controller.expiry_feed import ExpiryFeed
from artifacts_controller.kube import Kube
from artifacts_controller.kube_runtime import KubeRuntime
from artifacts_controller.metrics import ControllerMetrics
from artifacts_controller.orphans import OrphanGrace
from artifacts_controller.pods import JOB_CONTAINER as CONTROLLERS_JOB_CONTAINER
from artifacts_controller.reconcile import Reconciler
from artifacts_controller.settings import ControllerSettings
from artifacts_janitor.cleanup import CleanupOptions, run_cleanup
from artifacts_shared.expiry_index import EXPIRY_INDEX_KEY, ExpiryIndex
from artifacts_shared.input_holds import InputHolds
from artifacts_shared.layout import job_log_key, job_prefix
from artifacts_shared.metadata_store import read_expiry, read_manifest
from artifacts_shared.phjob import API_GROUP, API_VERSION, PLURAL, PhJob, PhJobMetadata, PhJobSpec
from artifacts_shared.s3 import S3Client
from artifacts_shared.settings import S3Settings

NAMESPACE = "jobs"
JOB = "job-202101020304-abcdef"
OTHER = "job-202101020304-zzzzzz"
PAGE = """query ($id: ID!, $limit: Int) { phJob(where: {id: $id}) {
  logs(limit: $limit) { offset lines totalLines live source } } }"""


@dataclass
class Cluster:
    api: Api
    emulator: KubeEmulator
    kube: Any
    source: KubernetesJobSource

    async def job(self, job_id: str, *, group: str = "team-a") -> None:
        await self.source.create(
            PhJob(
                metadata=PhJobMetadata(name=job_id),
                spec=PhJobSpec(display_name=job_id, group_name=group, command="true"),
            )
        )

    async def job_status(self, job_id: str, phase: str, **status: Any) -> None:
        """Play the controller: the PhJob's phase and its pod."""
        body = {"status": {"phase": phase, "podName": job_id, **status}}
        await k8s.CustomObjectsApi(self.kube).patch_namespaced_custom_object_status(
            API_GROUP, API_VERSION, NAMESPACE, PLURAL, job_id, body
        )

    async def pod(self, name: str, state: str | None) -> None:
        """Play the controller and the kubelet: the job's pod, its job container in ``state``."""
        core = k8s.CoreV1Api(self.kube)
        if self.emulator.read_object("v1/pods", NAMESPACE, name) is None:
            await core.create_namespaced_pod(
                NAMESPACE,
                {
                    "metadata": {"name": name},
                    "spec": {
                        "containers": [
                            {"name": JOB_CONTAINER, "image": "busybox"},
                            {"name": "uploader", "image": "artifacts-controller"},
                        ]
                    },
                },
                _preload_content=False,  # the emulator's objects are not complete pods
            )
        if state is not None:
            statuses = [{"name": JOB_CONTAINER, "state": {state: {}}}]
            await core.patch_namespaced_pod_status(
                name, NAMESPACE, {"status": {"containerStatuses": statuses}}, _preload_content=False
            )

    def write(self, pod: str, data: bytes) -> None:
        self.emulator.write_pod_log(NAMESPACE, pod, data, container=JOB_CONTAINER)


@pytest.fixture
async def cluster(settings: ApiSettings) -> AsyncIterator[Cluster]:
    async with (
        serve_kube() as (emulator, url),
        api_client_for(url) as kube,
        api_client_for(url) as logs,
        KubernetesJobSource(
            kube, namespace=NAMESPACE, timeout_seconds=5, log_client=logs
        ) as source,
    ):
        kube_settings = settings.model_copy(
            update={"controller_runtime": "kubernetes", "kube_namespace": NAMESPACE}
        )
        async with serve(kube_settings, job_source=source) as api:
            yield Cluster(api, emulator, kube, source)


def test_the_api_reads_the_container_the_controller_runs_the_job_in() -> None:
    assert JOB_CONTAINER == CONTROLLERS_JOB_CONTAINER


async def test_a_running_jobs_log_is_its_pods_whole_or_tailed(cluster: Cluster) -> None:
    await cluster.job(JOB)
    await cluster.pod(JOB, "running")
    await cluster.job_status(JOB, "Running")
    cluster.write(JOB, b"one\ntwo\nthree\n")

    whole = await cluster.api.get(f"/jobs/{JOB}/logs")
    tail = await cluster.api.get(f"/jobs/{JOB}/logs?follow=false&tailLines=2")

    assert (whole.status, await whole.read()) == (200, b"one\ntwo\nthree\n")
    assert whole.headers["X-Log-Source"] == "LIVE"
    assert await tail.read() == b"two\nthree\n"
    requests = [r for r in cluster.emulator.served if r.subresource == "log"]
    assert requests[-1].params["container"] == JOB_CONTAINER
    assert requests[-1].params["tailLines"] == "2"


async def test_follow_streams_the_pods_output_and_ends_when_its_container_ends(
    cluster: Cluster,
) -> None:
    api = cluster.api
    await cluster.job(JOB)
    await cluster.pod(JOB, "running")
    await cluster.job_status(JOB, "Running")
    cluster.write(JOB, b"epoch 1\n")

    async with api.session.get(
        f"{api.url}/jobs/{JOB}/logs?follow=true&tailLines=10",
        headers=api.headers(api.default_token),
    ) as response:
        assert await asyncio.wait_for(response.content.readline(), 5) == b"epoch 1\n"
        cluster.write(JOB, b"epoch 2\n")
        assert await asyncio.wait_for(response.content.readline(), 5) == b"epoch 2\n"
        cluster.write(JOB, b"artifacts: 2 files collected\n")
        await cluster.pod(JOB, "terminated")
        rest = await asyncio.wait_for(response.content.read(), 10)

    assert rest == b"artifacts: 2 files collected\n"


async def test_a_follow_of_a_pending_pod_waits_for_its_container_to_start(
    cluster: Cluster,
) -> None:
    api = cluster.api
    await cluster.job(JOB)
    await cluster.pod(JOB, None)
    await cluster.job_status(JOB, "Pending")
    assert (await api.get(f"/jobs/{JOB}/logs")).status == 200

    async with api.session.get(
        f"{api.url}/jobs/{JOB}/logs?follow=true", headers=api.headers(api.default_token)
    ) as response:
        assert response.status == 200
        await asyncio.sleep(0.3)
        cluster.write(JOB, b"hello from the container\n")
        await cluster.pod(JOB, "running")
        await cluster.job_status(JOB, "Running")
        line = await asyncio.wait_for(response.content.readline(), 10)
        await cluster.pod(JOB, "terminated")
        rest = await asyncio.wait_for(response.content.read(), 10)

    assert (line, rest) == (b"hello from the container\n", b"")


async def test_once_the_pod_is_gone_the_log_comes_from_the_bucket_until_it_expires(
    cluster: Cluster, s3: S3Client
) -> None:
    api = cluster.api
    await cluster.job(JOB)
    await cluster.pod(JOB, "terminated")
    cluster.write(JOB, b"from the pod\n")
    finished = "2030-01-01T00:00:00Z"  # in the future: within any retention
    await cluster.job_status(JOB, "Succeeded", finishTime=finished)
    assert await (await api.get(f"/jobs/{JOB}/logs")).read() == b"from the pod\n"

    await k8s.CoreV1Api(cluster.kube).delete_namespaced_pod(JOB, NAMESPACE, _preload_content=False)
    gone = await api.get(f"/jobs/{JOB}/logs")
    assert gone.status == 404
    assert (await gone.json())["errors"][0]["extensions"]["reason"] == "gone"

    await archive_log(s3, api.settings.phfs_bucket, JOB, b"kept\n", expired_at=time.time() + 60)
    kept = await api.get(f"/jobs/{JOB}/logs?tailLines=5")
    assert (kept.status, await kept.read()) == (200, b"kept\n")
    assert kept.headers["X-Log-Source"] == "ARCHIVE"

    await archive_log(s3, api.settings.phfs_bucket, JOB, b"kept\n", expired_at=time.time() - 1)
    expired = await api.get(f"/jobs/{JOB}/logs")
    assert expired.status == 404
    assert (await expired.json())["errors"][0]["extensions"]["reason"] == "expired"


async def test_another_groups_pod_log_is_forbidden(cluster: Cluster) -> None:
    await cluster.job(OTHER, group="team-b")
    await cluster.pod(OTHER, "running")
    await cluster.job_status(OTHER, "Running")
    cluster.write(OTHER, b"secret of team-b\n")

    response = await cluster.api.get(f"/jobs/{OTHER}/logs")
    page = await cluster.api.graphql(PAGE, {"id": OTHER})

    assert response.status == 403
    assert b"secret" not in await response.read()
    assert page.codes == ["FORBIDDEN"]
    assert not [r for r in cluster.emulator.served if r.subresource == "log"]


async def test_logs_pages_a_pods_log_counting_every_line(cluster: Cluster) -> None:
    await cluster.job(JOB)
    await cluster.pod(JOB, "running")
    await cluster.job_status(JOB, "Running")
    cluster.write(JOB, b"".join(f"step {i}\n".encode() for i in range(1, 101)))

    page = (await cluster.api.graphql(PAGE, {"id": JOB, "limit": 2})).data["phJob"]["logs"]

    assert page == {
        "offset": 98,
        "lines": ["step 99", "step 100"],
        "totalLines": 100,
        "live": True,
        "source": "LIVE",
    }


# --- once the job ends: the controller delivers the pod's log with the artifacts ----------


@pytest.mark.parametrize("delivery", ["phfs", "s3"])
async def test_the_controller_keeps_the_pods_log_which_outlives_the_pod_until_it_expires(
    cluster: Cluster, settings: ApiSettings, s3: S3Client, redis: Redis, delivery: str
) -> None:
    retention = 4
    controller_settings = ControllerSettings(
        **{name: getattr(settings, name) for name in S3Settings.model_fields},
        kube_namespace=NAMESPACE,
        artifact_delivery=delivery,
        artifact_retention_seconds=retention,
        artifact_job_log_limit_mb=1,
    )
    metrics = ControllerMetrics()
    runtime = KubeRuntime(
        kube=Kube(cluster.kube, namespace=NAMESPACE),
        settings=controller_settings,
        script="#!/bin/bash\n",
        metrics=metrics,
        s3=s3,
    )
    feed = ExpiryFeed(ExpiryIndex(redis), policy=controller_settings)
    orphans = OrphanGrace.for_settings(controller_settings, s3=s3, expiry_feed=feed)
    reconciler = Reconciler(
        runtime,
        metrics=metrics,
        expiry_feed=feed,
        orphans=orphans,
        input_holds=InputHolds(redis),
    )
    await cluster.job(JOB)
    await reconciler.reconcile_name(JOB)  # the controller creates the pod
    output = b"epoch 1\nTraceback: boom\nartifacts: none: there is no ./artifacts folder\n"
    status: dict[str, Any] = {
        "phase": "Failed",
        "containerStatuses": [
            {"name": JOB_CONTAINER, "state": {"terminated": {"exitCode": 3, "reason": "Error"}}}
        ],
    }
    if delivery == "s3":  # the native sidecar delivered nothing (no artifacts) and ended
        status["initContainerStatuses"] = [
            {"name": "uploader", "state": {"terminated": {"exitCode": 0}}}
        ]
    await k8s.CoreV1Api(cluster.kube).patch_namespaced_pod_status(
        JOB, NAMESPACE, {"status": status}, _preload_content=False
    )
    cluster.write(JOB, output)  # the kubelet's copy: nothing in the pod could change it

    outcome = await reconciler.reconcile_name(JOB)
    assert outcome is not None and outcome.status.phase.value == "Failed"
    ended = time.time()

    prefix = job_prefix("team-a", JOB)
    stored = await s3.get_object(Bucket=settings.phfs_bucket, Key=job_log_key(prefix))
    assert await stored["Body"].read() == output
    manifest = await read_manifest(s3, settings.phfs_bucket, prefix)
    assert manifest is not None and manifest.log is not None
    assert (manifest.file_count, manifest.log.size, manifest.log.truncated) == (
        0,
        len(output),
        False,
    )
    expiry = await read_expiry(s3, settings.phfs_bucket, prefix)
    assert expiry.expired_at is not None and abs(expiry.expired_at - (ended + retention)) <= 2
    # The job's end put its folder into the expiry index, near the expiredAt written.
    entry = await redis.zscore(EXPIRY_INDEX_KEY, prefix)
    assert entry is not None and abs(entry - expiry.expired_at) <= 2

    await k8s.CoreV1Api(cluster.kube).delete_namespaced_pod(JOB, NAMESPACE, _preload_content=False)
    assert cluster.emulator.read_object("v1/pods", NAMESPACE, JOB) is None
    kept = await cluster.api.get(f"/jobs/{JOB}/logs")
    assert (kept.status, await kept.read()) == (200, output)
    assert kept.headers["X-Log-Source"] == "ARCHIVE"
    tailed = await cluster.api.get(f"/jobs/{JOB}/logs?tailLines=1")
    assert await tailed.read() == b"artifacts: none: there is no ./artifacts folder\n"
    page = (await cluster.api.graphql(PAGE, {"id": JOB, "limit": 1})).data["phJob"]["logs"]
    assert (page["source"], page["lines"]) == ("ARCHIVE", [output.decode().splitlines()[-1]])

    await asyncio.sleep(max(0.0, expiry.expired_at + 1 - time.time()))
    gone = await cluster.api.get(f"/jobs/{JOB}/logs")
    assert gone.status == 404
    assert (await gone.json())["errors"][0]["extensions"]["reason"] == "expired"
    assert (await cluster.api.graphql(PAGE, {"id": JOB})).codes == ["NOT_FOUND"]

    # The janitor deletes the folder, the log with it; the answer stays the same.
    swept = await run_cleanup(
        s3=s3,
        bucket=settings.phfs_bucket,
        redis=redis,
        clock=FixedClock(expiry.expired_at + 1),
        run_id="sweep",
        options=CleanupOptions(),
    )
    assert swept.folders_deleted == 1
    assert (await s3.list_objects_v2(Bucket=settings.phfs_bucket)).get("KeyCount") == 0
    assert (await cluster.api.get(f"/jobs/{JOB}/logs")).status == 404
