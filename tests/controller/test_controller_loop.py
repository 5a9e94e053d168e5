"""The running controller: watches, queues and resyncs carry PhJobs through their phases,
and survive disconnects, expired versions and API errors without losing an event."""

from __future__ import annotations

import asyncio

from support.kube import KubeEmulator
from support.phjobs import (
    create_phjob,
    eventually,
    read_phjob,
    running,
    running_controller,
    set_pod_status,
    terminated,
)

from artifacts_controller.expiry_feed import ExpiryFeed
from artifacts_controller.kube import PHJOBS, PODS, Kube
from artifacts_controller.settings import ControllerSettings
from artifacts_shared.phjob import PhJobPhase

PHJOBS_R = "primehub.io/v1alpha1/phjobs"
PODS_R = "v1/pods"


async def _phase(kube: Kube, name: str, phase: PhJobPhase, *, timeout: float = 5.0) -> None:
    async def reached() -> bool:
        return (await read_phjob(kube, name)).status.phase is phase

    await eventually(reached, timeout=timeout, what=f"{name} to be {phase}")


async def _pod_exists(kube: Kube, name: str) -> None:
    async def exists() -> bool:
        return await kube.get(PODS, name) is not None

    await eventually(exists, what=f"pod {name}")


async def test_pod_phases_carry_phjobs_to_succeeded_and_failed(
    expiry_feed: ExpiryFeed,
    kube: Kube,
    kube_emulator: KubeEmulator,
    controller_settings: ControllerSettings,
) -> None:
    async with running_controller(kube, controller_settings, expiry_feed):
        good = (await create_phjob(kube)).metadata.name
        bad = (await create_phjob(kube)).metadata.name
        for name in (good, bad):
            await _pod_exists(kube, name)
            await _phase(kube, name, PhJobPhase.PENDING)
            await set_pod_status(kube, name, running())
            await _phase(kube, name, PhJobPhase.RUNNING)
        await set_pod_status(kube, good, terminated("Succeeded", 0))
        await set_pod_status(kube, bad, terminated("Failed", 1))
        await _phase(kube, good, PhJobPhase.SUCCEEDED)
        await _phase(kube, bad, PhJobPhase.FAILED)
        assert (await read_phjob(kube, bad)).status.message == "the command exited with code 1"
    assert len(kube_emulator.requests_to("create", PODS_R)) == 2


async def test_cancel_stops_a_running_job(
    expiry_feed: ExpiryFeed,
    kube: Kube,
    kube_emulator: KubeEmulator,
    controller_settings: ControllerSettings,
) -> None:
    async with running_controller(kube, controller_settings, expiry_feed):
        name = (await create_phjob(kube)).metadata.name
        await _pod_exists(kube, name)
        await set_pod_status(kube, name, running())
        await _phase(kube, name, PhJobPhase.RUNNING)
        await kube.patch(PHJOBS, name, {"spec": {"cancel": True}})
        await _phase(kube, name, PhJobPhase.CANCELLED)
        assert await kube.get(PODS, name) is None


async def test_a_vanished_pod_is_reported_not_waited_for(
    expiry_feed: ExpiryFeed, kube: Kube, controller_settings: ControllerSettings
) -> None:
    async with running_controller(kube, controller_settings, expiry_feed):
        name = (await create_phjob(kube)).metadata.name
        await _pod_exists(kube, name)
        await set_pod_status(kube, name, running())
        await _phase(kube, name, PhJobPhase.RUNNING)
        await kube.delete(PODS, name)
        await _phase(kube, name, PhJobPhase.FAILED)
        assert "was deleted" in ((await read_phjob(kube, name)).status.message or "")


async def test_a_dropped_watch_resumes_without_losing_an_event(
    expiry_feed: ExpiryFeed,
    kube: Kube,
    kube_emulator: KubeEmulator,
    controller_settings: ControllerSettings,
) -> None:
    # The resync is a minute away: only the watches can deliver these changes in time.
    async with running_controller(kube, controller_settings, expiry_feed) as controller:
        name = (await create_phjob(kube)).metadata.name
        await _pod_exists(kube, name)
        await _phase(kube, name, PhJobPhase.PENDING)

        async def watching() -> bool:
            return bool(kube_emulator.open_watches(PODS_R) and kube_emulator.open_watches(PHJOBS_R))

        await eventually(watching, what="both watches to be open")
        watches = len(kube_emulator.requests_to("watch", PODS_R))
        await kube_emulator.disconnect_watches()
        # Changes made while the controller reconnects:
        await set_pod_status(kube, name, running())
        second = (await create_phjob(kube)).metadata.name
        await _phase(kube, name, PhJobPhase.RUNNING)
        await _pod_exists(kube, second)
        assert len(kube_emulator.requests_to("watch", PODS_R)) > watches
        # Resumed from the last version seen, not listed again.
        assert controller.pods.lists == 1 and controller.phjobs.lists == 1


async def test_an_expired_version_is_relisted_without_losing_an_event(
    expiry_feed: ExpiryFeed,
    kube: Kube,
    kube_emulator: KubeEmulator,
    controller_settings: ControllerSettings,
) -> None:
    async with running_controller(kube, controller_settings, expiry_feed) as controller:
        name = (await create_phjob(kube)).metadata.name
        await _pod_exists(kube, name)
        await set_pod_status(kube, name, running())
        await _phase(kube, name, PhJobPhase.RUNNING)
        kube_emulator.fail_next("list", PODS_R, times=1, status=503)  # and a hiccup on relist

        async def watching() -> bool:
            return bool(kube_emulator.open_watches(PODS_R) and kube_emulator.open_watches(PHJOBS_R))

        await eventually(watching, what="both watches to be open")
        await kube_emulator.expire_watches()
        await set_pod_status(kube, name, terminated("Succeeded", 0))
        await _phase(kube, name, PhJobPhase.SUCCEEDED)

        async def relisted() -> bool:
            return controller.pods.lists == 2 and controller.phjobs.lists == 2

        await eventually(relisted, what="both watchers to list again, once")


async def test_api_errors_are_retried_with_backoff(
    expiry_feed: ExpiryFeed,
    kube: Kube,
    kube_emulator: KubeEmulator,
    controller_settings: ControllerSettings,
) -> None:
    kube_emulator.fail_next("list", PHJOBS_R, times=3, status=500)
    kube_emulator.fail_next("create", PODS_R, times=2, status=500)
    name = (await create_phjob(kube)).metadata.name
    async with running_controller(kube, controller_settings, expiry_feed) as controller:
        await _pod_exists(kube, name)
        await _phase(kube, name, PhJobPhase.PENDING)
        sample = controller.metrics.registry.get_sample_value
        restarts = {"resource": "phjobs", "cause": "error"}
        assert sample("phjob_watch_restarts_total", restarts) == 3
        assert sample("phjob_reconciles_total", {"result": "error"}) == 2
    assert len(kube_emulator.list_objects(PODS_R)) == 1


async def test_the_resync_catches_what_no_event_announced(
    expiry_feed: ExpiryFeed,
    kube: Kube,
    kube_emulator: KubeEmulator,
    controller_settings: ControllerSettings,
) -> None:
    settings = controller_settings.model_copy(update={"controller_resync_seconds": 0.3})
    async with running_controller(kube, settings, expiry_feed):
        name = (await create_phjob(kube)).metadata.name
        await _pod_exists(kube, name)
        await _phase(kube, name, PhJobPhase.PENDING)
        # Change the pod behind the watch's back: the emulator's history forgets it.
        key = (PODS_R, kube.namespace, name)
        kube_emulator.objects[key]["status"] = running()
        await _phase(kube, name, PhJobPhase.RUNNING, timeout=3)


async def test_the_controllers_own_writes_coming_back_cost_no_pass(
    expiry_feed: ExpiryFeed,
    kube: Kube,
    kube_emulator: KubeEmulator,
    controller_settings: ControllerSettings,
) -> None:
    async with running_controller(kube, controller_settings, expiry_feed) as controller:
        names = [(await create_phjob(kube)).metadata.name for _ in range(10)]
        for name in names:
            await _phase(kube, name, PhJobPhase.PENDING)
        await asyncio.sleep(0.3)  # the pods' ADDED and the statuses' MODIFIED events arrive

        async def idle() -> bool:
            return controller.metrics.registry.get_sample_value("phjob_queue_depth") == 0

        await eventually(idle, what="the queue to empty")
        passes = controller.metrics.registry.get_sample_value(
            "phjob_reconciles_total", {"result": "ok"}
        )
        # One pass a job: read it, create its pod, write its status. Nothing else.
        assert passes == len(names)
        assert len(kube_emulator.requests_to("fetch", PODS_R)) == 0  # created, never read

        # A change by someone else still gets its pass.
        await set_pod_status(kube, names[0], running())
        await _phase(kube, names[0], PhJobPhase.RUNNING)
