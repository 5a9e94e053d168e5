"""A run's figures as folders are decided: counts are complete, name lists are capped.

The rescan and the daily pass of one run add to the same tally; ``result`` turns it into
the ``CleanupResult`` the run returns.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from artifacts_shared.cleanup_result import (
    NAMES_KEPT,
    CleanupResult,
    FolderError,
    RunOutcome,
    SkippedFolder,
    SkipReason,
)

__all__ = ["Tally"]


@dataclass(slots=True)
class Tally:
    scanned: int = 0
    unexpired: int = 0
    expired: int = 0
    orphaned: int = 0
    deleted_count: int = 0
    failed: int = 0
    objects: int = 0
    bytes: int = 0
    index_due: int = 0
    index_checked: int = 0
    index_stale: int = 0
    index_size: int = 0
    rescanned: bool = False
    last_rescan_at: float | None = None
    rescan_found: int = 0
    skipped_by_reason: Counter[SkipReason] = field(default_factory=Counter)
    deleted: list[str] = field(default_factory=list)
    skipped: list[SkippedFolder] = field(default_factory=list)
    errors: list[FolderError] = field(default_factory=list)

    def skip(self, prefix: str, reason: SkipReason, detail: str, retention: str = "") -> None:
        self.skipped_by_reason[reason] += 1
        if len(self.skipped) < NAMES_KEPT:
            self.skipped.append(
                SkippedFolder(prefix=prefix, reason=reason, detail=detail, retention=retention)
            )

    def fail(self, prefix: str, message: str) -> None:
        self.failed += 1
        if len(self.errors) < NAMES_KEPT:
            self.errors.append(FolderError(prefix=prefix, message=message))

    def gone(self, prefix: str) -> None:
        self.deleted_count += 1
        if len(self.deleted) < NAMES_KEPT:
            self.deleted.append(prefix)

    def result(
        self,
        *,
        run_id: str,
        outcome: RunOutcome,
        note: str,
        dry_run: bool,
        started_at: float,
        duration: float,
    ) -> CleanupResult:
        started = datetime.fromtimestamp(started_at, tz=UTC)
        last_rescan = (
            None
            if self.last_rescan_at is None
            else datetime.fromtimestamp(self.last_rescan_at, tz=UTC)
        )
        return CleanupResult(
            run_id=run_id,
            outcome=outcome,
            note=note,
            dry_run=dry_run,
            started_at=started,
            finished_at=started + timedelta(seconds=duration),
            duration_seconds=round(duration, 3),
            index_due=self.index_due,
            index_checked=self.index_checked,
            index_stale=self.index_stale,
            index_size=self.index_size,
            rescanned=self.rescanned,
            last_rescan_at=last_rescan,
            rescan_found=self.rescan_found,
            folders_scanned=self.scanned,
            folders_unexpired=self.unexpired,
            folders_expired=self.expired,
            folders_orphaned=self.orphaned,
            folders_deleted=self.deleted_count,
            folders_skipped=sum(self.skipped_by_reason.values()),
            folders_failed=self.failed,
            objects_deleted=self.objects,
            bytes_freed=self.bytes,
            skipped_by_reason=dict(self.skipped_by_reason),
            deleted=self.deleted,
            skipped=self.skipped,
            errors=self.errors,
        )
