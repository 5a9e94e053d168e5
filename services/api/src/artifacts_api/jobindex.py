"""PhJobs kept in memory, newest first per group, so a page of 20 costs 20 jobs, not all of them.

``phJobs`` (and PrimeHub's ``phJobsConnection``) asks for one page of the jobs of the
caller's groups, filtered by phase or user, after a cursor. ``JobIndex.page`` answers from
per-group lists kept sorted by (creation time, name): it walks only the caller's groups,
merged newest first, from the cursor on, and stops after the page. Both job sources use
it: the Kubernetes one keeps one index fed by a watch, the local one builds one per call.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from artifacts_shared.phjob import PhJob

__all__ = ["JobIndex", "JobPage", "JobQuery", "Position", "position_of"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Position = tuple[datetime, str]
"""Where a job sorts: (creation time, name); pages run from the largest down."""


def position_of(job: PhJob) -> Position:
    return job.metadata.creation_timestamp or _EPOCH, job.id


@dataclass(frozen=True, slots=True)
class JobQuery:
    groups: frozenset[str] | None
    """The groups the caller may see; None for every group (admins)."""
    first: int
    after: Position | None = None
    skip: int = 0
    """Jobs to pass over before the page (page-numbered clients)."""
    group_name: str | None = None
    phase: str | None = None
    user_name: str | None = None
    matches: Callable[[PhJob], bool] | None = None
    """A further check (PrimeHub's ``search``, ``mine`` ...), applied while walking."""


@dataclass(frozen=True, slots=True)
class JobPage:
    jobs: list[PhJob]
    total: int
    """How many jobs match the query over all pages."""
    has_next: bool


def _descending(positions: list[Position], end: int) -> Iterator[Position]:
    for index in range(end - 1, -1, -1):
        yield positions[index]


class JobIndex:
    def __init__(self, jobs: Iterable[PhJob] = ()) -> None:
        self._jobs: dict[str, PhJob] = {}
        self._groups: dict[str, list[Position]] = {}
        for job in jobs:
            self.put(job)

    def __len__(self) -> int:
        return len(self._jobs)

    def get(self, name: str) -> PhJob | None:
        return self._jobs.get(name)

    def put(self, job: PhJob) -> None:
        old = self._jobs.get(job.id)
        if old is not None and (
            old.spec.group_name != job.spec.group_name or position_of(old) != position_of(job)
        ):
            self.remove(job.id)
        if job.id not in self._jobs:
            bisect.insort(self._groups.setdefault(job.spec.group_name, []), position_of(job))
        self._jobs[job.id] = job

    def remove(self, name: str) -> None:
        job = self._jobs.pop(name, None)
        if job is None:
            return
        positions = self._groups[job.spec.group_name]
        index = bisect.bisect_left(positions, position_of(job))
        if index < len(positions) and positions[index] == position_of(job):
            del positions[index]
        if not positions:
            del self._groups[job.spec.group_name]

    def _newest_first(self, groups: Iterable[str], after: Position | None) -> Iterator[PhJob]:
        runs = []
        for group in groups:
            positions = self._groups.get(group)
            if not positions:
                continue
            end = len(positions) if after is None else bisect.bisect_left(positions, after)
            runs.append(_descending(positions, end))
        for _, name in heapq.merge(*runs, reverse=True):
            yield self._jobs[name]

    def page(self, query: JobQuery) -> JobPage:
        groups: Iterable[str] = self._groups if query.groups is None else query.groups
        if query.group_name is not None:
            groups = [query.group_name] if query.group_name in groups else []
        groups = list(groups)

        def matches(job: PhJob) -> bool:
            return (
                (query.phase is None or job.status.phase.value == query.phase)
                and (query.user_name is None or job.spec.user_name == query.user_name)
                and (query.matches is None or query.matches(job))
            )

        if query.phase is None and query.user_name is None and query.matches is None:
            total = sum(len(self._groups.get(group, ())) for group in groups)
        else:
            total = sum(1 for job in self._newest_first(groups, None) if matches(job))
        wanted = (job for job in self._newest_first(groups, query.after) if matches(job))
        window = list(itertools.islice(wanted, query.skip, query.skip + query.first + 1))
        return JobPage(jobs=window[: query.first], total=total, has_next=len(window) > query.first)
