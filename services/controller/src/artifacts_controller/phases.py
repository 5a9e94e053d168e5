"""How a job's observed run becomes its PhJob status: one rule set for both runtimes.

A runtime (Kubernetes pods, local processes) only reports what it sees as an ``Observation``;
``advance`` turns that and the current status into the next status. It is a pure function
of its inputs, and keeps times it already recorded, so reconciling again with the same
observation gives the same status: nothing to write, nothing changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from artifacts_shared.phjob import PhJobPhase, PhJobStatus

__all__ = [
    "Observation",
    "RunState",
    "advance",
    "cancelled",
    "collecting",
    "exit_message",
    "failed",
    "upload_failed_message",
    "utcnow",
    "vanished",
]


class RunState(StrEnum):
    WAITING = "waiting"  # accepted, not yet placed (an unscheduled pod)
    PREPARING = "preparing"  # placed, starting (pulling the image, creating containers)
    RUNNING = "running"  # the command runs, or its artifacts are being collected
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"  # the runtime lost track (a node that stopped reporting)


_PHASES = {
    RunState.WAITING: PhJobPhase.PENDING,
    RunState.PREPARING: PhJobPhase.PREPARING,
    RunState.RUNNING: PhJobPhase.RUNNING,
    RunState.SUCCEEDED: PhJobPhase.SUCCEEDED,
    RunState.FAILED: PhJobPhase.FAILED,
    RunState.UNKNOWN: PhJobPhase.UNKNOWN,
}


def utcnow() -> datetime:
    """Now, in whole seconds: Kubernetes times have whole seconds, so do ours, or a re-read
    status would differ from the one written."""
    return datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class Observation:
    """What a runtime saw of one job's run; times are the runtime's own, when it has them."""

    state: RunState
    run_name: str
    started_at: datetime | None = None
    finished_at: datetime | None = None
    reason: str | None = None
    message: str | None = None


def collecting(run_name: str, *, started_at: datetime | None) -> Observation:
    """The command has ended; the run goes on while its artifacts are delivered."""
    return Observation(
        RunState.RUNNING,
        run_name,
        started_at=started_at,
        reason="Collecting",
        message="the command has ended; its artifacts are being uploaded",
    )


def exit_message(code: object, reason: object = None) -> str:
    text = f"the command exited with code {code}"
    return f"{text} ({reason})" if reason and reason not in ("Error", "Completed") else text


def upload_failed_message(code: object) -> str:
    return (
        f"the command succeeded but its artifacts could not be uploaded (uploader exit code {code})"
    )


def advance(status: PhJobStatus, seen: Observation, *, now: datetime) -> PhJobStatus:
    """The status after ``seen``; a finished status never changes."""
    if status.finished:
        return status
    phase = _PHASES[seen.state]
    started = status.start_time
    if started is None and phase in (PhJobPhase.RUNNING, PhJobPhase.SUCCEEDED, PhJobPhase.FAILED):
        started = seen.started_at or seen.finished_at or now
    finished = None
    if phase in (PhJobPhase.SUCCEEDED, PhJobPhase.FAILED):
        finished = seen.finished_at or now
    return PhJobStatus(
        phase=phase,
        pod_name=seen.run_name,
        start_time=started,
        finish_time=finished,
        reason=seen.reason,
        message=seen.message,
    )


def cancelled(status: PhJobStatus, *, now: datetime) -> PhJobStatus:
    if status.finished:
        return status
    return status.model_copy(
        update={
            "phase": PhJobPhase.CANCELLED,
            "finish_time": now,
            "reason": "Cancelled",
            "message": "the job was cancelled; its artifacts are collected as it stops",
        }
    )


def vanished(status: PhJobStatus, *, now: datetime, what: str) -> PhJobStatus:
    """A run we started is gone without a result: fail the job rather than wait forever."""
    return failed(status, now=now, reason="RunLost", message=f"{what} before the job finished")


def failed(status: PhJobStatus, *, now: datetime, reason: str, message: str) -> PhJobStatus:
    if status.finished:
        return status
    return status.model_copy(
        update={
            "phase": PhJobPhase.FAILED,
            "finish_time": now,
            "reason": reason,
            "message": message,
        }
    )
