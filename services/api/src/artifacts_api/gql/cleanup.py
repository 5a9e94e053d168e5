"""Bindables of ``PhJobArtifactCleanup``: a janitor run as the shared cleanup queue reports it.

The queue logic (one run at a time, the run's status and result) is the shared
``artifacts_shared.cleanup_queue`` contract with the janitor; this module only shows it.
"""

from __future__ import annotations

from ariadne import ObjectType

from artifacts_api.gql.context import Info
from artifacts_api.times import iso_utc
from artifacts_shared.cleanup_queue import CleanupStatus
from artifacts_shared.cleanup_result import CleanupResult, SkippedFolder

__all__ = ["bindables"]

run = ObjectType("PhJobArtifactCleanup")
result = ObjectType("PhJobArtifactCleanupResult")
skipped = ObjectType("PhJobArtifactCleanupSkipped")


@run.field("id")
def resolve_id(status: CleanupStatus, info: Info) -> str:
    return status.run_id


@run.field("state")
def resolve_state(status: CleanupStatus, info: Info) -> str:
    return status.state.value.upper()


@run.field("enqueuedAt")
def resolve_enqueued_at(status: CleanupStatus, info: Info) -> str | None:
    return iso_utc(status.enqueued_at)


@result.field("outcome")
def resolve_outcome(outcome: CleanupResult, info: Info) -> str:
    return outcome.outcome.value


@result.field("startedAt")
def resolve_started_at(outcome: CleanupResult, info: Info) -> str | None:
    return iso_utc(outcome.started_at)


@result.field("finishedAt")
def resolve_finished_at(outcome: CleanupResult, info: Info) -> str | None:
    return iso_utc(outcome.finished_at)


@result.field("lastRescanAt")
def resolve_last_rescan_at(outcome: CleanupResult, info: Info) -> str | None:
    return iso_utc(outcome.last_rescan_at)


@skipped.field("reason")
def resolve_reason(folder: SkippedFolder, info: Info) -> str:
    return folder.reason.value


bindables = [run, result, skipped]
