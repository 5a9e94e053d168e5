"""Changing a job folder's expiry by hand: who may, how far, and in which order it is written.

Members of the job's group may shorten the expiry or extend it up to
``ARTIFACT_MAX_RETENTION_SECONDS`` after now; only admins may go beyond, or keep the
artifacts until deleted by hand (``expiredAt: null``). The new ``expiredAt`` is written
first (S3 is the source of truth), then the signed ``retention.json`` saying who changed
it (``artifacts_shared.retention``), then the expiry index (re-scored, or the entry removed
for a keep); a failure after the first
write leaves a folder whose expiry is the new one and whose record is simply not shown.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from artifacts_api.errors import BadUserInput, Forbidden
from artifacts_api.identity import Identity
from artifacts_api.jobs import artifacts_expire_at, retention_seconds
from artifacts_api.services import Services
from artifacts_api.times import iso_utc
from artifacts_shared.expiry import to_datetime
from artifacts_shared.expiry_index import ExpiryIndex
from artifacts_shared.layout import JobPrefix
from artifacts_shared.metadata_store import (
    ExpiryReading,
    ExpiryState,
    delete_expired_at,
    read_expiry,
    write_expired_at,
    write_retention_record,
)
from artifacts_shared.phjob import PhJob
from artifacts_shared.retention import (
    Change,
    RecordSigner,
    Retention,
    RetentionRecord,
    RetentionState,
    describe,
    said_when,
)
from artifacts_shared.s3 import S3Client

__all__ = ["ExpiryChange", "folder_exists", "job_retention", "parse_expiry", "set_expiry"]

_MAX_INPUT = 64
_LATEST = int(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp())
"""The last second an ISO 8601 ``expiredAt`` can show (and ``to_datetime`` can read)."""


def parse_expiry(value: str | None) -> int | None:
    """``expiredAt`` as the client sent it (ISO 8601 with a zone, or null) -> UNIX seconds."""
    if value is None:
        return None
    refused = BadUserInput(
        f"expiredAt {value[:_MAX_INPUT]!r} is not a time: expected ISO 8601 with a time zone, "
        "e.g. 2030-01-31T12:00:00Z, or null to keep the artifacts until deleted by hand",
        field="expiredAt",
    )
    if len(value) > _MAX_INPUT:
        raise refused
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise refused from None
    if moment.tzinfo is None:
        raise refused
    return int(moment.timestamp())


@dataclass(frozen=True, slots=True)
class ExpiryChange:
    """What ``set_expiry`` did: the folder's expiry before and after."""

    before: ExpiryReading
    expired_at: int | None
    change: Change


def _change(before: ExpiryReading, expired_at: int | None) -> Change:
    if expired_at is None:
        return Change.KEEP
    if before.state is not ExpiryState.SET or before.expired_at is None:
        return Change.SET
    return Change.SHORTEN if expired_at < before.expired_at else Change.EXTEND


def check_allowed(
    identity: Identity, expired_at: int | None, *, now: float, max_retention: int
) -> None:
    """Refuse an expiry the caller may not set; the group check happened before."""
    if expired_at is None:
        identity.require_admin("keep artifacts until they are deleted by hand")
        return
    if expired_at <= now:
        raise BadUserInput(
            f"expiredAt {iso_utc(to_datetime(expired_at))} is not in the future: "
            "deletePhJobArtifact deletes the artifacts now",
            field="expiredAt",
        )
    if expired_at > _LATEST:
        raise BadUserInput(
            "expiredAt lies beyond the year 9999: use null to keep the artifacts", field="expiredAt"
        )
    if expired_at > now + max_retention and not identity.admin:
        days = max_retention / 86_400
        raise Forbidden(
            f"only admins may set an expiry more than {days:g} days from now "
            f"(ARTIFACT_MAX_RETENTION_SECONDS={max_retention})"
        )


async def folder_exists(s3: S3Client, bucket: str, prefix: JobPrefix) -> bool:
    response = await s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
    return bool(response.get("Contents"))


async def set_expiry(
    services: Services,
    identity: Identity,
    job: PhJob,
    prefix: JobPrefix,
    expired_at: int | None,
    *,
    now: float | None = None,
) -> ExpiryChange:
    """Write ``expired_at`` (None: keep) for ``job``'s folder, after every check."""
    moment = time.time() if now is None else now
    check_allowed(
        identity,
        expired_at,
        now=moment,
        max_retention=services.settings.artifact_max_retention_seconds,
    )
    s3, bucket = services.s3, services.bucket
    if not job.status.finished:
        # An expiredAt written before the collection's would mark a half-uploaded folder
        # complete for the janitor.
        raise BadUserInput(
            f"job {job.id} has not ended: its artifacts are collected, with their expiry, "
            "when it ends",
            field="where",
        )
    if not await folder_exists(s3, bucket, prefix):
        raise BadUserInput(f"job {job.id} has no artifacts stored", field="where")
    before = await read_expiry(s3, bucket, prefix)
    if expired_at is None:
        await delete_expired_at(s3, bucket, prefix)
    else:
        await write_expired_at(s3, bucket, prefix, expired_at)
    change = _change(before, expired_at)
    if services.records is not None:
        record = RetentionRecord(
            prefix=prefix,
            expired_at=expired_at,
            change=change,
            changed_by=identity.name,
            changed_at=int(moment),
        )
        await write_retention_record(s3, bucket, prefix, services.records.dump(record))
    # Last: the index only says when to look. Were this lost, the janitor's rescan re-adds
    # the folder from its expiredAt; a kept folder has no entry.
    index = ExpiryIndex(services.queue)
    if expired_at is None:
        await index.remove(prefix)
    else:
        await index.add(prefix, expired_at)
    return ExpiryChange(before=before, expired_at=expired_at, change=change)


def job_retention(
    job: PhJob,
    prefix: JobPrefix,
    reading: ExpiryReading,
    raw_record: bytes | None,
    *,
    stored: bool,
    services: Services,
    now: float,
) -> Retention:
    """``PhJobArtifact.retention``: the shared sentence, and what only the api knows."""
    settings = services.settings
    kept = retention_seconds(job, settings) == 0
    if reading.state is ExpiryState.MISSING and not stored:
        if not job.status.finished:
            after = "kept until deleted by hand" if kept else "kept until their expiry"
            return Retention(
                RetentionState.UNKNOWN, f"the job has not ended: its artifacts are {after}"
            )
        expired = artifacts_expire_at(job, settings)
        if expired is not None and expired.timestamp() <= now:
            at = int(expired.timestamp())
            return Retention(
                RetentionState.EXPIRED,
                f"expired on {said_when(at, now=now)} and deleted by the cleanup",
                at,
            )
        return Retention(RetentionState.UNKNOWN, "no artifacts are stored for this job")
    signer: RecordSigner | None = services.records
    record = signer.load(raw_record, prefix) if signer else None
    return describe(
        reading, record, now=now, daily_at=settings.janitor_daily_at, asked_to_keep=kept
    )
