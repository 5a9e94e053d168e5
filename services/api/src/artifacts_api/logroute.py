"""``GET /jobs/<id>/logs``: a job's log as plain text, whole, tailed or followed.

PrimeHub's ``logEndpoint``, as its SDK and console call it: ``follow=true|false`` and
``tailLines=N`` (the Kubernetes pod-log parameters) with ``Authorization: Bearer <token>``;
other parameters (the console's ``persist``) are ignored. A signed link from
``PhJobLogPage.downloadUrl`` stands in for the token and saves the log as a file
(``download=true``). Access is the job's: another group's job is FORBIDDEN. Refusals are
JSON GraphQL errors, with a top-level ``message`` as PrimeHub's console reads it.

The bytes go out as the job wrote them, as ``text/plain`` that no browser may sniff or run:
a log is data, and a line of HTML in it stays text. Memory stays flat whatever the size:
one chunk at a time, each write waiting until the client has taken the last, so a slow
client slows its own stream only. A followed log sends what is written as it is written
and ends when the job has ended; a client that leaves is noticed within
``IDLE_CHECK_SECONDS`` even while the job is silent, and its stream stops there. At most
``API_LOG_MAX_STREAMS`` logs are served at once (a followed pod log holds a connection to
the API server); beyond that the answer is 503 UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from artifacts_api.errors import (
    ApiError,
    BadUserInput,
    NotFound,
    Unauthenticated,
    Unavailable,
    classify,
)
from artifacts_api.identity import Identity
from artifacts_api.joblogs import locate_log
from artifacts_api.jobs import parse_job_id, visible_job
from artifacts_api.links import LOG
from artifacts_api.logreaders import Chunks, JobLog, LogGone, LogNotStarted
from artifacts_api.services import SERVICES, Services
from artifacts_shared.phjob import PhJob

__all__ = ["LOG_STREAMS", "StreamSlots", "job_log"]

log = logging.getLogger(__name__)

IDLE_CHECK_SECONDS = 1.0
START_POLL_SECONDS = 1.0
"""How often a followed log of a job that has not started yet looks again."""
MAX_TAIL_LINES = 1_000_000_000
_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0", ""})
_LINK = Identity(name="signed-link", groups=frozenset(), admin=True)
"""A valid signed link was made for a caller allowed to see exactly this job."""

_HEADERS = {
    "Content-Type": "text/plain; charset=utf-8",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cache-Control": "no-store",
    # Proxies (nginx ingress) pass a followed log on as it comes instead of buffering it.
    "X-Accel-Buffering": "no",
}


class StreamSlots:
    """How many logs are being served; ``acquire`` refuses one more than ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0

    def acquire(self) -> None:
        if self.open >= self.limit:
            raise Unavailable(
                f"{self.limit} job logs are being served already; try again shortly",
                reason="busy",
            )
        self.open += 1

    def release(self) -> None:
        self.open -= 1


LOG_STREAMS = web.AppKey("log_streams", StreamSlots)


@dataclass(frozen=True, slots=True)
class _Options:
    follow: bool
    tail_lines: int | None
    download: bool


def _flag(query: Mapping[str, str], name: str) -> bool:
    value = query.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise BadUserInput(f"{name} must be true or false, got {value[:40]!r}", field=name)


def _options(query: Mapping[str, str]) -> _Options:
    tail: int | None = None
    raw = query.get("tailLines")
    if raw is not None and raw.strip() != "":
        text = raw.strip()
        if not text.isdigit() or int(text) > MAX_TAIL_LINES:
            raise BadUserInput(
                f"tailLines must be a whole number from 0 to {MAX_TAIL_LINES}, got {text[:40]!r}",
                field="tailLines",
            )
        tail = int(text)
    return _Options(
        follow=_flag(query, "follow"), tail_lines=tail, download=_flag(query, "download")
    )


async def _caller(request: web.Request, services: Services, job_id: str) -> Identity:
    signature = request.query.get("signature")
    if signature is None:
        return await services.authenticator.authenticate(request.headers.get("Authorization"))
    if not services.links.valid(job_id, request.query.get("expires", ""), signature, route=LOG):
        raise Unauthenticated("the link has expired or is not valid; ask for a new downloadUrl")
    return _LINK


def _refusal(error: ApiError) -> web.Response:
    body = {"message": error.message, **error.as_json()}
    headers = {"WWW-Authenticate": "Bearer"} if error.http_status == 401 else None
    return web.json_response(body, status=error.http_status, headers=headers)


async def _open(log_: JobLog, options: _Options, *, finished: bool) -> Chunks:
    return await log_.stream(tail_lines=options.tail_lines, follow=options.follow and not finished)


async def _once_started(services: Services, job: PhJob, options: _Options) -> Chunks:
    """A followed log of a job with no output yet: its log, from when there is one."""
    while True:
        await asyncio.sleep(START_POLL_SECONDS)
        current = await services.jobs.get(job.id)
        if current is None:
            return
        try:
            found = await locate_log(services, current)
        except NotFound:
            return
        if found is None:
            continue
        try:
            chunks = await _open(found, options, finished=current.status.finished)
        except LogNotStarted:
            await found.aclose()
            continue
        except LogGone:
            await found.aclose()
            return
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            await found.aclose()
        return


async def _ticking(chunks: Chunks, every: float) -> Chunks:
    """``chunks``, and ``b""`` whenever ``every`` seconds pass without one: a followed log
    of a silent job still gives its writer a moment to see whether the client is there."""

    async def following() -> bytes | None:
        return await anext(chunks, None)

    pending: asyncio.Task[bytes | None] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.create_task(following())
            done, _ = await asyncio.wait({pending}, timeout=every)
            if not done:
                yield b""
                continue
            chunk = pending.result()
            pending = None
            if chunk is None:
                return
            yield chunk
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pending
        await chunks.aclose()


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def job_log(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    job_id = request.match_info["id"]
    try:
        parse_job_id(job_id)
        options = _options(request.query)
        identity = await _caller(request, services, job_id)
        job = await visible_job(services.jobs, identity, job_id)
        streams = request.app[LOG_STREAMS]
        streams.acquire()
    except Exception as err:
        return _refusal(classify(err))
    try:
        return await _serve(request, services, job, options)
    finally:
        streams.release()


async def _chunks(
    services: Services, job: PhJob, options: _Options
) -> tuple[JobLog | None, Chunks]:
    """The log and its bytes, or the refusal to answer with before any byte is sent."""
    waiting = _once_started(services, job, options) if options.follow else _nothing()
    found = await locate_log(services, job)
    if found is None:
        return None, waiting
    try:
        return found, await _open(found, options, finished=job.status.finished)
    except LogNotStarted:
        return found, waiting
    except LogGone as err:
        await found.aclose()
        raise NotFound(f"job {job.id}: {err}", reason="gone") from None
    except BaseException:
        await found.aclose()
        raise


async def _serve(
    request: web.Request, services: Services, job: PhJob, options: _Options
) -> web.StreamResponse:
    try:
        found, chunks = await _chunks(services, job, options)
    except Exception as err:
        return _refusal(classify(err))
    headers = dict(_HEADERS)
    if found is not None:
        headers["X-Log-Source"] = found.source
    if options.download:
        headers["Content-Disposition"] = f'attachment; filename="{job.id}.log"'
    response = web.StreamResponse(headers=headers)
    try:
        await response.prepare(request)
        # aclosing: leaving the loop early stops the reading now, not when collected.
        async with contextlib.aclosing(_ticking(chunks, IDLE_CHECK_SECONDS)) as ticking:
            async for chunk in ticking:
                if _client_gone(request):
                    return response
                if chunk:
                    await response.write(chunk)
        await response.write_eof()
    except ConnectionError:
        pass  # the client left: nothing to tell anyone
    except Exception as err:
        log.warning("log of %s cut short: %s", job.id, classify(err).message)
        # Cut the connection: an unfinished chunked body tells the client it is incomplete.
        if request.transport is not None:
            request.transport.close()
    finally:
        if found is not None:
            await found.aclose()
    return response


async def _nothing() -> Chunks:
    return
    yield b""  # an async generator that ends at once
