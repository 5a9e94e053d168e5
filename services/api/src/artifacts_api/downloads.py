"""``GET /jobs/<id>/artifacts.zip``: a job's whole artifact folder as one zip, streamed.

The same authorization as GraphQL (a bearer token, or a signed link from ``zipUrl``);
refusals answer with the status and a GraphQL-shaped JSON error before any zip byte is
sent. Each entry carries the file's permission bits from the manifest (``0o777`` at most),
so an unzip that restores modes gives back a job's ``0755`` script as ``0755``. Then
objects are read from S3 one chunk at a time and written through
``ZipStream``, so memory stays flat whether the folder holds one 300 MB file or thousands
of small ones. If S3 fails mid-stream the connection is cut, not finished: a client must
never mistake a truncated archive for a complete one.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from aiohttp import web

from artifacts_api.artifacts import iter_artifact_files
from artifacts_api.errors import NotFound, Unauthenticated, classify
from artifacts_api.identity import Identity
from artifacts_api.jobs import parse_job_id, visible_job
from artifacts_api.services import SERVICES, Services
from artifacts_api.zipstream import ZipStream
from artifacts_shared.layout import UnsafeNameError, job_prefix
from artifacts_shared.s3 import StoredObject

if TYPE_CHECKING:
    from types_aiobotocore_s3.type_defs import GetObjectOutputTypeDef

__all__ = ["artifacts_zip"]

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
DEFAULT_MODE = 0o644
"""An entry's permission bits when the manifest records none (or there is no manifest)."""
FETCH_AHEAD = 8
"""Objects requested before their turn: hides S3's per-request latency for many small
files; each waiting response holds at most aiohttp's read buffer, so memory stays flat."""
_LINK = Identity(name="signed-link", groups=frozenset(), admin=True)
"""A valid signed link was made for a caller allowed to see exactly this job."""


async def _caller(request: web.Request, services: Services, job_id: str) -> Identity:
    signature = request.query.get("signature")
    if signature is None:
        return await services.authenticator.authenticate(request.headers.get("Authorization"))
    if not services.links.valid(job_id, request.query.get("expires", ""), signature):
        raise Unauthenticated("the link has expired or is not valid; ask for a new zipUrl")
    return _LINK


async def _files(
    services: Services, identity: Identity, job_id: str
) -> tuple[AsyncIterator[tuple[str, StoredObject]], dict[str, int]]:
    """The job's files, after every check, and the permission bits its manifest records;
    raises before yielding when there are none."""
    job = await visible_job(services.jobs, identity, job_id)
    try:
        prefix = job_prefix(job.spec.group_name, job.id)
    except UnsafeNameError:
        raise NotFound(f"job {job_id} has no artifacts") from None
    files = iter_artifact_files(services.s3, services.bucket, prefix)
    first = await anext(files, None)
    if first is None:
        raise NotFound(f"job {job_id} has no artifacts")
    manifest = await services.manifests.get(prefix)

    async def all_files() -> AsyncIterator[tuple[str, StoredObject]]:
        yield first
        async for item in files:
            yield item

    return all_files(), manifest.modes if manifest else {}


async def _fetch_ahead(
    services: Services, files: AsyncIterator[tuple[str, StoredObject]]
) -> AsyncIterator[tuple[str, StoredObject, GetObjectOutputTypeDef]]:
    """``files`` with their GET responses, up to ``FETCH_AHEAD`` requests in flight."""
    pending: deque[tuple[str, StoredObject, asyncio.Task[GetObjectOutputTypeDef]]] = deque()

    def request(stored: StoredObject) -> asyncio.Task[GetObjectOutputTypeDef]:
        return asyncio.ensure_future(services.s3.get_object(Bucket=services.bucket, Key=stored.key))

    try:
        async for name, stored in files:
            pending.append((name, stored, request(stored)))
            if len(pending) >= FETCH_AHEAD:
                name, stored, task = pending.popleft()
                yield name, stored, await task
        while pending:
            name, stored, task = pending.popleft()
            yield name, stored, await task
    finally:
        for _, _, task in pending:
            task.cancel()
            if task.done() and not task.cancelled() and task.exception() is None:
                task.result()["Body"].close()


async def artifacts_zip(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    job_id = request.match_info["id"]
    try:
        parse_job_id(job_id)
        identity = await _caller(request, services, job_id)
        files, modes = await _files(services, identity, job_id)
    except Exception as err:
        error = classify(err)
        return web.json_response(error.as_json(), status=error.http_status)

    response = web.StreamResponse(
        headers={
            "Content-Type": "application/zip",
            "Content-Disposition": f'attachment; filename="{job_id}-artifacts.zip"',
            "Cache-Control": "no-store",
        }
    )
    await response.prepare(request)
    archive = ZipStream(response.write)
    try:
        async for name, stored, got in _fetch_ahead(services, files):
            async with got["Body"] as body:
                await archive.add(
                    name,
                    size=got["ContentLength"],
                    modified=stored.last_modified,
                    chunks=functools.partial(body.read, CHUNK),
                    mode=modes.get(name, DEFAULT_MODE),
                )
        await archive.close()
    except Exception as err:
        log.warning("zip of %s cut short: %s", job_id, classify(err).message)
        # Cut the connection: an unfinished chunked body tells the client it is incomplete.
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response
