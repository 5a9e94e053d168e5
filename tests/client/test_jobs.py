"""The library's job calls against the real api: listing, one job, waiting, create, cancel."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from support.api import add_job
from support.client import GROUP, JOB, Bucket, ThreadedApi

from artifacts_client import Client, InputArtifact, JobPhase, WaitTimeout
from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.phjob import PhJobPhase, PhJobStatus

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


def job_id(n: int) -> str:
    return f"job-202401010000-{n:06d}"


def test_jobs_lists_the_newest_first_up_to_the_limit_and_filters_by_group(
    api: ThreadedApi, store: LocalJobStore
) -> None:
    for n in range(5):
        add_job(
            store,
            job_id(n),
            group="team-a" if n % 2 else "team-b",
            created=EPOCH + timedelta(minutes=n),
        )
    client = Client(api.url)

    newest = client.jobs(limit=3)
    team_a = client.jobs(group="team-a")

    assert [job.id for job in newest] == [job_id(4), job_id(3), job_id(2)]
    assert [job.id for job in team_a] == [job_id(3), job_id(1)]
    assert {job.group_name for job in team_a} == {"team-a"}


def test_jobs_reads_page_after_page_past_the_apis_largest_page(
    api: ThreadedApi, store: LocalJobStore
) -> None:
    for n in range(230):
        add_job(store, job_id(n), created=EPOCH + timedelta(seconds=n))

    jobs = Client(api.url).jobs(limit=225)

    assert len(jobs) == 225
    assert len({job.id for job in jobs}) == 225
    assert jobs[0].id == job_id(229) and jobs[-1].id == job_id(5)


def test_job_is_a_typed_snapshot_of_the_api_answer(api: ThreadedApi, store: LocalJobStore) -> None:
    add_job(store, JOB, phase=PhJobPhase.RUNNING, created=EPOCH)

    job = Client(api.url).job(JOB)

    assert job.id == JOB
    assert job.phase is JobPhase.RUNNING and not job.done
    assert job.group_name == GROUP and job.user_name == "alice"
    assert job.create_time == EPOCH
    assert job.to_json()["create_time"] == "2024-01-01T00:00:00Z"
    assert job.to_json()["phase"] == "Running"


def test_is_done_judges_a_snapshot_as_it_was_and_looks_an_id_up(
    api: ThreadedApi, store: LocalJobStore
) -> None:
    add_job(store, JOB, phase=PhJobPhase.RUNNING)
    client = Client(api.url)
    snapshot = client.job(JOB)

    store.write_status(JOB, PhJobStatus(phase=PhJobPhase.FAILED))

    assert client.is_done(snapshot) is False
    assert client.is_done(JOB) is True


def finish_later(store: LocalJobStore, delay: float, phase: PhJobPhase) -> threading.Thread:
    def finish() -> None:
        time.sleep(delay)
        store.write_status(JOB, PhJobStatus(phase=phase))

    thread = threading.Thread(target=finish)
    thread.start()
    return thread


def test_wait_job_returns_the_ended_job_soon_after_it_ends(
    api: ThreadedApi, store: LocalJobStore
) -> None:
    add_job(store, JOB, phase=PhJobPhase.RUNNING)
    seen: list[JobPhase] = []
    finisher = finish_later(store, 0.5, PhJobPhase.SUCCEEDED)

    started = time.monotonic()
    job = Client(api.url).wait_job(
        JOB, interval=0.1, timeout=20, on_change=lambda j: seen.append(j.phase)
    )
    waited = time.monotonic() - started
    finisher.join()

    assert job.phase is JobPhase.SUCCEEDED and job.done
    assert seen == [JobPhase.RUNNING, JobPhase.SUCCEEDED]
    assert 0.4 < waited < 5


def test_wait_job_times_out_with_the_job_as_last_seen(
    api: ThreadedApi, store: LocalJobStore
) -> None:
    add_job(store, JOB, phase=PhJobPhase.RUNNING)

    started = time.monotonic()
    with pytest.raises(WaitTimeout) as raised:
        Client(api.url).wait_job(JOB, interval=0.1, timeout=0.5)
    waited = time.monotonic() - started

    assert raised.value.code == "TIMEOUT"
    assert raised.value.last.phase is JobPhase.RUNNING
    assert "still Running after 0.5 s" in raised.value.message
    assert 0.5 <= waited < 3


def test_create_job_submits_the_command_and_cancel_job_marks_it(
    api: ThreadedApi, store: LocalJobStore
) -> None:
    client = Client(api.url)
    command = 'mkdir -p artifacts/sub; echo "hello" > artifacts/test.txt'

    created = client.create_job(command, group=GROUP, retention_seconds=3600)
    cancelled = client.cancel_job(created)

    stored = store.get(created.id)
    assert created.id.startswith("job-") and created.phase is JobPhase.PENDING
    assert stored.spec.command == command
    assert stored.spec.display_name == command
    assert stored.spec.group_name == GROUP
    assert stored.spec.artifact is not None and stored.spec.artifact.retention_seconds == 3600
    assert cancelled.cancel_requested and stored.spec.cancel


def test_create_job_with_inputs_returns_what_the_api_resolved(
    api: ThreadedApi, store: LocalJobStore, bucket: Bucket
) -> None:
    add_job(store, JOB)
    bucket.put_artifacts(JOB, {"test.txt": b"hello\n", "sub/test.txt": b"hello\n"})

    created = Client(api.url).create_job(
        "cat inputs/*/sub/test.txt",
        group=GROUP,
        inputs=[f"{JOB}:sub", InputArtifact(JOB, "test.txt")],
    )

    assert created.inputs == (
        InputArtifact(JOB, "sub", file_count=1, total_size=6),
        InputArtifact(JOB, "test.txt", file_count=1, total_size=6),
    )
    assert created.to_json()["inputs"][0] == {
        "job_id": JOB,
        "path": "sub",
        "file_count": 1,
        "total_size": 6,
    }
