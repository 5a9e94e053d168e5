"""Helpers for controller tests: play the api (create PhJobs) and the kubelet (pod status),
and run a controller in the test's event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from artifacts_controller.controller import Controller
from artifacts_controller.expiry_feed import ExpiryFeed
from artifacts_controller.kube import PHJOBS, PODS, JsonObject, Kube
from artifacts_controller.metrics import ControllerMetrics
from artifacts_controller.settings import ControllerSettings
from artifacts_shared.input_holds import InputHolds
from artifacts_shared.phjob import PhJob, PhJobMetadata, PhJobPhase, PhJobSpec, new_job_id
from artifacts_shared.redis import open_redis
from artifacts_shared.s3 import open_s3

STAND_IN_SCRIPT = '#!/usr/bin/env bash\n# a stand-in for run-job.sh\nexec bash -c "$1"\n'


def new_phjob(**spec: Any) -> PhJob:
    fields: dict[str, Any] = {"display_name": "seed", "group_name": "ML_Team", "command": "echo hi"}
    fields.update(spec)
    return PhJob(metadata=PhJobMetadata(name=new_job_id()), spec=PhJobSpec(**fields))


async def create_phjob(kube: Kube, **spec: Any) -> PhJob:
    """Create a PhJob as the api does; returns it as the API server has it (uid and all)."""
    created = await kube.create(PHJOBS, new_phjob(**spec).to_k8s())
    return PhJob.from_k8s(created)


async def read_phjob(kube: Kube, name: str) -> PhJob:
    document = await kube.get(PHJOBS, name)
    assert document is not None, f"PhJob {name} is gone"
    return PhJob.from_k8s(document)


async def set_pod_status(kube: Kube, name: str, status: dict[str, Any]) -> None:
    """Play the kubelet: write a pod's status."""
    await kube.patch(PODS, name, {"status": status}, subresource="status")


def running(started: str = "2026-01-01T00:00:05Z") -> dict[str, Any]:
    return {
        "phase": "Running",
        "startTime": "2026-01-01T00:00:01Z",
        "conditions": [{"type": "PodScheduled", "status": "True"}],
        "containerStatuses": [{"name": "job", "state": {"running": {"startedAt": started}}}],
    }


def terminated(
    phase: str, exit_code: int, *, finished: str = "2026-01-01T00:01:00Z", reason: str = ""
) -> dict[str, Any]:
    state = {
        "exitCode": exit_code,
        "reason": reason or ("Completed" if exit_code == 0 else "Error"),
        "startedAt": "2026-01-01T00:00:05Z",
        "finishedAt": finished,
    }
    return {
        "phase": phase,
        "startTime": "2026-01-01T00:00:01Z",
        "containerStatuses": [{"name": "job", "state": {"terminated": state}}],
    }


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float = 20.0, what: str = "condition"
) -> None:
    # Generous: a condition that holds returns at once; three test workers share two cores.
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def running_controller(
    kube: Kube, settings: ControllerSettings, feed: ExpiryFeed, *, sync_timeout: float = 5.0
) -> AsyncIterator[Controller]:
    """A controller running in this event loop, its first lists done."""
    async with open_s3(settings) as s3, open_redis(settings) as redis:
        controller = Controller(
            kube=kube,
            settings=settings,
            script=STAND_IN_SCRIPT,
            metrics=ControllerMetrics(),
            s3=s3,
            expiry_feed=feed,
            input_holds=InputHolds(redis),
        )
        task = asyncio.create_task(controller.run())
        try:
            await asyncio.wait_for(
                asyncio.gather(controller.phjobs.synced.wait(), controller.pods.synced.wait()),
                sync_timeout,
            )
            yield controller
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def wait_for_phase(kube: Kube, name: str, phase: PhJobPhase, *, timeout: float) -> None:
    async def reached() -> bool:
        return (await read_phjob(kube, name)).status.phase is phase

    await eventually(reached, timeout=timeout, what=f"{name} to be {phase}")


async def wait_for_pod(kube: Kube, name: str, *, timeout: float) -> JsonObject:
    """The pod named ``name`` once it exists."""
    found: list[JsonObject] = []

    async def exists() -> bool:
        pod = await kube.get(PODS, name)
        if pod is not None:
            found.append(pod)
        return pod is not None

    await eventually(exists, timeout=timeout, what=f"pod {name}")
    return found[-1]
