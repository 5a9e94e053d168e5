"""The result of one janitor run: what the janitor stores and the api reads back.

The janitor returns ``CleanupResult.to_stored()`` (a plain JSON-able dict) as the arq job
result, so the api never unpickles a class of ours whose shape may have moved on; it
reads the dict back with ``CleanupResult.from_stored()``, which ignores fields it does
not know. Field names are camelCase on the wire, like every other wire format of ours.

A run works from the expiry index (``artifacts_shared.expiry_index``): ``index_*`` say
what it took from there. ``rescanned`` says whether this run also made the reconciling
full scan (``folders_scanned`` counts what that scan looked at, and is 0 otherwise);
``last_rescan_at`` and ``rescan_found`` describe the last completed rescan, this run's or
an earlier one.

Counts cover the whole run; the name lists (``deleted``, ``skipped``, ``errors``) keep
at most ``NAMES_KEPT`` entries so a run over a million folders stays a small record.
Every folder is also logged by name as it is decided, so nothing is lost from the log.
In a dry run the deletion figures say what *would* have been deleted.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

__all__ = [
    "NAMES_KEPT",
    "CleanupResult",
    "FolderError",
    "RunOutcome",
    "SkipReason",
    "SkippedFolder",
]

NAMES_KEPT = 100
"""How many folder names each list of a result keeps; the counts are always complete."""


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


class RunOutcome(StrEnum):
    COMPLETED = "completed"
    """Every job folder was looked at (some may have failed: see ``errors``)."""
    SKIPPED = "skipped"
    """Another run held the run lock, or this attempt was superseded: nothing was done."""
    INTERRUPTED = "interrupted"
    """The run lost its lock part-way and stopped; the next run finishes the work."""


class SkipReason(StrEnum):
    """Why a job folder was left alone although it may hold no valid expiry, or is due."""

    MISSING_EXPIRED_AT = "missing_expired_at"
    INVALID_EXPIRED_AT = "invalid_expired_at"
    UNSAFE_NAME = "unsafe_name"
    INPUT_PENDING = "input_pending"
    """Due, but a job that has not started will read it as its input (``input_holds``)."""


class SkippedFolder(_Model):
    prefix: str
    reason: SkipReason
    detail: str = ""
    retention: str = Field(
        "", description="the folder's retention sentence (artifacts_shared.retention)"
    )


class FolderError(_Model):
    prefix: str
    message: str


class CleanupResult(_Model):
    run_id: str
    outcome: RunOutcome
    note: str = Field("", description="why a run was skipped or interrupted")
    dry_run: bool = False
    started_at: datetime
    finished_at: datetime
    duration_seconds: float = Field(ge=0)

    index_due: int = Field(0, ge=0, description="entries due in the index when the run began")
    index_checked: int = Field(0, ge=0, description="due entries whose expiredAt was re-read")
    index_stale: int = Field(
        0,
        ge=0,
        description="due entries S3 did not confirm: re-indexed later, or removed because "
        "the folder has no readable expiredAt, is gone, or is no job folder",
    )
    index_size: int = Field(0, ge=0, description="entries in the index when the run ended")
    rescanned: bool = Field(False, description="this run made the reconciling full scan")
    last_rescan_at: datetime | None = Field(None, description="when the last rescan finished")
    rescan_found: int = Field(
        0, ge=0, description="folders the last rescan added to the index or corrected in it"
    )

    folders_scanned: int = Field(0, ge=0, description="job folders the rescan looked at")
    folders_unexpired: int = Field(0, ge=0)
    folders_expired: int = Field(0, ge=0, description="expiredAt in the past")
    folders_orphaned: int = Field(
        0, ge=0, description="no readable expiredAt, older than the orphan retention"
    )
    folders_deleted: int = Field(0, ge=0, description="expired or orphaned, and now empty")
    folders_skipped: int = Field(0, ge=0)
    folders_failed: int = Field(0, ge=0, description="folders left for the next run")
    objects_deleted: int = Field(0, ge=0)
    bytes_freed: int = Field(0, ge=0)
    skipped_by_reason: dict[SkipReason, int] = Field(default_factory=dict)

    deleted: list[str] = Field(default_factory=list, description="first prefixes deleted")
    skipped: list[SkippedFolder] = Field(default_factory=list)
    errors: list[FolderError] = Field(default_factory=list)

    def to_stored(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    @classmethod
    def from_stored(cls, stored: object) -> CleanupResult:
        return cls.model_validate(stored)
