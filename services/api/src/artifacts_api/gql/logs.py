"""Bindables of a job's log: ``PhJob.logEndpoint``, ``PhJob.logs`` and ``PhJobLogPage``.

``logEndpoint`` is an absolute URL, as PrimeHub's SDK passes it straight to its HTTP client:
``API_PUBLIC_URL`` when set, else the address the request came in on. ``logs`` reads the
log where ``joblogs.locate_log`` says it is, a page at a time (``loglines``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ariadne import ObjectType

from artifacts_api.errors import BadUserInput, NotFound
from artifacts_api.gql.context import Info
from artifacts_api.joblogs import locate_log
from artifacts_api.logreaders import LogGone, LogNotStarted, LogSource
from artifacts_shared.phjob import PhJob

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "LogPage", "bindables"]

DEFAULT_LIMIT = 1000
MAX_LIMIT = 5000

phjob = ObjectType("PhJob")


@dataclass(frozen=True, slots=True)
class LogPage:
    """What ``PhJobLogPage`` resolves from; field names are its snake_case."""

    offset: int
    lines: list[str]
    total_lines: int
    live: bool
    source: LogSource | None
    download_url: str

    @property
    def has_more(self) -> bool:
        return self.offset + len(self.lines) < self.total_lines


@phjob.field("logEndpoint")
def resolve_log_endpoint(job: PhJob, info: Info) -> str:
    context = info.context
    base = context.services.settings.api_public_url or str(context.request.url.origin())
    return f"{base}/jobs/{job.id}/logs"


@phjob.field("logs")
async def resolve_logs(
    job: PhJob, info: Info, *, offset: int | None = None, limit: int = DEFAULT_LIMIT
) -> LogPage:
    if offset is not None and offset < 0:
        raise BadUserInput(f"offset must be 0 or more, got {offset}", field="offset")
    if not 0 <= limit <= MAX_LIMIT:
        raise BadUserInput(f"limit must be from 0 to {MAX_LIMIT}, got {limit}", field="limit")
    services = info.context.services
    empty = LogPage(
        offset=offset or 0,
        lines=[],
        total_lines=0,
        live=not job.status.finished,
        source=None,
        download_url=services.links.log_url(job.id),
    )
    log = await locate_log(services, job)
    if log is None:
        return empty
    try:
        page = await log.page(offset=offset, limit=limit)
    except LogNotStarted:
        return empty
    except LogGone as err:
        raise NotFound(f"job {job.id}: {err}", reason="gone") from None
    finally:
        await log.aclose()
    return LogPage(
        offset=page.offset,
        lines=page.lines,
        total_lines=page.total,
        live=not job.status.finished,
        source=log.source,
        download_url=empty.download_url,
    )


bindables = [phjob]
