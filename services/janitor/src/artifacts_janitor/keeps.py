"""Folders without an expiry: whether an admin kept them, and the sentence a run reports.

A folder with no readable ``expiredAt`` is skipped and reported; its ``retention.json``, when
the api signed it (``artifacts_shared.retention``), says who kept it. Such a folder is an
admin's decision, so the operator's opt-in to deleting orphans
(``JANITOR_ORPHAN_RETENTION_SECONDS``) never takes it. One GET per folder without an
expiry, and only those.
"""

from __future__ import annotations

from datetime import time

from artifacts_shared.cleanup_result import SkipReason
from artifacts_shared.input_holds import Hold
from artifacts_shared.layout import JobPrefix
from artifacts_shared.metadata_store import ExpiryReading, ExpiryState, read_retention_record
from artifacts_shared.retention import (
    RECORD_MAX_BYTES,
    Change,
    RecordSigner,
    RetentionRecord,
    skipped_sentence,
)
from artifacts_shared.s3 import S3Client

__all__ = ["Keeps"]


class Keeps:
    def __init__(
        self,
        s3: S3Client,
        bucket: str,
        *,
        signer: RecordSigner | None,
        daily_at: time,
        now: float,
    ) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._signer = signer
        self._daily_at = daily_at
        self._now = now

    async def record(self, prefix: JobPrefix) -> RetentionRecord | None:
        """The folder's ``retention.json`` when the api signed it for this folder."""
        if self._signer is None:
            return None
        raw = await read_retention_record(self._s3, self._bucket, prefix, limit=RECORD_MAX_BYTES)
        return self._signer.load(raw, prefix)

    @staticmethod
    def kept(record: RetentionRecord | None) -> bool:
        return record is not None and record.change is Change.KEEP

    async def orphan_rule(
        self, prefix: JobPrefix, reading: ExpiryReading, orphan_retention_seconds: int
    ) -> tuple[int, RetentionRecord | None]:
        """The orphan retention that applies to the folder, and its record when one was read.

        Only a folder without a readable expiry is looked at; one an admin kept is never an
        orphan (0).
        """
        if reading.state is ExpiryState.SET:
            return orphan_retention_seconds, None
        record = await self.record(prefix)
        return (0 if self.kept(record) else orphan_retention_seconds), record

    def sentence(
        self,
        reason: SkipReason,
        reading: ExpiryReading,
        record: RetentionRecord | None,
        *,
        hold: Hold | None = None,
    ) -> str:
        return skipped_sentence(
            reason, reading, record, now=self._now, daily_at=self._daily_at, hold=hold
        )
