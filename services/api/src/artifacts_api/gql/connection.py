"""``PhJobConnection`` pages: ``phJobs``' (opaque cursors) and PrimeHub's ``phJobsConnection``.

``phJobs`` pages come from the job index itself (``index_page``); its cursors encode a job's
place in the newest-first order, so a page boundary survives jobs being added. PrimeHub's
pages are cut from a list ``search.find_jobs`` filtered and ordered: its cursors are job
ids and its numbered pages hold ``ITEMS_PER_PAGE`` jobs, a page past the last being empty
(its SDK lists pages until one is).
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass
from datetime import datetime

from artifacts_api.errors import BadUserInput
from artifacts_api.jobindex import JobPage, Position, position_of
from artifacts_shared.phjob import PhJob

__all__ = [
    "DEFAULT_PAGE",
    "ITEMS_PER_PAGE",
    "MAX_PAGE",
    "Connection",
    "PageInfo",
    "id_cursor_page",
    "index_page",
    "numbered_page",
    "page_size",
    "phjobs_position",
]

DEFAULT_PAGE = 50
MAX_PAGE = 200
ITEMS_PER_PAGE = 10
"""PrimeHub's page size (graphql-server ``resolvers/utils.ts``)."""


@dataclass(frozen=True, slots=True)
class PageInfo:
    has_next_page: bool
    end_cursor: str | None
    has_previous_page: bool = False
    start_cursor: str | None = None
    total_page: int | None = None
    current_page: int | None = None


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


def page_size(value: int | None, default: int, name: str = "first") -> int:
    size = default if value is None else value
    if not 0 <= size <= MAX_PAGE:
        raise BadUserInput(f"{name} must be from 0 to {MAX_PAGE}, got {size}", field=name)
    return size


def _cursor(job: PhJob) -> str:
    created, job_id = position_of(job)
    raw = f"{created.isoformat()}|{job_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def phjobs_position(cursor: str) -> Position:
    """Where a ``phJobs`` cursor points in the newest-first order."""
    refused = BadUserInput(f"{cursor[:80]!r} is not a cursor from phJobs", field="after")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, job_id = raw.split("|")
        moment = datetime.fromisoformat(created)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise refused from None
    if moment.tzinfo is None:
        raise refused
    return moment, job_id


def index_page(page: JobPage) -> Connection:
    """``phJobs``: a page the job index cut, with cursors into its order."""
    edges = [Edge(cursor=_cursor(job), node=job) for job in page.jobs]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.has_next,
            end_cursor=edges[-1].cursor if edges else None,
            start_cursor=edges[0].cursor if edges else None,
        ),
        total_count=page.total,
    )


def _page(
    jobs: list[PhJob],
    start: int,
    end: int,
    *,
    by_id: bool,
    total_page: int | None = None,
    current_page: int | None = None,
) -> Connection:
    """``jobs[start:end]`` as a connection; cursors are job ids (PrimeHub's) or ``phJobs``'."""
    edges = [Edge(cursor=job.id if by_id else _cursor(job), node=job) for job in jobs[start:end]]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=end < len(jobs),
            end_cursor=edges[-1].cursor if edges else None,
            has_previous_page=start > 0,
            start_cursor=edges[0].cursor if edges else None,
            total_page=total_page,
            current_page=current_page,
        ),
        total_count=len(jobs),
    )


def numbered_page(jobs: list[PhJob], *, page: int, first: int | None) -> Connection:
    """PrimeHub's numbered pages: page ``page`` (from 1) of ``first`` jobs (default 10)."""
    if page < 1:
        raise BadUserInput(f"page must be 1 or more, got {page}", field="page")
    size = page_size(first, ITEMS_PER_PAGE)
    start = min((page - 1) * size, len(jobs))
    total_page = max(1, math.ceil(len(jobs) / size)) if size else 1
    return _page(
        jobs,
        start,
        min(start + size, len(jobs)),
        by_id=True,
        total_page=total_page,
        current_page=page,
    )


def id_cursor_page(
    jobs: list[PhJob],
    *,
    after: str | None,
    before: str | None,
    first: int | None,
    last: int | None,
) -> Connection:
    """PrimeHub's cursor paging: job ids as cursors; between ``after`` and ``before``, the
    ``first`` jobs, then the ``last`` of those (PrimeHub's order of the two)."""
    ids: list[str] = [job.id for job in jobs]
    for name, cursor in (("after", after), ("before", before)):
        if cursor is not None and cursor not in ids:
            raise BadUserInput(f"{name}: there is no job {cursor[:80]!r} in this list", field=name)
    start = ids.index(after) + 1 if after is not None else 0
    end = max(start, ids.index(before)) if before is not None else len(jobs)
    if first is not None or last is None:
        # PrimeHub returns every job when no size is given; we stop at phJobs' default.
        end = min(end, start + page_size(first, DEFAULT_PAGE))
    if last is not None:
        start = max(start, end - page_size(last, DEFAULT_PAGE, "last"))
    return _page(jobs, start, end, by_id=True)
