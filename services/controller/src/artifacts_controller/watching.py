"""List-then-watch one resource forever, the way client-go's reflector does.

A full list gives every object and a resourceVersion; a watch from that version gives every
change after it. When the stream ends (the server's timeout, a dropped connection) the
watch resumes from the last version seen, so no change is lost; when the server answers
``410 Gone`` (that version was compacted away) the loop lists again. API and network
errors are retried after a bounded exponential backoff. Handlers are plain callbacks that
only enqueue work: a slow reconcile never stalls the stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import NoReturn

import aiohttp

from artifacts_controller.kube import JsonObject, Kube, KubeApiError, Resource
from artifacts_controller.metrics import ControllerMetrics
from artifacts_controller.queueing import Backoff

__all__ = ["Watcher"]

log = logging.getLogger(__name__)

_TRANSIENT = (KubeApiError, aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError)


class Watcher:
    def __init__(
        self,
        kube: Kube,
        resource: Resource,
        *,
        on_event: Callable[[str, JsonObject], None],
        on_relist: Callable[[list[JsonObject]], None],
        timeout_seconds: int,
        backoff: Backoff,
        metrics: ControllerMetrics,
        label_selector: str | None = None,
    ) -> None:
        self._kube = kube
        self._resource = resource
        self._on_event = on_event
        self._on_relist = on_relist
        self._timeout = timeout_seconds
        self._backoff = backoff
        self._metrics = metrics
        self._selector = label_selector
        self.lists = 0
        self.synced = asyncio.Event()
        """Set once the first list has been handed over."""

    async def run(self) -> NoReturn:
        version: str | None = None
        must_list = True
        plural = self._resource.plural
        while True:
            try:
                if must_list:
                    version = await self._relist()
                    must_list = False
                opened = time.monotonic()
                delivered = 0
                async for event in self._kube.watch(
                    self._resource,
                    resource_version=version,
                    timeout_seconds=self._timeout,
                    label_selector=self._selector,
                ):
                    obj = event.get("object") or {}
                    version = (obj.get("metadata") or {}).get("resourceVersion") or version
                    if event.get("type") != "BOOKMARK":
                        self._on_event(str(event.get("type")), obj)
                        delivered += 1
                    self._backoff.reset()
                self._metrics.watch_restarts.labels(plural, "ended").inc()
                if not delivered and time.monotonic() - opened < 1.0:
                    # A server that ends streams at once must not turn us into a busy loop.
                    await asyncio.sleep(self._backoff.next_delay())
            except KubeApiError as err:
                if err.gone:
                    log.info("watch on %s: version %s expired; listing again", plural, version)
                    self._metrics.watch_restarts.labels(plural, "gone").inc()
                    must_list = True
                    continue
                await self._pause(err)
            except _TRANSIENT as err:
                await self._pause(err)

    async def _relist(self) -> str | None:
        listing = await self._kube.list(self._resource, label_selector=self._selector)
        self.lists += 1
        self._on_relist(list(listing.get("items") or []))
        self.synced.set()
        self._backoff.reset()
        version = (listing.get("metadata") or {}).get("resourceVersion")
        return str(version) if version else None

    async def _pause(self, err: Exception) -> None:
        delay = self._backoff.next_delay()
        log.warning(
            "watch on %s failed (%s); retrying in %.1f s", self._resource.plural, err, delay
        )
        self._metrics.watch_restarts.labels(self._resource.plural, "error").inc()
        await asyncio.sleep(delay)
