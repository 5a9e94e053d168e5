"""Bindables of ``Query``: one job, the pages of jobs a caller may see, cleanup runs, the caller."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ariadne import QueryType

from artifacts_api.errors import NotFound
from artifacts_api.gql.connection import (
    DEFAULT_PAGE,
    Connection,
    id_cursor_page,
    index_page,
    numbered_page,
    page_size,
    phjobs_position,
)
from artifacts_api.gql.context import Info
from artifacts_api.identity import Identity
from artifacts_api.jobs import visible_job
from artifacts_api.search import JobOrder, JobSearch, find_jobs
from artifacts_shared.cleanup_queue import CleanupState, CleanupStatus, cleanup_status
from artifacts_shared.phjob import PhJob

__all__ = ["bindables"]

query = QueryType()


@query.field("phJob")
async def resolve_ph_job(_: None, info: Info, *, where: dict[str, Any]) -> PhJob:
    context = info.context
    return await visible_job(context.services.jobs, context.identity, where["id"])


@query.field("phJobs")
async def resolve_ph_jobs(
    _: None,
    info: Info,
    *,
    where: dict[str, Any] | None = None,
    first: int | None = None,
    after: str | None = None,
) -> Connection:
    """One page of the job index, newest first: it costs the page, not every job."""
    context = info.context
    search = JobSearch.from_where(where, context.identity)
    wanted = search.query(
        context.identity,
        first=page_size(first, DEFAULT_PAGE),
        after=phjobs_position(after) if after is not None else None,
    )
    return index_page(await context.services.jobs.page(wanted))


@query.field("phJobsConnection")
async def resolve_ph_jobs_connection(
    _: None,
    info: Info,
    *,
    where: dict[str, Any] | None = None,
    page: int | None = None,
    order_by: dict[str, Any] | None = None,
    before: str | None = None,
    after: str | None = None,
    first: int | None = None,
    last: int | None = None,
) -> Connection:
    # PrimeHub's orders by any field and its id cursors need the whole matching list: it is
    # read from the same index, in memory, up to search.SCAN_LIMIT jobs.
    context = info.context
    search = JobSearch.from_where(where, context.identity)
    order = JobOrder.from_order_by(order_by)
    jobs = await find_jobs(context.services.jobs, context.identity, search, order)
    if page is not None:
        return numbered_page(jobs, page=page, first=first)
    return id_cursor_page(jobs, after=after, before=before, first=first, last=last)


@query.field("phJobArtifactCleanup")
async def resolve_ph_job_artifact_cleanup(_: None, info: Info, *, id: str) -> CleanupStatus:
    context = info.context
    context.identity.require_admin("read cleanup runs")
    status = await cleanup_status(context.services.queue, id)
    if status.state is CleanupState.NOT_FOUND:
        raise NotFound(f"there is no cleanup run {id[:80]!r} (results are kept for a while only)")
    return status


@dataclass(frozen=True, slots=True)
class Viewer:
    name: str
    groups: list[str]
    admin: bool


@query.field("viewer")
def resolve_viewer(_: None, info: Info) -> Viewer:
    identity = info.context.identity
    return Viewer(name=identity.name, groups=sorted(identity.groups), admin=identity.admin)


@query.field("me")
def resolve_me(_: None, info: Info) -> Identity:
    return info.context.identity


bindables = [query]
