"""A job folder's retention in one sentence, and the signed record of who last changed it.

The api (``PhJobArtifact.retention``) and the janitor (each folder a run skipped) explain a
folder with the same function, ``describe``, so a user reads the same words in the job
page and in the run result: "kept by alice on 3 Dec", "expired on 3 Dec at 14:00 UTC;
the next cleanup runs at 03:00 UTC", "legacy folder without an expiry: an admin decides".

Whether a folder expires comes from its ``expiredAt`` alone (S3 is the source of truth).
*Who* changed it comes from ``.primehub/metadata/retention.json``, which the api writes
when a user keeps, extends or shortens the artifacts. In ``phfs`` mode the job's side can
write anything in its group's folders, that name included, so a record is believed only
when its HMAC is ours: the key is derived from the S3 secret key, which the api and the
janitor hold and a job never does. The signature covers the job prefix (a record copied
from another folder is refused) and the ``expiredAt`` it set (a record left over from an
earlier change, or replayed, is refused once ``expiredAt`` says something else). A record
that fails any check is treated as absent: the state still comes from ``expiredAt``, and
no name is shown.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from artifacts_shared.cleanup_result import SkipReason
from artifacts_shared.expiry import to_datetime
from artifacts_shared.input_holds import Hold
from artifacts_shared.metadata_store import ExpiryReading, ExpiryState
from artifacts_shared.settings import S3Settings

__all__ = [
    "JOB_DELETED_BY",
    "RECORD_MAX_BYTES",
    "Change",
    "RecordSigner",
    "Retention",
    "RetentionRecord",
    "RetentionState",
    "describe",
    "grace_text",
    "next_cleanup",
    "said_when",
    "skipped_sentence",
]

JOB_DELETED_BY = "controller"
"""``changedBy`` of a ``JOB_DELETED`` record: Kubernetes does not say who deleted the job."""
RECORD_MAX_BYTES = 4096
"""Anything larger is not one of our records; readers fetch no more."""
_KEY_LABEL = b"job-artifacts retention record v1"
_VERSION = 1
_MAX_NAME = 256


class RetentionState(StrEnum):
    EXPIRES = "EXPIRES"
    """``expiredAt`` lies ahead."""
    KEPT = "KEPT"
    """No ``expiredAt``, by a decision of ours: kept until deleted by hand."""
    EXPIRED = "EXPIRED"
    """``expiredAt`` has passed: the next cleanup run deletes the folder."""
    UNKNOWN = "UNKNOWN"
    """No readable ``expiredAt`` and nothing of ours to say why: an admin decides."""


class Change(StrEnum):
    KEEP = "keep"
    EXTEND = "extend"
    SHORTEN = "shorten"
    SET = "set"
    """An expiry given to a folder that had none."""
    JOB_DELETED = "job-deleted"
    """Shortened by the controller when the PhJob was deleted (the orphan grace)."""


_VERBS = {
    Change.EXTEND: "extended",
    Change.SHORTEN: "shortened",
    Change.SET: "given an expiry",
}


@dataclass(frozen=True, slots=True)
class RetentionRecord:
    """One change of a folder's expiry, as the api made it."""

    prefix: str
    expired_at: int | None
    change: Change
    changed_by: str
    changed_at: int
    """UNIX seconds."""

    def fields(self) -> dict[str, Any]:
        return {
            "version": _VERSION,
            "prefix": self.prefix,
            "expiredAt": self.expired_at,
            "change": self.change.value,
            "changedBy": self.changed_by,
            "changedAt": self.changed_at,
        }


def _canonical(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


class RecordSigner:
    """Signs and checks retention records with a key derived from the S3 secret key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def from_s3_secret(cls, secret: str) -> RecordSigner:
        # A derived key, so the record's MAC never exposes or reuses the S3 key itself.
        return cls(hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).digest())

    @classmethod
    def for_settings(cls, settings: S3Settings) -> RecordSigner | None:
        """The signer every service derives from its S3 secret; None without a static one."""
        secret = settings.s3_secret_access_key
        return cls.from_s3_secret(secret.get_secret_value()) if secret else None

    def _mac(self, fields: dict[str, Any]) -> str:
        return hmac.new(self._key, _canonical(fields), hashlib.sha256).hexdigest()

    def dump(self, record: RetentionRecord) -> bytes:
        fields = record.fields()
        return _canonical({**fields, "signature": self._mac(fields)})

    def load(self, raw: bytes | None, prefix: str) -> RetentionRecord | None:
        """The record in ``raw`` when it is ours and for ``prefix``; None for anything else."""
        if raw is None or len(raw) > RECORD_MAX_BYTES:
            return None
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, ValueError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("signature"), str):
            return None
        signature = data.pop("signature")
        if not hmac.compare_digest(self._mac(data), signature):
            return None
        try:
            record = RetentionRecord(
                prefix=data["prefix"],
                expired_at=data["expiredAt"],
                change=Change(data["change"]),
                changed_by=data["changedBy"],
                changed_at=data["changedAt"],
            )
        except (KeyError, ValueError):
            return None
        if record.prefix != prefix or record.fields() != data:
            return None
        return record


@dataclass(frozen=True, slots=True)
class Retention:
    """What ``PhJobArtifact.retention`` shows; ``changed_*`` only from a record of ours."""

    state: RetentionState
    reason: str
    expired_at: int | None = None
    changed_by: str | None = None
    changed_at: int | None = None


def _day(at: datetime, now: datetime) -> str:
    return f"{at.day} {at:%b}" if at.year == now.year else f"{at.day} {at:%b} {at.year}"


def _moment(at: datetime, now: datetime) -> str:
    return f"{_day(at, now)} at {at:%H:%M} UTC"


def grace_text(seconds: int) -> str:
    """``a day's`` grace, ``2 hours'``: the largest whole unit, else seconds."""
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return (
                f"a{'n' if unit == 'hour' else ''} {unit}'s" if count == 1 else f"{count} {unit}s'"
            )
    return "a second's" if seconds == 1 else f"{seconds} seconds'"


def _job_deleted(record: RetentionRecord, now: datetime) -> tuple[str, str]:
    """The day the job was deleted, and its grace as ``grace_text`` says it."""
    deleted = _day(datetime.fromtimestamp(record.changed_at, tz=UTC), now)
    return deleted, grace_text(max(0, (record.expired_at or 0) - record.changed_at))


def said_when(at: int, *, now: float) -> str:
    """``3 Dec at 14:00 UTC`` (the year only when it is not this one's)."""
    return _moment(datetime.fromtimestamp(at, tz=UTC), datetime.fromtimestamp(now, tz=UTC))


def next_cleanup(now: float, daily_at: time) -> datetime:
    """The first daily run at or after ``now``."""
    today = datetime.fromtimestamp(now, tz=UTC)
    run = datetime.combine(today.date(), daily_at, tzinfo=UTC)
    return run if run >= today else run + timedelta(days=1)


def _shown(name: str) -> str:
    """A user name as a sentence can carry it: one line, bounded."""
    flat = "".join(char if char.isprintable() else "?" for char in name)
    return flat if len(flat) <= _MAX_NAME else flat[:_MAX_NAME] + "..."


def describe(
    reading: ExpiryReading,
    record: RetentionRecord | None,
    *,
    now: float,
    daily_at: time,
    asked_to_keep: bool = False,
    hold: Hold | None = None,
) -> Retention:
    """The folder's retention from its ``expiredAt`` reading and a *verified* record.

    ``asked_to_keep``: the job was created with retention 0 (known from the PhJob, which
    the api reads and the janitor does not). ``hold``: a job that has not started yet
    will read the folder as its input (``artifacts_shared.input_holds``), so a cleanup
    run leaves it alone until then.
    """
    told = _describe(
        reading, record, now=now, daily_at=daily_at, asked_to_keep=asked_to_keep, hold=hold
    )
    if hold is None or told.state is RetentionState.EXPIRED:
        return told
    return replace(told, reason=f"{told.reason}; {_waits(hold, now)}")


def _waits(hold: Hold, now: float) -> str:
    return (
        f"kept while job {hold.job_id} waits to read it as an input "
        f"(at most until {said_when(hold.until, now=now)})"
    )


def _describe(
    reading: ExpiryReading,
    record: RetentionRecord | None,
    *,
    now: float,
    daily_at: time,
    asked_to_keep: bool,
    hold: Hold | None,
) -> Retention:
    current = reading.expired_at if reading.state is ExpiryState.SET else None
    if record is not None and (
        record.expired_at != current or reading.state is ExpiryState.INVALID
    ):
        record = None  # an older change: expiredAt has moved on since
    by = _shown(record.changed_by) if record else None
    at = record.changed_at if record else None
    moment = datetime.fromtimestamp(now, tz=UTC)
    changed = (
        f" by {by} on {_day(datetime.fromtimestamp(at, tz=UTC), moment)}" if at is not None else ""
    )
    if reading.state is ExpiryState.INVALID:
        return Retention(
            RetentionState.UNKNOWN,
            f"the expiry file is unreadable ({reading.detail}): kept until an admin decides",
        )
    if current is None:
        if record is not None:
            return Retention(RetentionState.KEPT, f"kept{changed}", None, by, at)
        if asked_to_keep:
            return Retention(
                RetentionState.KEPT, "kept until deleted by hand: the job asked for no expiry"
            )
        return Retention(
            RetentionState.UNKNOWN, "legacy folder without an expiry: an admin decides"
        )
    expires = to_datetime(current)
    if expires is None:
        return Retention(
            RetentionState.KEPT, f"kept{changed} until the year 9999 or later", current, by, at
        )
    if current <= now:
        ended = f"expired on {_moment(expires, moment)}"
        if record is not None and record.change is Change.JOB_DELETED:
            deleted, grace = _job_deleted(record, moment)
            ended = f"its job was deleted on {deleted} and {grace} grace ended on " + (
                _moment(expires, moment)
            )
        # A hold defers the next cleanup: say what the folder waits for instead.
        then = (
            _waits(hold, now)
            if hold is not None
            else f"the next cleanup runs at {next_cleanup(now, daily_at):%H:%M} UTC"
        )
        return Retention(
            RetentionState.EXPIRED,
            f"{ended}; {then}",
            current,
            by,
            at,
        )
    if record is not None and record.change is Change.JOB_DELETED:
        deleted, grace = _job_deleted(record, moment)
        return Retention(
            RetentionState.EXPIRES,
            f"its job was deleted on {deleted}; deleted after {grace} grace, "
            f"on {_moment(expires, moment)}",
            current,
            by,
            at,
        )
    verb = f"{_VERBS[record.change]}{changed}: expires" if record else "expires"
    return Retention(
        RetentionState.EXPIRES, f"{verb} on {_moment(expires, moment)}", current, by, at
    )


def skipped_sentence(
    reason: SkipReason,
    reading: ExpiryReading | None,
    record: RetentionRecord | None,
    *,
    detail: str = "",
    now: float,
    daily_at: time,
    hold: Hold | None = None,
) -> str:
    """What a cleanup run says of a folder it left alone: ``describe``'s sentence."""
    if reason is SkipReason.UNSAFE_NAME:
        return "not a job folder name the layout accepts: an admin decides"
    if reading is None:
        state = (
            ExpiryState.MISSING if reason is SkipReason.MISSING_EXPIRED_AT else ExpiryState.INVALID
        )
        reading = ExpiryReading(state, detail=detail)
    return describe(reading, record, now=now, daily_at=daily_at, hold=hold).reason
