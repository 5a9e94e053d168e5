"""``/healthz`` (the process answers), ``/readyz`` (S3 and Redis answer) and ``/metrics``.

Readiness checks the backends every request needs, each with a short timeout and all at
once, so a probe never hangs on a dead backend; the body says which one failed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from artifacts_api.errors import classify
from artifacts_api.services import METRICS, SERVICES

__all__ = ["healthz", "metrics", "readyz"]

READY_TIMEOUT = 3.0


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _check(probe: Any) -> str:
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            await probe
    except Exception as err:
        return f"unavailable: {classify(err).message}"
    return "ok"


async def readyz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    s3, redis = await asyncio.gather(
        _check(services.s3.head_bucket(Bucket=services.bucket)),
        _check(services.queue.ping()),
    )
    checks = {"s3": s3, "redis": redis}
    ready = all(result == "ok" for result in checks.values())
    return web.json_response(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
    )


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
