"""An HTTP proxy in front of the S3 server that can hold ``DeleteObjects`` requests.

Lets the first ``allow`` delete requests through, then holds every further one until
``open()`` lets them through or ``close()`` drops them, so a test can freeze a janitor
(in this process or another) exactly "after some batches", then kill it or watch it.
Everything else passes straight through, with the client's ``Host`` header: the server
behind checks signatures, and the client signed the gate's address.
"""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web
from yarl import URL

from support.servers import free_port

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


class DeleteGate:
    def __init__(self, upstream: str, *, allow: int = 0) -> None:
        self._upstream = upstream.rstrip("/")
        self.allow = allow
        self.passed = 0
        """Delete requests answered by the server."""
        self.holding = asyncio.Event()
        """Set once a delete request is being held."""
        self._open = asyncio.Event()
        self._closed = False
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.url = ""

    async def start(self) -> DeleteGate:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._session = aiohttp.ClientSession(auto_decompress=False)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"
        return self

    def open(self) -> None:
        """Let every held and future request through."""
        self._open.set()

    async def wait_for_passed(self, count: int, timeout: float = 30) -> None:
        async with asyncio.timeout(timeout):
            while self.passed < count:
                await asyncio.sleep(0.02)

    async def close(self) -> None:
        """Stop; requests still held are dropped, never forwarded."""
        self._closed = True
        self._open.set()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        is_delete = request.method == "POST" and "delete" in request.query
        if is_delete and not self._open.is_set():
            if self.allow <= 0:
                self.holding.set()
                await self._open.wait()
                if self._closed:  # its sender is gone: it never reaches the server
                    return web.Response(status=503)
            else:
                self.allow -= 1
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        async with self._session.request(
            request.method,
            URL(self._upstream + request.raw_path, encoded=True),
            headers=headers,
            data=await request.read(),
        ) as upstream:
            body = await upstream.read()
            reply = web.Response(
                status=upstream.status,
                body=body,
                headers={k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP},
            )
        if is_delete:
            self.passed += 1
        return reply
