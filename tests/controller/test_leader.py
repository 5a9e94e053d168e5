"""Leader election on a Lease: of two controllers on one API server, only the leader acts."""

from __future__ import annotations

import asyncio

import pytest
from support.kube import KubeEmulator, api_client_for
from support.phjobs import STAND_IN_SCRIPT, create_phjob, eventually

from artifacts_controller.controller import run_elected
from artifacts_controller.expiry_feed import ExpiryFeed
from artifacts_controller.kube import LEASES, PODS, Kube
from artifacts_controller.leader import LeaderElector, LeadershipLost
from artifacts_controller.metrics import ControllerMetrics
from artifacts_controller.settings import ControllerSettings
from artifacts_shared.input_holds import InputHolds
from artifacts_shared.s3 import S3Client


def _elector(kube: Kube, identity: str, settings: ControllerSettings) -> LeaderElector:
    return LeaderElector(
        kube,
        name=settings.controller_lease_name,
        identity=identity,
        lease_seconds=settings.controller_lease_seconds,
        renew_seconds=settings.controller_lease_renew_seconds,
        metrics=ControllerMetrics(),
    )


async def test_only_the_leader_creates_pods_and_a_follower_takes_over(
    expiry_feed: ExpiryFeed,
    input_holds: InputHolds,
    kube_emulator: KubeEmulator,
    kube_namespace: str,
    controller_settings: ControllerSettings,
    s3: S3Client,
) -> None:
    url = str(kube_emulator.url).rstrip("/")
    async with api_client_for(url) as api_a, api_client_for(url) as api_b:
        api_a.user_agent, api_b.user_agent = "controller-a", "controller-b"
        kube_a = Kube(api_a, namespace=kube_namespace)
        kube_b = Kube(api_b, namespace=kube_namespace)
        elector_a = _elector(kube_a, "a", controller_settings)
        elector_b = _elector(kube_b, "b", controller_settings)

        def start(kube: Kube, elector: LeaderElector) -> asyncio.Task[None]:
            return asyncio.create_task(
                run_elected(
                    kube=kube,
                    settings=controller_settings,
                    script=STAND_IN_SCRIPT,
                    metrics=ControllerMetrics(),
                    s3=s3,
                    expiry_feed=expiry_feed,
                    input_holds=input_holds,
                    elector=elector,
                )
            )

        task_a = start(kube_a, elector_a)
        await asyncio.wait_for(elector_a.leading.wait(), 5)
        task_b = start(kube_b, elector_b)
        try:
            jobs = [(await create_phjob(kube_a)).metadata.name for _ in range(5)]
            for name in jobs:
                await eventually(lambda name=name: _has_pod(kube_a, name), what=f"pod {name}")
            await asyncio.sleep(3 * controller_settings.controller_lease_renew_seconds)
            assert not elector_b.leading.is_set()
            creators = {
                r.headers.get("User-Agent") for r in kube_emulator.requests_to("create", "v1/pods")
            }
            assert creators == {"controller-a"}
            lease = kube_emulator.read_object(
                "coordination.k8s.io/v1/leases", kube_namespace, "artifacts-controller"
            )
            assert lease is not None and lease["spec"]["holderIdentity"] == "a"

            # The leader stops (a rollout): it releases the lease, the follower takes over.
            task_a.cancel()
            await asyncio.gather(task_a, return_exceptions=True)
            await asyncio.wait_for(elector_b.leading.wait(), 5)
            late = (await create_phjob(kube_b)).metadata.name
            await eventually(lambda: _has_pod(kube_b, late), what="a pod from the new leader")
            creators = [
                r.headers.get("User-Agent") for r in kube_emulator.requests_to("create", "v1/pods")
            ]
            assert creators[-1] == "controller-b" and creators.count("controller-b") == 1
        finally:
            for task in (task_a, task_b):
                task.cancel()
            await asyncio.gather(task_a, task_b, return_exceptions=True)


async def _has_pod(kube: Kube, name: str) -> bool:
    return await kube.get(PODS, name) is not None


async def test_a_lease_held_by_a_silent_replica_is_taken_only_after_it_expires(
    kube: Kube, controller_settings: ControllerSettings
) -> None:
    await kube.create(
        # A leader that crashed without releasing: its record never changes again.
        LEASES,
        {
            "metadata": {"name": "artifacts-controller"},
            "spec": {"holderIdentity": "crashed", "leaseDurationSeconds": 1},
        },
    )
    elector = _elector(kube, "b", controller_settings)
    task = asyncio.create_task(elector.run())
    try:
        started = asyncio.get_running_loop().time()
        await asyncio.wait_for(elector.leading.wait(), 5)
        waited = asyncio.get_running_loop().time() - started
        assert waited >= 0.9  # a whole lease duration on our own clock
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_leader_whose_lease_is_taken_stops_acting(
    kube: Kube,
    kube_emulator: KubeEmulator,
    kube_namespace: str,
    controller_settings: ControllerSettings,
) -> None:
    elector = _elector(kube, "a", controller_settings)
    task = asyncio.create_task(elector.run())
    await asyncio.wait_for(elector.leading.wait(), 5)
    # An operator (or a split brain) hands the lease to someone else.
    await kube.patch(LEASES, "artifacts-controller", {"spec": {"holderIdentity": "z"}})
    with pytest.raises(LeadershipLost):
        await asyncio.wait_for(task, 5)
    assert not elector.leading.is_set()
    lease = kube_emulator.read_object(
        "coordination.k8s.io/v1/leases", kube_namespace, "artifacts-controller"
    )
    assert lease is not None and lease["spec"]["holderIdentity"] == "z"  # not released: not ours
