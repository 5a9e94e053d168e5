"""Leader election on a ``coordination.k8s.io`` Lease, so two replicas never both act.

The algorithm is client-go's: every ``renew`` seconds, read the Lease; take it if nobody
holds it or its record has not changed for ``leaseDurationSeconds`` *as measured on our own
clock* (so clock skew between nodes does not matter); renew it if we hold it. Every write
carries the ``resourceVersion`` we read, so of two replicas racing for an expired lease the
API server lets exactly one win (the other gets 409 Conflict).

A leader that cannot renew within ``lease - renew`` seconds stops acting before any
follower may take over: ``run()`` raises ``LeadershipLost``, which ends the process's task
group, and Kubernetes restarts the pod as a follower. On a clean stop the leader releases
the lease so a follower takes over at once instead of after a lease duration.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from datetime import UTC, datetime
from typing import Any, NoReturn

import aiohttp

from artifacts_controller.kube import LEASES, JsonObject, Kube, KubeApiError
from artifacts_controller.metrics import ControllerMetrics

__all__ = ["LeaderElector", "LeadershipLost"]

log = logging.getLogger(__name__)

_ERRORS = (KubeApiError, aiohttp.ClientError, asyncio.TimeoutError, OSError)


class LeadershipLost(Exception):
    """This replica could not keep the lease: it must stop acting now."""


def _micro_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        kube: Kube,
        *,
        name: str,
        identity: str,
        lease_seconds: float,
        renew_seconds: float,
        metrics: ControllerMetrics,
    ) -> None:
        self._kube = kube
        self._name = name
        self.identity = identity
        self._lease_seconds = lease_seconds
        self._renew_seconds = renew_seconds
        self._deadline = lease_seconds - renew_seconds
        self._lease_whole_seconds = max(1, math.ceil(lease_seconds))  # the field is an integer
        self._metrics = metrics
        self.leading = asyncio.Event()
        self._renewed_at = 0.0
        self._version: str | None = None
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0

    async def run(self) -> NoReturn:
        try:
            while True:
                won = await self._attempt()
                now = time.monotonic()
                if won:
                    self._renewed_at = now
                    if not self.leading.is_set():
                        log.info("%s leads (lease %s)", self.identity, self._name)
                        self.leading.set()
                        self._metrics.leader.set(1)
                elif self.leading.is_set() and (
                    won is False or now - self._renewed_at >= self._deadline
                ):
                    raise LeadershipLost(f"{self.identity} lost the lease {self._name}")
                await asyncio.sleep(self._renew_seconds)
        finally:
            if self.leading.is_set():
                self.leading.clear()
                self._metrics.leader.set(0)
                await asyncio.shield(self._release())

    async def _attempt(self) -> bool | None:
        """True: we hold the lease now; False: someone else does; None: could not tell."""
        budget = self._deadline - (time.monotonic() - self._renewed_at)
        if not self.leading.is_set():
            budget = self._lease_seconds
        try:
            async with asyncio.timeout(max(budget, 0.05)):
                return await self._acquire_or_renew()
        except _ERRORS as err:
            log.warning("lease %s: %s", self._name, err)
            return None

    async def _acquire_or_renew(self) -> bool:
        now = datetime.now(UTC)
        lease = await self._kube.get(LEASES, self._name)
        if lease is None:
            return await self._create(now)
        spec: JsonObject = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        record = (holder, spec.get("renewTime"), spec.get("acquireTime"))
        if record != self._observed:
            self._observed, self._observed_at = record, time.monotonic()
        if holder and holder != self.identity:
            duration = float(spec.get("leaseDurationSeconds") or self._lease_seconds)
            if time.monotonic() - self._observed_at < duration:
                return False
        patch: JsonObject = {
            "metadata": {"resourceVersion": (lease.get("metadata") or {}).get("resourceVersion")},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self._lease_whole_seconds,
                "renewTime": _micro_time(now),
            },
        }
        if holder != self.identity:
            patch["spec"]["acquireTime"] = _micro_time(now)
            patch["spec"]["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        try:
            updated = await self._kube.patch(LEASES, self._name, patch)
        except KubeApiError as err:
            if err.conflict:
                return False  # another replica wrote first
            raise
        self._version = (updated.get("metadata") or {}).get("resourceVersion")
        return True

    async def _create(self, now: datetime) -> bool:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self._name},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self._lease_whole_seconds,
                "acquireTime": _micro_time(now),
                "renewTime": _micro_time(now),
                "leaseTransitions": 0,
            },
        }
        try:
            created = await self._kube.create(LEASES, body)
        except KubeApiError as err:
            if err.conflict:
                return False
            raise
        self._version = (created.get("metadata") or {}).get("resourceVersion")
        return True

    async def _release(self) -> None:
        """Give the lease up if it is still ours, so a follower need not wait for it to expire."""
        if self._version is None:
            return
        patch = {
            "metadata": {"resourceVersion": self._version},
            "spec": {"holderIdentity": None, "renewTime": None, "acquireTime": None},
        }
        try:
            async with asyncio.timeout(5):
                await self._kube.patch(LEASES, self._name, patch)
            log.info("%s released the lease %s", self.identity, self._name)
        except _ERRORS as err:  # it expires on its own
            log.info("%s could not release the lease %s: %s", self.identity, self._name, err)
