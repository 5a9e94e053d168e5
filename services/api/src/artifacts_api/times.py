"""Times on the wire: ISO 8601 in UTC with a ``Z`` (ARCHITECTURE section 5)."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["iso_utc"]


def iso_utc(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        # Kubernetes and S3 both mean UTC when they leave the zone out.
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"
