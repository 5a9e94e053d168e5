"""``jobartifacts`` as a subprocess against the real api: tables, --json, exit codes, messages."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from support.api import add_job
from support.client import GROUP, HELLO, JOB, JOURNEY, Bucket, ThreadedApi, run_cli

from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.layout import job_prefix
from artifacts_shared.phjob import PhJobPhase, PhJobStatus


def journey(store: LocalJobStore, bucket: Bucket) -> None:
    add_job(store, JOB)
    bucket.put_artifacts(JOB, JOURNEY)


def test_artifacts_prints_a_table_of_path_size_and_modified(
    api: ThreadedApi, store: LocalJobStore, bucket: Bucket
) -> None:
    journey(store, bucket)

    result = run_cli("artifacts", JOB, api_url=api.url)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["PATH", "SIZE", "MODIFIED"]
    rows = [line.split() for line in lines[1:]]
    assert [row[:2] for row in rows] == [["sub/test.txt", "6"], ["test.txt", "6"]]
    assert all(row[2].endswith("Z") and len(row[2]) == len("2024-01-01T00:00:00Z") for row in rows)
    assert result.stderr == ""


def test_download_writes_the_journeys_files_with_their_bytes_and_reports_json(
    api: ThreadedApi, store: LocalJobStore, bucket: Bucket, tmp_path: Path
) -> None:
    journey(store, bucket)
    out = tmp_path / "results"

    result = run_cli("download", JOB, "-o", str(out), "--json", api_url=api.url)

    assert result.returncode == 0, result.stderr
    assert (out / "test.txt").read_bytes() == HELLO
    assert (out / "sub" / "test.txt").read_bytes() == HELLO
    report = json.loads(result.stdout)
    assert [(d["name"], d["size"], d["verified"]) for d in report] == [
        ("sub/test.txt", 6, "sha256"),
        ("test.txt", 6, "sha256"),
    ]
    assert "downloading" not in result.stderr  # no progress bar when stderr is not a terminal


def test_download_of_named_files_with_a_forced_progress_bar(
    api: ThreadedApi, store: LocalJobStore, bucket: Bucket, tmp_path: Path
) -> None:
    journey(store, bucket)

    result = run_cli("download", JOB, "sub/test.txt", "--progress", api_url=api.url, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"sub/test.txt -> {Path('sub/test.txt')} (6 B, sha256 verified)\n"
    assert result.stderr.split("\r")[-1].startswith("downloading 1/1 files")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["sub", "test.txt"]


def test_a_tampered_object_fails_the_download_with_one_line_and_leaves_no_file(
    api: ThreadedApi, store: LocalJobStore, bucket: Bucket, tmp_path: Path
) -> None:
    journey(store, bucket)
    listed = run_cli("artifacts", JOB, api_url=api.url)
    bucket.put(f"{job_prefix(GROUP, JOB)}sub/test.txt", b"hullo\n")

    result = run_cli("download", JOB, "sub/test.txt", "-o", str(tmp_path), api_url=api.url)

    assert listed.returncode == 0
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("jobartifacts: error: sub/test.txt: sha256 mismatch")
    assert result.stderr.rstrip().endswith("the file was not kept (INTEGRITY_ERROR)")
    assert list(tmp_path.rglob("*")) in ([], [tmp_path / "sub"])
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_download_refuses_to_overwrite_and_exits_1_unless_asked(
    api: ThreadedApi, store: LocalJobStore, bucket: Bucket, tmp_path: Path
) -> None:
    journey(store, bucket)
    (tmp_path / "test.txt").write_text("mine")

    refused = run_cli("download", JOB, "-o", str(tmp_path), api_url=api.url)
    forced = run_cli("download", JOB, "-o", str(tmp_path), "--overwrite", api_url=api.url)

    assert refused.returncode == 1
    assert refused.stderr == (
        f"jobartifacts: error: {tmp_path / 'test.txt'} exist; pass overwrite=True "
        "(--overwrite) to replace (FILE_EXISTS)\n"
    )
    assert forced.returncode == 0, forced.stderr
    assert (tmp_path / "test.txt").read_bytes() == HELLO


def test_wait_returns_when_the_job_ends(
    api: ThreadedApi, store: LocalJobStore, bucket: Bucket
) -> None:
    add_job(store, JOB, phase=PhJobPhase.RUNNING)

    def finish() -> None:
        time.sleep(3.0)  # after the CLI's first answer (Running), even on a busy machine
        store.write_status(JOB, PhJobStatus(phase=PhJobPhase.FAILED))

    finisher = threading.Thread(target=finish)
    finisher.start()
    result = run_cli("wait", JOB, "--interval", "0.1", "--timeout", "20", api_url=api.url)
    strict = run_cli("wait", JOB, "--exit-status", "--json", api_url=api.url)
    finisher.join()

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{JOB} Failed\n"
    assert result.stderr == f"jobartifacts: {JOB}: Running\njobartifacts: {JOB}: Failed\n"
    assert strict.returncode == 3
    assert json.loads(strict.stdout)["phase"] == "Failed"


def test_wait_times_out_cleanly_with_exit_code_124(api: ThreadedApi, store: LocalJobStore) -> None:
    add_job(store, JOB, phase=PhJobPhase.RUNNING)

    started = time.monotonic()
    result = run_cli("wait", JOB, "--interval", "0.2", "--timeout", "1", "-q", api_url=api.url)
    took = time.monotonic() - started

    assert result.returncode == 124
    assert result.stdout == ""
    assert result.stderr == f"jobartifacts: error: job {JOB} is still Running after 1 s (TIMEOUT)\n"
    assert took < 10


def test_jobs_job_and_artifacts_print_json_documents(
    api: ThreadedApi, store: LocalJobStore, bucket: Bucket
) -> None:
    journey(store, bucket)

    jobs = run_cli("--json", "jobs", api_url=api.url)
    job = run_cli("job", JOB, "--json", api_url=api.url)
    artifacts = run_cli("artifacts", "--json", JOB, api_url=api.url)

    assert [entry["id"] for entry in json.loads(jobs.stdout)] == [JOB]
    assert json.loads(job.stdout)["phase"] == "Succeeded"
    assert json.loads(job.stdout)["group_name"] == GROUP
    items = json.loads(artifacts.stdout)
    assert [(i["name"], i["size"]) for i in items] == [("sub/test.txt", 6), ("test.txt", 6)]
    assert all(len(i["sha256"]) == 64 and i["download_url"].startswith("http") for i in items)


def test_jobs_and_job_print_a_table_and_fields_for_people(
    api: ThreadedApi, store: LocalJobStore
) -> None:
    add_job(store, JOB)

    jobs = run_cli("jobs", "--group", GROUP, api_url=api.url)
    job = run_cli("job", JOB, api_url=api.url)

    assert jobs.stdout.splitlines()[0].split() == ["ID", "PHASE", "GROUP", "CREATED", "NAME"]
    assert jobs.stdout.splitlines()[1].split()[:3] == [JOB, "Succeeded", GROUP]
    assert f"id:       {JOB}\n" in job.stdout and "phase:    Succeeded\n" in job.stdout


def test_create_prints_only_the_new_id_and_cancel_marks_it(
    api: ThreadedApi, store: LocalJobStore
) -> None:
    created = run_cli("create", "--group", GROUP, "echo hi > artifacts/a.txt", api_url=api.url)
    job_id = created.stdout.strip()
    cancelled = run_cli("cancel", job_id, api_url=api.url)

    assert created.returncode == 0, created.stderr
    assert created.stdout == f"{job_id}\n" and job_id.startswith("job-")
    assert store.get(job_id).spec.command == "echo hi > artifacts/a.txt"
    assert cancelled.stdout == f"{job_id} Pending (cancel requested)\n"
    assert store.get(job_id).spec.cancel


def test_api_errors_are_one_line_with_the_code_and_never_show_the_token(
    secured_api: ThreadedApi, store: LocalJobStore
) -> None:
    add_job(store, JOB, group="team-b")
    secret = "not-a-valid-token-but-still-secret"

    unknown = run_cli("job", "job-209901010000-zzzzzz", "--token", secret, api_url=secured_api.url)
    from_env = run_cli(
        "artifacts", JOB, api_url=secured_api.url, env={"JOBARTIFACTS_TOKEN": secret}
    )

    for result in (unknown, from_env):
        assert result.returncode == 1
        assert result.stderr.count("\n") == 1
        assert result.stderr.startswith("jobartifacts: error: ")
        assert result.stderr.rstrip().endswith("(UNAUTHENTICATED)")
        assert secret not in result.stdout + result.stderr


def test_an_unreachable_api_and_bad_settings_fail_with_one_line(tmp_path: Path) -> None:
    down = run_cli("jobs", api_url="http://127.0.0.1:9")
    bad_url = run_cli("jobs", "--api-url", "localhost:8080")
    no_file = run_cli("jobs", "--token-file", str(tmp_path / "missing"))

    assert down.returncode == 1
    assert down.stderr == (
        "jobartifacts: error: cannot reach the API at http://127.0.0.1:9/graphql: "
        "connection refused (CONNECTION_FAILED)\n"
    )
    assert bad_url.returncode == 2 and "must be http(s)://host[:port]" in bad_url.stderr
    assert no_file.returncode == 2 and "cannot read the token file" in no_file.stderr


def test_help_names_every_command_the_environment_and_exit_codes() -> None:
    main = run_cli("--help")
    download = run_cli("download", "--help")
    usage = run_cli("download")

    assert main.returncode == 0
    for word in ("jobs", "job", "wait", "artifacts", "download", "cleanup", "create", "cancel"):
        assert f"\n    {word} " in main.stdout
    assert "JOBARTIFACTS_API_URL" in main.stdout and "JOBARTIFACTS_TOKEN" in main.stdout
    assert "124 --timeout expired" in main.stdout
    assert "--overwrite" in download.stdout and "-o DIR, --output DIR" in download.stdout
    assert usage.returncode == 2 and "the following arguments are required: ID" in usage.stderr


def test_cleanup_starts_a_run_for_an_admin_and_refuses_a_member(
    api: ThreadedApi, secured_api: ThreadedApi, alice: str
) -> None:
    started = run_cli("cleanup", "--json", api_url=api.url)
    waited = run_cli("cleanup", "--wait", "--interval", "0.1", "--timeout", "0.5", api_url=api.url)
    refused = run_cli("cleanup", api_url=secured_api.url, env={"JOBARTIFACTS_TOKEN": alice})

    run = json.loads(started.stdout)
    assert started.returncode == 0, started.stderr
    assert run["id"].startswith("cleanup-") and run["state"] == "QUEUED" and run["result"] is None
    # No janitor serves this queue: the run stays queued and waiting for it times out.
    assert waited.returncode == 124
    assert waited.stderr == (
        f"jobartifacts: error: cleanup run {run['id']} is still QUEUED after 0.5 s (TIMEOUT)\n"
    )
    assert refused.returncode == 1 and refused.stderr.rstrip().endswith("(FORBIDDEN)")


def test_create_with_inputs_records_each_job_and_path_and_job_shows_them(
    api: ThreadedApi, store: LocalJobStore, bucket: Bucket
) -> None:
    journey(store, bucket)
    created = run_cli(
        "create", "--group", GROUP, "--input", f"{JOB}:sub", "--input", f"{JOB}:test.txt",
        "cat inputs/*/sub/test.txt", api_url=api.url,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    job_id = created.stdout.strip()
    recorded = store.get(job_id).spec.input_artifacts or ()
    assert [(item.job_id, item.path, item.file_count) for item in recorded] == [
        (JOB, "sub", 1),
        (JOB, "test.txt", 1),
    ]
    shown = run_cli("job", job_id, api_url=api.url)
    assert f"input:    {JOB}:sub\n" in shown.stdout
    assert f"input:    {JOB}:test.txt\n" in shown.stdout


def test_create_with_a_hostile_input_path_fails_with_one_line_and_creates_nothing(
    api: ThreadedApi, store: LocalJobStore, bucket: Bucket
) -> None:
    journey(store, bucket)
    refused = run_cli(
        "create", "--group", GROUP, "--input", f"{JOB}:../../etc", "true", api_url=api.url
    )
    empty = run_cli("create", "--group", GROUP, "--input", ":sub", "true", api_url=api.url)

    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1
    assert "BAD_USER_INPUT" in refused.stderr and "inputArtifacts[0].path" in refused.stderr
    assert empty.returncode == 2  # argparse: the flag's value names no job
    assert "names no job: expected JOB or JOB:PATH" in empty.stderr
    assert [job.id for job in store.list()] == [JOB]
