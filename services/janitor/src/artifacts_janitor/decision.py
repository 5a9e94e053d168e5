"""The rule for one job folder (ARCHITECTURE section 6): delete now, look again later, or keep.

Both passes of a run judge folders by this one function: the rescan, which indexes what
is due now or later, and the daily pass, which deletes what is due and re-indexes the
rest. "Later" is a time the folder becomes due: its ``expiredAt``, or for a folder
without a readable one (when the operator opted in) its newest object plus the orphan
retention.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from artifacts_shared.cleanup_result import SkipReason
from artifacts_shared.expiry import is_expired
from artifacts_shared.metadata_store import ExpiryReading, ExpiryState

__all__ = ["Action", "Verdict", "decide"]


class Action(Enum):
    DELETE = "delete"
    LATER = "later"
    KEEP = "keep"


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    due_at: int | None = None
    """DELETE and LATER: when the folder is (or was) due: what the index should say."""
    orphaned: bool = False
    """DELETE and LATER: due by the orphan retention, not by an ``expiredAt``."""
    reason: SkipReason | None = None
    """KEEP: why a folder without a readable expiry stays."""
    detail: str = ""


def decide(
    reading: ExpiryReading,
    *,
    now: float,
    orphan_retention_seconds: int,
    newest: float | None,
) -> Verdict:
    """The verdict on a folder; ``newest`` (its newest object's time) only matters for orphans."""
    if reading.state is ExpiryState.SET:
        assert reading.expired_at is not None
        action = Action.DELETE if is_expired(reading.expired_at, now) else Action.LATER
        return Verdict(action, due_at=reading.expired_at, detail=f"expired at {reading.expired_at}")
    reason = (
        SkipReason.MISSING_EXPIRED_AT
        if reading.state is ExpiryState.MISSING
        else SkipReason.INVALID_EXPIRED_AT
    )
    if orphan_retention_seconds > 0 and newest is not None:
        due_at = math.ceil(newest) + orphan_retention_seconds
        action = Action.DELETE if due_at <= now else Action.LATER
        detail = f"{reading.detail}, nothing written for {orphan_retention_seconds} s"
        return Verdict(action, due_at=due_at, orphaned=True, reason=reason, detail=detail)
    return Verdict(Action.KEEP, reason=reason, detail=reading.detail)
