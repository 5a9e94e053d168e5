"""Leader election on a real Lease: two ``python -m artifacts_controller`` processes with the
controller's service account, one acting; the API server's 409 on a stale resourceVersion
is what keeps two replicas from both winning."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from support.cluster import TIMEOUT, ChartNamespace, Cluster
from support.phjobs import create_phjob, eventually, wait_for_pod
from support.servers import free_port

from artifacts_controller.kube import LEASES, Kube, KubeApiError
from artifacts_controller.leader import LeaderElector
from artifacts_controller.metrics import ControllerMetrics
from artifacts_controller.settings import ControllerSettings
from artifacts_shared.settings import RedisSettings

LEASE = "artifacts-controller"


@contextmanager
def controller_process(
    cluster: Cluster, chart: ChartNamespace, identity: str, folder: Path, redis_url: str
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """The controller as a Deployment runs it, pointed at the cluster by a kubeconfig."""
    kubeconfig = cluster.kubeconfig(chart.controller, folder / f"{identity}.kubeconfig")
    port = free_port()
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("KUBE", "CONTROLLER_", "ARTIFACT_"))
    }
    env.update(
        {
            "KUBECONFIG": str(kubeconfig),
            "KUBE_NAMESPACE": chart.namespace,
            "CONTROLLER_RUNTIME": "kubernetes",
            "CONTROLLER_IDENTITY": identity,
            "CONTROLLER_LEASE_NAME": LEASE,
            "CONTROLLER_LEASE_SECONDS": "4",
            "CONTROLLER_LEASE_RENEW_SECONDS": "0.5",
            "CONTROLLER_BACKOFF_INITIAL_SECONDS": "0.2",
            "CONTROLLER_BACKOFF_MAX_SECONDS": "1",
            "CONTROLLER_PROBE_HOST": "127.0.0.1",
            "CONTROLLER_PROBE_PORT": str(port),
            "REDIS_URL": redis_url,  # the test's own server, never a default port's
        }
    )
    log = (folder / f"{identity}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "artifacts_controller"], env=env, stdout=log, stderr=log
    )
    try:
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()


def _leads(port: int) -> bool | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
            return bool(json.loads(answer.read())["leader"])
    except OSError:
        return None


async def _holder(kube: Kube) -> str | None:
    lease = await kube.get(LEASES, LEASE)
    return None if lease is None else (lease.get("spec") or {}).get("holderIdentity")


async def test_two_controller_processes_one_leads_and_hands_over_on_sigterm(
    cluster: Cluster,
    chart: ChartNamespace,
    admin_kube: Kube,
    tmp_path: Path,
    redis_settings: RedisSettings,
) -> None:
    mark = cluster.audit_mark()
    url = redis_settings.redis_url
    with (
        controller_process(cluster, chart, "replica-a", tmp_path, url) as (a, port_a),
        controller_process(cluster, chart, "replica-b", tmp_path, url) as (b, port_b),
    ):

        async def both_up_and_one_holds() -> bool:
            answers = [await asyncio.to_thread(_leads, port) for port in (port_a, port_b)]
            holder = await _holder(admin_kube)
            return None not in answers and holder in ("replica-a", "replica-b")

        await eventually(both_up_and_one_holds, timeout=30, what="both up, one holding the lease")
        leader = await _holder(admin_kube)
        (process, port), (other, other_port) = (
            ((a, port_a), (b, port_b)) if leader == "replica-a" else ((b, port_b), (a, port_a))
        )
        follower = "replica-b" if leader == "replica-a" else "replica-a"

        async def leader_says_so() -> bool:
            return await asyncio.to_thread(_leads, port) is True

        await eventually(leader_says_so, timeout=TIMEOUT, what=f"{leader} to report leading")
        first = await create_phjob(admin_kube)
        await wait_for_pod(admin_kube, first.metadata.name, timeout=TIMEOUT)
        assert await asyncio.to_thread(_leads, other_port) is False

        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 20) == 0

        # It gave the lease up on the way out, so the follower need not wait for it to expire.
        async def follower_holds() -> bool:
            return await _holder(admin_kube) == follower

        await eventually(follower_holds, timeout=TIMEOUT, what=f"{follower} to take over")
        second = await create_phjob(admin_kube)
        await wait_for_pod(admin_kube, second.metadata.name, timeout=TIMEOUT)
        assert other.poll() is None

    lease = await admin_kube.get(LEASES, LEASE)
    assert lease is not None and lease["spec"]["leaseTransitions"] >= 1
    # Only the creates that made a pod: a new leader that finds a job whose status names no
    # pod yet creates it outright and is answered 409 (the pod exists), by design.
    creates = [
        event
        for event in cluster.audit_since(mark)
        if event.user == chart.controller.username
        and (event.verb, event.resource) == ("create", "pods")
    ]
    made = [event for event in creates if event.code == 201]
    assert all(event.code in (201, 409) for event in creates), creates
    creators = {event.name: event.user_agent for event in made}
    assert len(made) == len(creators) == 2, made  # one pod per job, each created once
    assert set(creators) == {first.metadata.name, second.metadata.name}
    assert f"({leader})" in creators[first.metadata.name]
    assert f"({follower})" in creators[second.metadata.name]


def _elector(kube: Kube, identity: str, settings: ControllerSettings) -> LeaderElector:
    return LeaderElector(
        kube,
        name=LEASE,
        identity=identity,
        lease_seconds=settings.controller_lease_seconds,
        renew_seconds=settings.controller_lease_renew_seconds,
        metrics=ControllerMetrics(),
    )


async def test_a_write_with_a_stale_resource_version_is_answered_409(
    controller_kube: Kube, controller_settings: ControllerSettings
) -> None:
    elector = _elector(controller_kube, "replica-a", controller_settings)
    task = asyncio.create_task(elector.run())
    try:
        await asyncio.wait_for(elector.leading.wait(), TIMEOUT)
        seen = await controller_kube.get(LEASES, LEASE)
        assert seen is not None
        stale = seen["metadata"]["resourceVersion"]

        async def renewed() -> bool:
            lease = await controller_kube.get(LEASES, LEASE)
            return lease is not None and lease["metadata"]["resourceVersion"] != stale

        await eventually(renewed, timeout=TIMEOUT, what="the leader to renew")
        # What a replica that read the lease before that renewal would send to take it.
        with pytest.raises(KubeApiError) as refused:
            await controller_kube.patch(
                LEASES,
                LEASE,
                {"metadata": {"resourceVersion": stale}, "spec": {"holderIdentity": "replica-b"}},
            )
        assert refused.value.status == 409 and refused.value.reason == "Conflict"
        assert await _holder(controller_kube) == "replica-a"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_of_two_electors_racing_for_a_new_lease_exactly_one_wins(
    controller_kube: Kube, controller_settings: ControllerSettings
) -> None:
    electors = [_elector(controller_kube, name, controller_settings) for name in ("a", "b", "c")]
    tasks = [asyncio.create_task(elector.run()) for elector in electors]
    try:
        await asyncio.wait_for(
            asyncio.wait(
                [asyncio.create_task(e.leading.wait()) for e in electors],
                return_when=asyncio.FIRST_COMPLETED,
            ),
            TIMEOUT,
        )
        await asyncio.sleep(4 * controller_settings.controller_lease_renew_seconds)
        leaders = [elector.identity for elector in electors if elector.leading.is_set()]
        assert leaders == [await _holder(controller_kube)]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
