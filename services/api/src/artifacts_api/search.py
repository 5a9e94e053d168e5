"""Which jobs a listing shows, and in which order: ``phJobs`` and PrimeHub's ``phJobsConnection``.

Both listings take the same ``PhJobWhereInput`` and read the job index (``JobSource.page``)
through ``JobSearch.query``: ``phJobs`` one page of it, ``phJobsConnection`` (which orders by
any field) every match, through ``find_jobs``. The caller only ever sees jobs of groups it
may access; filters narrow that further, never widen it.

PrimeHub's filter semantics are kept: ``groupId_in`` empty means every group the caller is
in, ``search`` matches the id or the display name case-insensitively, ``displayName_contains``
case-sensitively, and ``mine`` keeps the caller's own jobs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from artifacts_api.errors import BadUserInput
from artifacts_api.identity import Identity
from artifacts_api.jobindex import JobQuery, Position
from artifacts_api.jobsource import JobSource
from artifacts_shared.phjob import PhJob

__all__ = ["SCAN_LIMIT", "JobOrder", "JobSearch", "find_jobs"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_TEXT = 256
SCAN_LIMIT = 100_000
"""The most jobs ``find_jobs`` orders in memory for one ``phJobsConnection`` call."""

SortKey = Callable[[PhJob], Any]
_ORDER_FIELDS: dict[str, SortKey] = {
    "displayName": lambda job: job.spec.display_name,
    "userName": lambda job: job.spec.user_name or "",
    "groupName": lambda job: job.spec.group_name,
    "phase": lambda job: job.status.phase.value,
    # No job has a schedule here: every one sorts the same, newest first within.
    "schedule": lambda job: "",
}
"""Sort keys by ``PhJobOrderByInput`` field; ``createTime`` is the newest-first order itself."""


def _newest_first_key(job: PhJob) -> tuple[datetime, str]:
    return job.metadata.creation_timestamp or _EPOCH, job.id


@dataclass(frozen=True, slots=True)
class JobOrder:
    """One ``PhJobOrderByInput`` field and its direction; ties stay newest first."""

    field: str = "createTime"
    descending: bool = True

    @classmethod
    def from_order_by(cls, order_by: Mapping[str, Any] | None) -> JobOrder:
        given = {name: value for name, value in (order_by or {}).items() if value is not None}
        if not given:
            return cls()
        if len(given) > 1:
            raise BadUserInput(
                f"orderBy takes one field, got {', '.join(sorted(given))}", field="orderBy"
            )
        ((name, direction),) = given.items()
        camel = _camel(name)
        if direction not in ("asc", "desc"):
            raise BadUserInput(
                f"orderBy.{camel} must be 'asc' or 'desc', got {str(direction)[:20]!r}",
                field="orderBy",
            )
        return cls(field=camel, descending=direction == "desc")

    def apply(self, jobs: list[PhJob]) -> list[PhJob]:
        # Two stable sorts: newest first, then by the field; equal fields keep newest first.
        ordered = sorted(jobs, key=_newest_first_key, reverse=True)
        if self.field == "createTime":
            return ordered if self.descending else ordered[::-1]
        return sorted(ordered, key=_ORDER_FIELDS[self.field], reverse=self.descending)


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part.title() for part in rest)


def _text(where: Mapping[str, Any], name: str, shown: str) -> str | None:
    value = where.get(name)
    if value is None or value == "":
        return None
    if len(value) > _MAX_TEXT:
        raise BadUserInput(f"{shown} must be at most {_MAX_TEXT} characters", field=shown)
    return str(value)


@dataclass(frozen=True, slots=True)
class JobSearch:
    """A ``PhJobWhereInput`` as given (snake_case keys, as Ariadne passes them)."""

    group_name: str | None = None
    phase: str | None = None
    user_name: str | None = None
    job_id: str | None = None
    groups: frozenset[str] = frozenset()
    display_name_contains: str | None = None
    text: str | None = None
    mine: bool = False

    @classmethod
    def from_where(cls, where: Mapping[str, Any] | None, identity: Identity) -> JobSearch:
        where = where or {}
        group = where.get("group_name")
        if group is not None:
            identity.require_access(group, "the jobs asked for")
        return cls(
            group_name=group,
            phase=where.get("phase"),
            user_name=where.get("user_name"),
            job_id=where.get("id"),
            groups=frozenset(name for name in where.get("group_id_in") or () if name),
            display_name_contains=_text(where, "display_name_contains", "displayName_contains"),
            text=(_text(where, "search", "search") or "").lower() or None,
            mine=bool(where.get("mine")),
        )

    def query(
        self, identity: Identity, *, first: int, after: Position | None = None, skip: int = 0
    ) -> JobQuery:
        """The index query for this search; filters the index does not know become a check."""
        narrower = (
            self.job_id,
            self.groups,
            self.display_name_contains,
            self.text,
            self.mine,
        )
        return JobQuery(
            groups=None if identity.admin else identity.groups,
            first=first,
            after=after,
            skip=skip,
            group_name=self.group_name,
            phase=self.phase,
            user_name=self.user_name,
            matches=(lambda job: self.matches(job, identity)) if any(narrower) else None,
        )

    def matches(self, job: PhJob, identity: Identity) -> bool:
        spec = job.spec
        if not identity.may_access(spec.group_name):
            return False
        checks = (
            self.group_name is None or spec.group_name == self.group_name,
            self.phase is None or job.status.phase.value == self.phase,
            self.user_name is None or spec.user_name == self.user_name,
            self.job_id is None or job.id == self.job_id,
            not self.groups or spec.group_name in self.groups,
            self.display_name_contains is None or self.display_name_contains in spec.display_name,
            self.text is None or self.text in job.id or self.text in spec.display_name.lower(),
            not self.mine or spec.user_name == identity.name,
        )
        return all(checks)


async def find_jobs(
    jobs: JobSource, identity: Identity, search: JobSearch, order: JobOrder | None = None
) -> list[PhJob]:
    """Every job ``identity`` may see that ``search`` matches (at most ``SCAN_LIMIT``), in
    ``order`` (newest first)."""
    page = await jobs.page(search.query(identity, first=SCAN_LIMIT))
    return (order or JobOrder()).apply(page.jobs)
