from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from artifacts_shared.jobstore import JobExistsError, JobNotFoundError, LocalJobStore
from artifacts_shared.phjob import (
    ArtifactOverrides,
    PhJob,
    PhJobMetadata,
    PhJobPhase,
    PhJobSpec,
    PhJobStatus,
    is_job_id,
    new_job_id,
)


def _job(job_id: str | None = None, **spec: object) -> PhJob:
    return PhJob(
        metadata=PhJobMetadata(name=job_id or new_job_id()),
        spec=PhJobSpec(display_name="seed", group_name="ML_Team", command="echo hi", **spec),
    )


def test_job_ids_look_like_primehubs() -> None:
    job_id = new_job_id(datetime(2020, 9, 25, 1, 53, tzinfo=UTC))
    assert job_id.startswith("job-202009250153-") and is_job_id(job_id)
    assert is_job_id("job-202009250153-34s0ti")
    for bad in ("job-2020-34s0ti", "../job-202009250153-34s0ti", "job-202009250153-34S0TI", ""):
        assert not is_job_id(bad)


def test_kubernetes_documents_round_trip_in_camel_case() -> None:
    document = {
        "apiVersion": "primehub.io/v1alpha1",
        "kind": "PhJob",
        "metadata": {
            "name": "job-202009250153-34s0ti",
            "namespace": "hub",
            "resourceVersion": "7",
            "managedFields": [{"ignored": True}],
        },
        "spec": {
            "displayName": "seed",
            "groupName": "ML_Team",
            "command": "echo hi",
            "activeDeadlineSeconds": 60,
            "artifact": {"retentionSeconds": 0},
        },
        "status": {
            "phase": "Running",
            "podName": "job-202009250153-34s0ti",
            "startTime": "2026-11-23T01:02:03Z",
        },
    }
    job = PhJob.from_k8s(document)
    assert job.id == "job-202009250153-34s0ti"
    assert job.spec.artifact == ArtifactOverrides(retention_seconds=0)
    assert job.status.phase is PhJobPhase.RUNNING and not job.status.finished
    again = job.to_k8s()
    assert again["spec"]["activeDeadlineSeconds"] == 60
    assert again["status"]["startTime"] == "2026-11-23T01:02:03Z"
    assert "managedFields" not in again["metadata"]


def test_local_store_keeps_spec_and_status_apart(tmp_path: Path) -> None:
    store = LocalJobStore(tmp_path / "jobs")
    job = store.create(_job())
    assert store.get(job.id).status.phase is PhJobPhase.PENDING
    store.write_status(job.id, PhJobStatus(phase=PhJobPhase.RUNNING, pod_name="p"))
    store.request_cancel(job.id)
    # The cancel did not overwrite the status, and the status write did not lose the cancel.
    stored = store.get(job.id)
    assert stored.spec.cancel and stored.status.phase is PhJobPhase.RUNNING
    assert stored.metadata.creation_timestamp is not None
    assert sorted(p.name for p in (tmp_path / "jobs" / job.id).iterdir()) == [
        "spec.json",
        "status.json",
    ]


def test_local_store_lists_newest_first_and_refuses_duplicates(tmp_path: Path) -> None:
    store = LocalJobStore(tmp_path)
    older = store.create(_job("job-202001010000-aaaaaa"))
    newer = store.create(_job("job-202101010000-bbbbbb"))
    assert [job.id for job in store.list()] == [newer.id, older.id]
    with pytest.raises(JobExistsError):
        store.create(_job(older.id))


@pytest.mark.parametrize("job_id", ["../etc", "job-x", "job-202009250153-missing"])
def test_local_store_refuses_unknown_and_malformed_ids(tmp_path: Path, job_id: str) -> None:
    store = LocalJobStore(tmp_path)
    with pytest.raises(JobNotFoundError):
        store.get(job_id)
    with pytest.raises(JobNotFoundError):
        store.write_status(job_id, PhJobStatus())
