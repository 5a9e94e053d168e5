"""``/healthz`` and ``/metrics`` on a small aiohttp server, for the kubelet and Prometheus.

Liveness is simple on purpose: the root task group ends the process when any of its tasks
dies, so a process that still answers is one whose loops still run. The answer also says
whether this replica leads, which helps an operator looking at two replicas.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import NoReturn

from aiohttp import web

from artifacts_controller.metrics import ControllerMetrics

__all__ = ["make_probe_app", "serve_probes"]

METRICS_KEY = web.AppKey("metrics", ControllerMetrics)
LEADING_KEY: web.AppKey[Callable[[], bool]] = web.AppKey("leading")


async def _healthz(request: web.Request) -> web.Response:
    leading = request.app[LEADING_KEY]()
    return web.json_response({"status": "ok", "leader": leading})


async def _metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS_KEY].render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})


def make_probe_app(*, metrics: ControllerMetrics, leading: Callable[[], bool]) -> web.Application:
    app = web.Application()
    app[METRICS_KEY] = metrics
    app[LEADING_KEY] = leading
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
    return app


async def serve_probes(
    app: web.Application, *, host: str, port: int, bound: asyncio.Future[int] | None = None
) -> NoReturn:
    """Serve ``app`` until cancelled; ``bound`` gets the port (useful with port 0)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        if bound is not None:
            address = runner.addresses[0] if runner.addresses else (host, port)
            bound.set_result(int(address[1]))
        await asyncio.Future()
        raise AssertionError("unreachable")
    finally:
        await runner.cleanup()
