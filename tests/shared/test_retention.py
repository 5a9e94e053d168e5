"""The retention sentence of a folder whose PhJob was deleted (``Change.JOB_DELETED``)."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from artifacts_shared.metadata_store import ExpiryReading, ExpiryState
from artifacts_shared.retention import (
    JOB_DELETED_BY,
    Change,
    RecordSigner,
    RetentionRecord,
    RetentionState,
    describe,
    grace_text,
)

NOW = datetime(2027, 12, 3, 14, 0, tzinfo=UTC).timestamp()
DELETED = int(datetime(2027, 12, 3, 9, 0, tzinfo=UTC).timestamp())
PREFIX = "groups/g/jobArtifacts/job-1/"
SIGNER = RecordSigner.from_s3_secret("secret")


def _deleted(grace: int) -> RetentionRecord:
    return RetentionRecord(PREFIX, DELETED + grace, Change.JOB_DELETED, JOB_DELETED_BY, DELETED)


def test_a_deleted_jobs_folder_says_why_it_expires_and_after_what_grace() -> None:
    record = SIGNER.load(SIGNER.dump(_deleted(86_400)), PREFIX)
    described = describe(
        ExpiryReading(ExpiryState.SET, DELETED + 86_400), record, now=NOW, daily_at=time(3, 0)
    )

    assert described.state is RetentionState.EXPIRES
    assert described.reason == (
        "its job was deleted on 3 Dec; deleted after a day's grace, on 4 Dec at 09:00 UTC"
    )
    assert (described.changed_by, described.changed_at) == (JOB_DELETED_BY, DELETED)


def test_once_the_grace_is_over_the_sentence_names_the_next_cleanup() -> None:
    record = SIGNER.load(SIGNER.dump(_deleted(3_600)), PREFIX)
    described = describe(
        ExpiryReading(ExpiryState.SET, DELETED + 3_600), record, now=NOW, daily_at=time(3, 0)
    )

    assert described.state is RetentionState.EXPIRED
    assert described.reason == (
        "its job was deleted on 3 Dec and an hour's grace ended on 3 Dec at 10:00 UTC; "
        "the next cleanup runs at 03:00 UTC"
    )


def test_a_record_whose_expiry_has_moved_on_is_not_believed() -> None:
    record = SIGNER.load(SIGNER.dump(_deleted(86_400)), PREFIX)
    described = describe(
        ExpiryReading(ExpiryState.SET, DELETED + 7 * 86_400), record, now=NOW, daily_at=time(3, 0)
    )

    assert described.reason == "expires on 10 Dec at 09:00 UTC"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(86_400, "a day's"), (3 * 86_400, "3 days'"), (3_600, "an hour's"), (7_200, "2 hours'"),
     (60, "a minute's"), (90, "90 seconds'"), (1, "a second's")],
)  # fmt: skip
def test_grace_text(seconds: int, text: str) -> None:
    assert grace_text(seconds) == text
