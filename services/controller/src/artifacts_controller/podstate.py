"""What a job pod's status says about the job's run, as a runtime-neutral ``Observation``.

The job's outcome is its command's: the ``job`` container's exit code. The uploader sidecar
(s3 delivery) only decides whether the run is still collecting, and turns a successful
command into a failed job when its artifacts could not be uploaded.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from artifacts_controller.phases import Observation, RunState
from artifacts_controller.podspec import JOB_CONTAINER, UPLOADER_CONTAINER

__all__ = ["observe_pod", "parse_time", "upload_overdue"]

# Waiting reasons that will not fix themselves: say so in the job's message.
_STUCK = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _containers(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every container's status by name; a native sidecar reports among the init containers."""
    status = pod.get("status") or {}
    statuses = (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
    return {str(item.get("name")): item for item in statuses}


def _terminated(container: dict[str, Any] | None) -> dict[str, Any] | None:
    if not container:
        return None
    state = (container.get("state") or {}).get("terminated")
    return state if isinstance(state, dict) else None


def _scheduled(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    if status.get("nodeName") or (pod.get("spec") or {}).get("nodeName"):
        return True
    conditions = status.get("conditions") or []
    return any(c.get("type") == "PodScheduled" and c.get("status") == "True" for c in conditions)


def _exit_message(code: Any, reason: Any) -> str:
    text = f"the command exited with code {code}"
    return f"{text} ({reason})" if reason and reason not in ("Error", "Completed") else text


def observe_pod(pod: dict[str, Any]) -> Observation:
    name = str((pod.get("metadata") or {}).get("name"))
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    containers = _containers(pod)
    job = containers.get(JOB_CONTAINER)
    job_end = _terminated(job)
    running = (job or {}).get("state", {}).get("running") or {}
    started = (
        parse_time(running.get("startedAt"))
        or parse_time((job_end or {}).get("startedAt"))
        or parse_time(status.get("startTime"))
    )
    finished = parse_time((job_end or {}).get("finishedAt"))

    if phase == "Pending":
        waiting = ((job or {}).get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in _STUCK:
            return Observation(
                RunState.PREPARING,
                name,
                reason=str(waiting["reason"]),
                message=str(waiting.get("message") or waiting["reason"]),
            )
        if _scheduled(pod):
            return Observation(RunState.PREPARING, name)
        return Observation(RunState.WAITING, name, reason=status.get("reason"))

    if phase == "Running":
        if job_end is not None:
            return Observation(
                RunState.RUNNING,
                name,
                started_at=started,
                reason="Collecting",
                message="the command has ended; its artifacts are being uploaded",
            )
        return Observation(RunState.RUNNING, name, started_at=started)

    if phase in ("Succeeded", "Failed"):
        uploader_end = _terminated(containers.get(UPLOADER_CONTAINER))
        ends = [t for t in (finished, parse_time((uploader_end or {}).get("finishedAt"))) if t]
        finished_at = max(ends) if ends else None
        upload_failed = uploader_end is not None and uploader_end.get("exitCode") not in (0, None)
        if phase == "Succeeded" and not upload_failed:
            return Observation(
                RunState.SUCCEEDED, name, started_at=started, finished_at=finished_at
            )
        return _failure(pod, name, started, finished_at, job_end, uploader_end)

    return Observation(
        RunState.UNKNOWN,
        name,
        started_at=started,
        reason=status.get("reason") or "Unknown",
        message=status.get("message") or "the pod's node stopped reporting its state",
    )


def _failure(
    pod: dict[str, Any],
    name: str,
    started: datetime | None,
    finished: datetime | None,
    job_end: dict[str, Any] | None,
    uploader_end: dict[str, Any] | None,
) -> Observation:
    status = pod.get("status") or {}
    if status.get("reason"):  # the kubelet stopped the pod: DeadlineExceeded, Evicted...
        reason = str(status["reason"])
        message = str(status.get("message") or reason)
    elif job_end is not None and job_end.get("exitCode") not in (0, None):
        reason = str(job_end.get("reason") or "Error")
        message = _exit_message(job_end.get("exitCode"), job_end.get("reason"))
    elif uploader_end is not None and uploader_end.get("exitCode") not in (0, None):
        reason = "UploadFailed"
        message = (
            "the command succeeded but its artifacts could not be uploaded "
            f"(uploader exit code {uploader_end.get('exitCode')})"
        )
    else:
        reason = "Error"
        message = "the pod failed"
    return Observation(
        RunState.FAILED, name, started_at=started, finished_at=finished, reason=reason,
        message=message,
    )  # fmt: skip


def upload_overdue(pod: dict[str, Any], *, now: datetime, limit_seconds: int) -> bool:
    """The command ended longer than ``limit_seconds`` ago and the uploader still runs."""
    if (pod.get("status") or {}).get("phase") != "Running":
        return False
    containers = _containers(pod)
    job_end = _terminated(containers.get(JOB_CONTAINER))
    if job_end is None or UPLOADER_CONTAINER not in containers:
        return False
    if _terminated(containers.get(UPLOADER_CONTAINER)) is not None:
        return False
    ended = parse_time(job_end.get("finishedAt"))
    return ended is not None and now - ended > timedelta(seconds=limit_seconds)
