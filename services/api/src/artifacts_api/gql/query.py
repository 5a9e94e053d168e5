"""Bindables of ``Query``: one job, and the page of jobs a caller may see."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ariadne import QueryType

from artifacts_api.errors import BadUserInput, NotFound
from artifacts_api.gql.context import Info
from artifacts_api.jobindex import JobQuery, Position, position_of
from artifacts_api.jobs import visible_job
from artifacts_shared.cleanup_queue import CleanupState, CleanupStatus, cleanup_status
from artifacts_shared.phjob import PhJob

__all__ = ["bindables"]

query = QueryType()

DEFAULT_PAGE = 50
MAX_PAGE = 200


@query.field("phJob")
async def resolve_ph_job(_: None, info: Info, *, where: dict[str, Any]) -> PhJob:
    context = info.context
    return await visible_job(context.services.jobs, context.identity, where["id"])


@dataclass(frozen=True, slots=True)
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@dataclass(frozen=True, slots=True)
class Edge:
    cursor: str
    node: PhJob


@dataclass(frozen=True, slots=True)
class Connection:
    edges: list[Edge]
    page_info: PageInfo
    total_count: int

    @property
    def nodes(self) -> list[PhJob]:
        return [edge.node for edge in self.edges]


def _cursor(job: PhJob) -> str:
    created, job_id = position_of(job)
    raw = f"{created.isoformat()}|{job_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _position(cursor: str) -> Position:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, job_id = raw.split("|")
        moment = datetime.fromisoformat(created)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadUserInput(f"{cursor[:80]!r} is not a cursor from phJobs", field="after") from None
    if moment.tzinfo is None:
        raise BadUserInput(f"{cursor[:80]!r} is not a cursor from phJobs", field="after")
    return moment, job_id


@query.field("phJobs")
async def resolve_ph_jobs(
    _: None,
    info: Info,
    *,
    where: dict[str, Any] | None = None,
    first: int | None = None,
    after: str | None = None,
) -> Connection:
    context = info.context
    size = DEFAULT_PAGE if first is None else first
    if not 0 <= size <= MAX_PAGE:
        raise BadUserInput(f"first must be from 0 to {MAX_PAGE}, got {size}", field="first")
    where = where or {}
    group = where.get("group_name")
    if group is not None:
        context.identity.require_access(group, "the jobs asked for")
    identity = context.identity
    page = await context.services.jobs.page(
        JobQuery(
            groups=None if identity.admin else identity.groups,
            first=size,
            after=_position(after) if after is not None else None,
            group_name=group,
            phase=where.get("phase"),
            user_name=where.get("user_name"),
        )
    )
    edges = [Edge(cursor=_cursor(job), node=job) for job in page.jobs]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.has_next, end_cursor=edges[-1].cursor if edges else None
        ),
        total_count=page.total,
    )


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


bindables = [query]
