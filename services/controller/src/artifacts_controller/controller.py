"""The Kubernetes controller: watches feed a per-PhJob queue that reconciles.

Two watchers (PhJobs, and the job pods) only say *which* PhJob to look at; the queue runs
``Reconciler.reconcile_name`` on the ``KubeRuntime`` for it, one pass at a time per PhJob.
A periodic resync lists every PhJob again, so a missed event or a stuck watch delays a job
by at most one period. A PhJob being deleted that our finalizer holds (``orphans.py``) is
followed like an unfinished one, pod events included, until a pass lets it go; a finished
one not yet held gets one pass to be held.
``run_elected`` puts all of it behind the Lease: a follower only waits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import NoReturn

from pydantic import ValidationError

from artifacts_controller.expiry_feed import ExpiryFeed
from artifacts_controller.kube import PHJOBS, PODS, JsonObject, Kube
from artifacts_controller.kube_runtime import KubeRuntime
from artifacts_controller.leader import LeaderElector
from artifacts_controller.metrics import ControllerMetrics
from artifacts_controller.orphans import FINALIZER, OrphanGrace
from artifacts_controller.pods import MANAGED_BY, owner_of
from artifacts_controller.queueing import Backoff
from artifacts_controller.reconcile import Reconciler, job_queue
from artifacts_controller.settings import ControllerSettings
from artifacts_controller.watching import Watcher
from artifacts_shared.input_holds import InputHolds
from artifacts_shared.phjob import FINISHED_PHASES, PhJob
from artifacts_shared.s3 import S3Client

__all__ = ["Controller", "run_elected"]

log = logging.getLogger(__name__)

POD_SELECTOR = f"app.kubernetes.io/managed-by={MANAGED_BY}"

_Trigger = tuple[int | None, str | None]
"""Why a pass was asked for: (0 PhJob | 1 pod | None forced, the object's resourceVersion)."""


def _name(obj: JsonObject) -> str | None:
    name = (obj.get("metadata") or {}).get("name")
    return str(name) if name else None


def _finished(obj: JsonObject) -> bool:
    return (obj.get("status") or {}).get("phase") in FINISHED_PHASES


def _held(obj: JsonObject) -> bool:
    return FINALIZER in ((obj.get("metadata") or {}).get("finalizers") or [])


def _being_deleted(obj: JsonObject) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


class Controller:
    def __init__(
        self,
        *,
        kube: Kube,
        settings: ControllerSettings,
        script: str,
        metrics: ControllerMetrics,
        s3: S3Client,
        expiry_feed: ExpiryFeed,
        input_holds: InputHolds,
    ) -> None:
        self._kube = kube
        self._settings = settings
        self.metrics = metrics
        runtime = KubeRuntime(kube=kube, settings=settings, script=script, metrics=metrics, s3=s3)
        self._orphans = OrphanGrace.for_settings(settings, s3=s3, expiry_feed=expiry_feed)
        self.reconciler = Reconciler(
            runtime,
            metrics=metrics,
            expiry_feed=expiry_feed,
            orphans=self._orphans,
            input_holds=input_holds,
        )
        self.queue = job_queue(self._reconcile, settings=settings, metrics=metrics)
        self._unfinished: set[str] = set()
        self._deleting: set[str] = set()
        """Being deleted, held by our finalizer: followed until a pass lets them go."""
        # The versions each PhJob and its pod had after our last pass: an event that carries
        # one of them is our own write (or read) coming back, and needs no pass.
        self._versions: dict[str, tuple[str | None, str | None]] = {}
        # The version our finalizer's patch left, before the pass wrote the status.
        self._held_versions: dict[str, str] = {}
        self._triggers: dict[str, list[_Trigger]] = {}
        self._pods_listed = False
        # Unfinished PhJobs deleted with input holds: released by the next pass over them.
        self._deleted: dict[str, PhJob] = {}

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
        async with self.queue, asyncio.TaskGroup() as group:
            group.create_task(self.phjobs.run(), name="watch phjobs")
            group.create_task(self.pods.run(), name="watch pods")
            group.create_task(self._resync(), name="resync")
        raise AssertionError("the controller's tasks never return")

    async def _reconcile(self, name: str) -> None:
        deleted = self._deleted.pop(name, None)
        if deleted is not None:
            await self.reconciler.release_inputs(deleted)  # logs its own failure
        triggers = self._triggers.pop(name, [])
        if all(self._known(name, trigger) for trigger in triggers):
            # Nothing new: either our own writes coming back (the last pass left these
            # versions), or triggers an earlier pass already took (it read after them).
            return
        started = time.perf_counter()
        try:
            outcome = await self.reconciler.reconcile_name(name)
        except Exception:
            self._versions.pop(name, None)
            self._held_versions.pop(name, None)
            self._triggers.setdefault(name, []).append((None, None))  # the retry must run
            self.metrics.reconciles.labels("error").inc()
            raise
        finally:
            self.metrics.reconcile_seconds.observe(time.perf_counter() - started)
        self.metrics.reconciles.labels("ok").inc()
        if outcome is None:
            self._deleting.discard(name)
        if outcome is None or outcome.status.finished:
            self._unfinished.discard(name)
            self._versions.pop(name, None)
            self._held_versions.pop(name, None)
        else:
            self._versions[name] = (outcome.job_version, outcome.run_version)
            if outcome.held_version is not None:
                self._held_versions[name] = outcome.held_version

    def _known(self, name: str, trigger: _Trigger) -> bool:
        which, version = trigger
        seen = self._versions.get(name)
        return (
            which is not None
            and version is not None
            and seen is not None
            and (
                seen[which] == version or (which == 0 and self._held_versions.get(name) == version)
            )
        )

    def _trigger(self, name: str, which: int | None, obj: JsonObject | None) -> None:
        """Ask for a pass over ``name`` because of ``obj`` (``which``: 0 the PhJob, 1 its pod;
        None forces the pass). Whether it is needed is decided when the pass is due, after
        any pass in flight has recorded the versions it left."""
        version = (obj.get("metadata") or {}).get("resourceVersion") if obj else None
        self._triggers.setdefault(name, []).append((which, version))
        self.queue.submit(name)

    # Watch callbacks: cheap and synchronous, they only say which PhJob to look at.

    def _wants_hold(self, obj: JsonObject) -> bool:
        return self._orphans.enabled and not _being_deleted(obj) and not _held(obj)

    def _wanted(self, obj: JsonObject) -> bool:
        """Whether ``obj`` needs passes: unfinished, deleted while held, or not held yet."""
        return not _finished(obj) or (_being_deleted(obj) and _held(obj)) or self._wants_hold(obj)

    def _on_phjob(self, kind: str, obj: JsonObject) -> None:
        name = _name(obj)
        if name is None:
            return
        if (
            kind == "DELETED"
            and not _finished(obj)
            and (obj.get("spec") or {}).get("inputArtifacts")
        ):
            # Deleted before it finished: it will never read its inputs. A pass releases
            # them (the callback cannot wait on Redis); it finds no job and does no more.
            try:
                self._deleted[name] = PhJob.from_k8s(obj)
            except ValidationError:
                pass  # not a PhJob we could have started: it holds nothing of ours
            else:
                self.queue.submit(name)
        if kind == "DELETED" or not self._wanted(obj):
            self._unfinished.discard(name)  # its pod goes with it (owner reference)
            self._deleting.discard(name)
            self._versions.pop(name, None)
            self._held_versions.pop(name, None)
            return
        if _being_deleted(obj):
            self._deleting.add(name)
        elif not _finished(obj):
            self._unfinished.add(name)
        self._trigger(name, 0, obj)

    def _on_phjob_list(self, items: list[JsonObject], *, force: bool = False) -> None:
        wanted = {name: item for item in items if (name := _name(item)) and self._wanted(item)}
        self._unfinished = {name for name, item in wanted.items() if not _finished(item)}
        self._deleting = {name for name, item in wanted.items() if _being_deleted(item)}
        for name, item in sorted(wanted.items()):
            self._trigger(name, None if force else 0, item)

    def _on_pod(self, kind: str, obj: JsonObject) -> None:
        owner = owner_of(obj)
        if owner is None or (owner not in self._unfinished and owner not in self._deleting):
            return
        self._trigger(owner, None if kind == "DELETED" else 1, obj)

    def _on_pod_list(self, items: list[JsonObject]) -> None:
        if not self._pods_listed:
            self._pods_listed = True  # the first PhJob list brings every job to a pass anyway
            return
        # Pods deleted while the watch was down are in no list: look at every running job.
        for name in sorted(self._unfinished | self._deleting):
            self._trigger(name, None, None)

    async def _resync(self) -> NoReturn:
        while True:
            await asyncio.sleep(self._settings.controller_resync_seconds)
            try:
                listing = await self._kube.list(PHJOBS)
            except Exception as err:  # the next period tries again; the watches still run
                log.warning("resync failed: %s", err)
                continue
            # Forced: the resync is for what no event announced, whatever the versions say.
            self._on_phjob_list(list(listing.get("items") or []), force=True)


async def run_elected(
    *,
    kube: Kube,
    settings: ControllerSettings,
    script: str,
    metrics: ControllerMetrics,
    s3: S3Client,
    expiry_feed: ExpiryFeed,
    input_holds: InputHolds,
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
        controller = Controller(
            kube=kube,
            settings=settings,
            script=script,
            metrics=metrics,
            s3=s3,
            expiry_feed=expiry_feed,
            input_holds=input_holds,
        )
        group.create_task(controller.run(), name="controller")
    raise AssertionError("the elected controller's tasks never return")
