"""What the API returns, as frozen dataclasses with Python names and types.

The GraphQL wire format (camelCase, sizes as floats because GraphQL's ``Int`` is 32-bit,
ISO 8601 strings) stops here: callers get ``int`` sizes, aware ``datetime`` values and a
``JobPhase`` enum. Like JuliaHub.jl's ``Job``, a ``Job`` is a snapshot: call
``client.job(job)`` again to see its current state. ``to_json()`` gives the stable,
snake_case document the CLI prints with ``--json``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

__all__ = [
    "DONE_PHASES",
    "Artifact",
    "ArtifactFolder",
    "CleanupResult",
    "CleanupRun",
    "CleanupState",
    "Download",
    "InputArtifact",
    "Job",
    "JobPhase",
    "LogPage",
    "Retention",
]


class JobPhase(enum.StrEnum):
    PENDING = "Pending"
    PREPARING = "Preparing"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"
    UNKNOWN = "Unknown"

    @classmethod
    def parse(cls, value: str) -> JobPhase:
        try:
            return cls(value)
        except ValueError:
            return cls.UNKNOWN  # a phase added to the API later: not done, not failed


DONE_PHASES = frozenset({JobPhase.SUCCEEDED, JobPhase.FAILED, JobPhase.CANCELLED})
"""Phases a job never leaves; its artifacts have been collected by then."""


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if hasattr(value, "to_json"):
        return value.to_json()
    return value


class _Jsonable:
    __slots__ = ()

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: snake_case keys, ISO 8601 times, phases as strings."""
        return {item.name: _jsonable(getattr(self, item.name)) for item in fields(self)}  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class InputArtifact(_Jsonable):
    """Another job's artifacts placed under ``~/inputs/<job_id>/`` before a job's command runs:
    all of them, or the file or folder ``path`` names. The counts are what the API resolved
    when the job was created (None in a request)."""

    job_id: str
    path: str | None = None
    file_count: int | None = None
    total_size: int | None = None

    @classmethod
    def parse(cls, value: str) -> InputArtifact:
        """``JOB`` or ``JOB:PATH``, as the CLI's ``--input`` takes it (a job id has no colon)."""
        job_id, _, path = value.partition(":")
        if not job_id:
            raise ValueError(f"{value!r} names no job: expected JOB or JOB:PATH")
        return cls(job_id=job_id, path=path or None)

    def to_graphql(self) -> dict[str, Any]:
        return {"jobId": self.job_id, "path": self.path}

    @classmethod
    def from_graphql(cls, data: Mapping[str, Any]) -> InputArtifact:
        size = data.get("totalSize")
        return cls(
            job_id=str(data["jobId"]),
            path=data.get("path"),
            file_count=data.get("fileCount"),
            total_size=None if size is None else int(size),
        )


@dataclass(frozen=True, slots=True)
class Job(_Jsonable):
    id: str
    display_name: str
    group_name: str
    phase: JobPhase
    command: str
    user_name: str | None = None
    image: str | None = None
    create_time: datetime | None = None
    start_time: datetime | None = None
    finish_time: datetime | None = None
    message: str | None = None
    cancel_requested: bool = False
    inputs: tuple[InputArtifact, ...] = ()
    """Other jobs' artifacts placed under ``~/inputs/`` before the command ran."""

    @property
    def done(self) -> bool:
        return self.phase in DONE_PHASES

    @classmethod
    def from_graphql(cls, data: Mapping[str, Any]) -> Job:
        return cls(
            id=str(data["id"]),
            display_name=str(data.get("displayName") or ""),
            group_name=str(data.get("groupName") or ""),
            phase=JobPhase.parse(str(data.get("phase") or "Unknown")),
            command=str(data.get("command") or ""),
            user_name=data.get("userName"),
            image=data.get("image"),
            create_time=_time(data.get("createTime")),
            start_time=_time(data.get("startTime")),
            finish_time=_time(data.get("finishTime")),
            message=data.get("message"),
            cancel_requested=bool(data.get("cancel")),
            inputs=tuple(
                InputArtifact.from_graphql(item) for item in data.get("inputArtifacts") or ()
            ),
        )


@dataclass(frozen=True, slots=True)
class Artifact(_Jsonable):
    """One file of a job's artifact folder. ``download_url`` is short-lived (minutes)."""

    job_id: str
    name: str
    size: int
    last_modified: datetime | None
    sha256: str | None
    download_url: str = field(repr=False)
    mode: str | None = None
    """Permission bits in octal as the collection recorded them ("755"); None: not recorded."""

    @classmethod
    def from_graphql(cls, job_id: str, data: Mapping[str, Any]) -> Artifact:
        mode = data.get("mode")
        return cls(
            job_id=job_id,
            name=str(data["name"]),
            size=int(data["size"]),
            last_modified=_time(data.get("lastModified")),
            sha256=data.get("sha256"),
            download_url=str(data["downloadUrl"]),
            mode=mode if isinstance(mode, str) else None,
        )


@dataclass(frozen=True, slots=True)
class ArtifactFolder(_Jsonable):
    """A job's whole artifact folder: its files, and why it is empty when a limit refused it."""

    job_id: str
    items: list[Artifact]
    prefix: str | None = None
    expired_at: datetime | None = None
    skipped: bool = False
    skip_reason: str | None = None

    @property
    def total_size(self) -> int:
        return sum(item.size for item in self.items)

    @classmethod
    def from_graphql(cls, job_id: str, data: Mapping[str, Any] | None) -> ArtifactFolder:
        if data is None:  # nothing collected (yet)
            return cls(job_id=job_id, items=[])
        return cls(
            job_id=job_id,
            items=[Artifact.from_graphql(job_id, item) for item in data.get("items") or []],
            prefix=data.get("prefix"),
            expired_at=_time(data.get("expiredAt")),
            skipped=bool(data.get("skipped")),
            skip_reason=data.get("skipReason"),
        )


@dataclass(frozen=True, slots=True)
class Retention(_Jsonable):
    """Why a job's artifacts are kept or when they go: ``reason`` is one sentence.

    ``state`` is EXPIRES, KEPT, EXPIRED (the next cleanup deletes them) or UNKNOWN;
    ``changed_by`` is set only when the API itself recorded who last changed the expiry.
    """

    job_id: str
    state: str
    reason: str
    expired_at: datetime | None = None
    changed_by: str | None = None
    changed_at: datetime | None = None

    @classmethod
    def from_graphql(cls, job_id: str, data: Mapping[str, Any]) -> Retention:
        return cls(
            job_id=job_id,
            state=str(data["state"]),
            reason=str(data["reason"]),
            expired_at=_time(data.get("expiredAt")),
            changed_by=data.get("changedBy"),
            changed_at=_time(data.get("changedAt")),
        )


@dataclass(frozen=True, slots=True)
class LogPage(_Jsonable):
    """Lines of a job's log (JuliaHub.jl's ``job_logs``): ``lines[0]`` is line ``offset``
    (0-based) of ``total_lines``; ``live`` while the job runs and the log may grow."""

    job_id: str
    offset: int
    lines: list[str]
    total_lines: int
    has_more: bool
    live: bool
    source: str | None

    @classmethod
    def from_graphql(cls, job_id: str, data: Mapping[str, Any]) -> LogPage:
        return cls(
            job_id=job_id,
            offset=int(data["offset"]),
            lines=[str(line) for line in data["lines"]],
            total_lines=int(data["totalLines"]),
            has_more=bool(data["hasMore"]),
            live=bool(data["live"]),
            source=data.get("source"),
        )


@dataclass(frozen=True, slots=True)
class Download(_Jsonable):
    """A file written by ``download_artifact``; ``verified`` says what was checked."""

    name: str
    path: str
    size: int
    sha256: str
    verified: str  # "sha256" when the listing had one, else "size"


class CleanupState(enum.StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class CleanupResult(_Jsonable):
    outcome: str
    note: str
    dry_run: bool
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float
    folders_scanned: int
    folders_expired: int
    folders_deleted: int
    folders_skipped: int
    folders_failed: int
    objects_deleted: int
    bytes_freed: int
    deleted: list[str]
    skipped: list[dict[str, str]]
    errors: list[dict[str, str]]
    index_due: int = 0
    index_checked: int = 0
    index_stale: int = 0
    rescanned: bool = False
    last_rescan_at: datetime | None = None
    rescan_found: int = 0

    @classmethod
    def from_graphql(cls, data: Mapping[str, Any]) -> CleanupResult:
        return cls(
            outcome=str(data["outcome"]),
            note=str(data.get("note") or ""),
            dry_run=bool(data.get("dryRun")),
            started_at=_time(data.get("startedAt")),
            finished_at=_time(data.get("finishedAt")),
            duration_seconds=float(data.get("durationSeconds") or 0),
            folders_scanned=int(data.get("foldersScanned") or 0),
            folders_expired=int(data.get("foldersExpired") or 0),
            folders_deleted=int(data.get("foldersDeleted") or 0),
            folders_skipped=int(data.get("foldersSkipped") or 0),
            folders_failed=int(data.get("foldersFailed") or 0),
            objects_deleted=int(data.get("objectsDeleted") or 0),
            bytes_freed=int(data.get("bytesFreed") or 0),
            deleted=[str(prefix) for prefix in data.get("deleted") or []],
            skipped=[dict(entry) for entry in data.get("skipped") or []],
            errors=[dict(entry) for entry in data.get("errors") or []],
            index_due=int(data.get("indexDue") or 0),
            index_checked=int(data.get("indexChecked") or 0),
            index_stale=int(data.get("indexStale") or 0),
            rescanned=bool(data.get("rescanned")),
            last_rescan_at=_time(data.get("lastRescanAt")),
            rescan_found=int(data.get("rescanFound") or 0),
        )


@dataclass(frozen=True, slots=True)
class CleanupRun(_Jsonable):
    """One run of the janitor's expiry cleanup, as far as it has got."""

    id: str
    state: CleanupState
    enqueued_at: datetime | None = None
    error: str | None = None
    result: CleanupResult | None = None

    @property
    def done(self) -> bool:
        return self.state in (CleanupState.COMPLETE, CleanupState.FAILED)

    @classmethod
    def from_graphql(cls, data: Mapping[str, Any]) -> CleanupRun:
        result = data.get("result")
        return cls(
            id=str(data["id"]),
            state=CleanupState(str(data["state"])),
            enqueued_at=_time(data.get("enqueuedAt")),
            error=data.get("error"),
            result=CleanupResult.from_graphql(result) if result else None,
        )
