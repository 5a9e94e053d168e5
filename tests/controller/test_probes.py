"""/healthz and /metrics answer over HTTP."""

from __future__ import annotations

import asyncio

import aiohttp

from artifacts_controller.metrics import ControllerMetrics
from artifacts_controller.probes import make_probe_app, serve_probes


async def test_healthz_and_metrics_answer_on_the_probe_port() -> None:
    metrics = ControllerMetrics()
    metrics.pods_created.inc(3)
    leading = False
    app = make_probe_app(metrics=metrics, leading=lambda: leading)
    bound: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(serve_probes(app, host="127.0.0.1", port=0, bound=bound))
    try:
        port = await asyncio.wait_for(bound, 5)
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            async with http.get("/healthz") as response:
                assert response.status == 200
                assert await response.json() == {"status": "ok", "leader": False}
            leading = True
            async with http.get("/healthz") as response:
                assert (await response.json())["leader"] is True
            async with http.get("/metrics") as response:
                assert response.status == 200
                text = await response.text()
        assert "phjob_pods_created_total 3.0" in text
        assert "phjob_reconcile_seconds_bucket" in text
    finally:
        server.cancel()
        await asyncio.gather(server, return_exceptions=True)
