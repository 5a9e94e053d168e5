"""The controller's watches on a real API server: streams the server ends are resumed from
the last version without a new list, and a version the server no longer has (``410 Gone``
after an API server restart) makes the controller list again and catch up."""

from __future__ import annotations

import asyncio
import time

from support.cluster import TIMEOUT, ChartNamespace, Cluster, bind_pod
from support.phjobs import (
    create_phjob,
    eventually,
    read_phjob,
    running,
    running_controller,
    set_pod_status,
    wait_for_phase,
    wait_for_pod,
)

from artifacts_controller.controller import Controller
from artifacts_controller.expiry_feed import ExpiryFeed
from artifacts_controller.kube import Kube
from artifacts_controller.settings import ControllerSettings
from artifacts_shared.phjob import PhJobPhase


def _restarts(controller: Controller, resource: str, cause: str) -> float:
    sample = controller.metrics.registry.get_sample_value(
        "phjob_watch_restarts_total", {"resource": resource, "cause": cause}
    )
    return sample or 0.0


def _watches(cluster: Cluster, mark: int, user: str, resource: str) -> list[str]:
    return [
        event.uri
        for event in cluster.audit_since(mark)
        if event.user == user and event.resource == resource and event.verb == "watch"
    ]


async def test_watches_the_server_ends_resume_from_their_version_without_a_list(
    cluster: Cluster,
    chart: ChartNamespace,
    admin_kube: Kube,
    controller_kube: Kube,
    controller_settings: ControllerSettings,
    expiry_feed: ExpiryFeed,
) -> None:
    settings = controller_settings.model_copy(update={"controller_watch_timeout_seconds": 1})
    mark = cluster.audit_mark()
    async with running_controller(
        controller_kube,
        settings,
        expiry_feed,
        sync_timeout=TIMEOUT,
    ) as controller:
        first = await create_phjob(admin_kube)
        await wait_for_pod(admin_kube, first.metadata.name, timeout=TIMEOUT)

        async def several_streams_ended() -> bool:
            uris = _watches(cluster, mark, chart.controller.username, "phjobs")
            return len(uris) >= 4

        await eventually(several_streams_ended, timeout=20, what="the server to end watches")
        # A job created after several expired streams is still seen at once.
        second = await create_phjob(admin_kube)
        await wait_for_pod(admin_kube, second.metadata.name, timeout=TIMEOUT)
        assert controller.phjobs.lists == 1 and controller.pods.lists == 1
    uris = _watches(cluster, mark, chart.controller.username, "phjobs")
    assert all("timeoutSeconds=1" in uri for uri in uris)
    assert all("resourceVersion=" in uri for uri in uris), "a watch started from nowhere"
    ended = _restarts(controller, "phjobs", "ended")
    assert ended >= 3


async def test_after_an_api_server_restart_a_stale_version_is_gone_and_the_controller_relists(
    cluster: Cluster,
    chart: ChartNamespace,
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
    ) as controller:
        job = await create_phjob(admin_kube)
        name = job.metadata.name
        await wait_for_pod(admin_kube, name, timeout=TIMEOUT)
        await bind_pod(admin_kube, name)
        await set_pod_status(admin_kube, name, running())
        await wait_for_phase(admin_kube, name, PhJobPhase.RUNNING, timeout=TIMEOUT)

        def pod_goes_while_nobody_watches() -> None:
            # Another control-plane replica's write: the pod is deleted, and no event for
            # it will ever reach this API server's watchers. Only a new list shows it.
            assert cluster.etcd_delete(f"/registry/pods/{chart.namespace}/{name}") == 1

        started = time.monotonic()
        await asyncio.to_thread(cluster.restart_apiserver, pod_goes_while_nobody_watches)
        restart_seconds = time.monotonic() - started

        async def relisted() -> bool:
            return controller.pods.lists >= 2 and controller.phjobs.lists >= 2

        await eventually(relisted, timeout=30, what="both watches to list again")
        await wait_for_phase(admin_kube, name, PhJobPhase.FAILED, timeout=30)
        gone = _restarts(controller, "pods", "gone")
        assert gone >= 1, f"no 410 seen (restart took {restart_seconds:.1f} s)"
        # And the controller still follows new work after the restart.
        later = await create_phjob(admin_kube)
        await wait_for_pod(admin_kube, later.metadata.name, timeout=TIMEOUT)
    status = (await read_phjob(admin_kube, name)).status
    assert status.message == f"the job's pod {name} was deleted before the job finished"
