"""The Kubernetes controller: watches feed a per-PhJob queue that reconciles.

Two watchers (PhJobs, and the job pods) only say *which* PhJob to look at; the queue runs
``Reconciler.reconcile_name`` for it, one pass at a time per PhJob. A periodic resync lists
every PhJob again, so a missed event or a stuck watch delays a job by at most one period.
``run_elected`` puts all of it behind the Lease: a follower only waits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import NoReturn

from artifacts_controller.kube import PHJOBS, PODS, JsonObject, Kube
from artifacts_controller.leader import LeaderElector
from artifacts_controller.metrics import ControllerMetrics
from artifacts_controller.podspec import MANAGED_BY, owner_of
from artifacts_controller.queueing import Backoff, KeyedQueue
from artifacts_controller.reconcile import Reconciler
from artifacts_controller.settings import ControllerSettings
from artifacts_controller.watching import Watcher
from artifacts_shared.phjob import FINISHED_PHASES

__all__ = ["Controller", "run_elected"]

log = logging.getLogger(__name__)

POD_SELECTOR = f"app.kubernetes.io/managed-by={MANAGED_BY}"


def _name(obj: JsonObject) -> str | None:
    name = (obj.get("metadata") or {}).get("name")
    return str(name) if name else None


def _finished(obj: JsonObject) -> bool:
    return (obj.get("status") or {}).get("phase") in FINISHED_PHASES


class Controller:
    def __init__(
        self,
        *,
        kube: Kube,
        settings: ControllerSettings,
        script: str,
        metrics: ControllerMetrics,
    ) -> None:
        self._kube = kube
        self._settings = settings
        self.metrics = metrics
        self.reconciler = Reconciler(kube=kube, settings=settings, script=script, metrics=metrics)
        self.queue = KeyedQueue(
            self._reconcile,
            max_parallel=settings.controller_workers,
            backoff_initial=settings.controller_backoff_initial_seconds,
            backoff_max=settings.controller_backoff_max_seconds,
            on_depth=metrics.queue_depth.set,
        )
        self._unfinished: set[str] = set()

        def backoff() -> Backoff:
            return Backoff(
                initial=settings.controller_backoff_initial_seconds,
                maximum=settings.controller_backoff_max_seconds,
            )

        self.phjobs = Watcher(
            kube,
            PHJOBS,
            on_event=self._on_phjob,
            on_relist=self._on_phjob_list,
            timeout_seconds=settings.controller_watch_timeout_seconds,
            backoff=backoff(),
            metrics=metrics,
        )
        self.pods = Watcher(
            kube,
            PODS,
            on_event=self._on_pod,
            on_relist=self._on_pod_list,
            timeout_seconds=settings.controller_watch_timeout_seconds,
            backoff=backoff(),
            metrics=metrics,
            label_selector=POD_SELECTOR,
        )

    async def run(self) -> NoReturn:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.queue.run(), name="queue")
            await asyncio.sleep(0)  # the queue's task group exists before any submit
            group.create_task(self.phjobs.run(), name="watch phjobs")
            group.create_task(self.pods.run(), name="watch pods")
            group.create_task(self._resync(), name="resync")
        raise AssertionError("the controller's tasks never return")

    async def _reconcile(self, name: str) -> None:
        started = time.perf_counter()
        try:
            status = await self.reconciler.reconcile_name(name)
        except Exception:
            self.metrics.reconciles.labels("error").inc()
            raise
        finally:
            self.metrics.reconcile_seconds.observe(time.perf_counter() - started)
        self.metrics.reconciles.labels("ok").inc()
        if status is None or status.finished:
            self._unfinished.discard(name)

    # Watch callbacks: cheap and synchronous, they only say which PhJob to look at.

    def _on_phjob(self, kind: str, obj: JsonObject) -> None:
        name = _name(obj)
        if name is None:
            return
        if kind == "DELETED" or _finished(obj):
            self._unfinished.discard(name)  # its pod goes with it (owner reference)
            return
        self._unfinished.add(name)
        self.queue.submit(name)

    def _on_phjob_list(self, items: list[JsonObject]) -> None:
        listed = {name for item in items if (name := _name(item)) and not _finished(item)}
        self._unfinished = listed
        for name in sorted(listed):
            self.queue.submit(name)

    def _on_pod(self, kind: str, obj: JsonObject) -> None:
        owner = owner_of(obj)
        if owner is not None and owner in self._unfinished:
            self.queue.submit(owner)

    def _on_pod_list(self, items: list[JsonObject]) -> None:
        # Pods deleted while the watch was down are in no list: look at every running job.
        owners = {owner for item in items if (owner := owner_of(item))}
        for name in sorted(self._unfinished | (owners & self._unfinished)):
            self.queue.submit(name)

    async def _resync(self) -> NoReturn:
        while True:
            await asyncio.sleep(self._settings.controller_resync_seconds)
            try:
                listing = await self._kube.list(PHJOBS)
            except Exception as err:  # the next period tries again; the watches still run
                log.warning("resync failed: %s", err)
                continue
            self._on_phjob_list(list(listing.get("items") or []))


async def run_elected(
    *,
    kube: Kube,
    settings: ControllerSettings,
    script: str,
    metrics: ControllerMetrics,
    elector: LeaderElector | None = None,
) -> NoReturn:
    """Wait for the lease, then act until it is lost (``LeadershipLost``) or cancelled."""
    elector = elector or LeaderElector(
        kube,
        name=settings.controller_lease_name,
        identity=settings.controller_identity,
        lease_seconds=settings.controller_lease_seconds,
        renew_seconds=settings.controller_lease_renew_seconds,
        metrics=metrics,
    )
    async with asyncio.TaskGroup() as group:
        group.create_task(elector.run(), name="lease")
        await elector.leading.wait()
        controller = Controller(kube=kube, settings=settings, script=script, metrics=metrics)
        group.create_task(controller.run(), name="controller")
    raise AssertionError("the elected controller's tasks never return")
