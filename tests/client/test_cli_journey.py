"""The acceptance story through ``jobartifacts``, as a subprocess against the dev stack.

The dev stack (``devstack``) is what ``make run`` starts: SeaweedFS's S3, Redis, the api
in ``none`` auth mode, the janitor and the controller with the local runtime, so the jobs
here really run through run-job.sh and the uploader. Each test starts its own job; the
README's CLI examples are run as a reader would paste them.
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest
from support.client import HELLO, CliRun, run_cli
from support.devstack import DevStack
from support.journey import SEED_COMMAND

from artifacts_client import Client, JobPhase
from artifacts_shared.layout import job_prefix

pytestmark = pytest.mark.slow

GROUP = "phusers"
"""The dev stack's group, as in the README's quick start (the dev caller is an admin)."""
README = Path(__file__).resolve().parents[2] / "README.md"


def create(devstack: DevStack, command: str) -> str:
    created = run_cli("create", "--group", GROUP, command, api_url=devstack.api_url)
    assert created.returncode == 0, created.stderr
    return created.stdout.strip()


def wait(devstack: DevStack, job_id: str, *args: str) -> CliRun:
    return run_cli("wait", job_id, "--interval", "0.2", *args, api_url=devstack.api_url, timeout=90)


def test_the_journeys_artifacts_are_listed_and_downloaded_with_matching_bytes(
    devstack: DevStack, tmp_path: Path
) -> None:
    job_id = create(devstack, SEED_COMMAND)

    waited = wait(devstack, job_id, "--timeout", "60", "--exit-status")
    table = run_cli("artifacts", job_id, api_url=devstack.api_url)
    listed = run_cli("artifacts", job_id, "--json", api_url=devstack.api_url)
    download = run_cli("download", job_id, "-o", str(tmp_path / "out"), api_url=devstack.api_url)

    assert waited.returncode == 0, waited.stderr
    assert waited.stdout == f"{job_id} Succeeded\n"
    assert [line.split()[:2] for line in table.stdout.splitlines()] == [
        ["PATH", "SIZE"],
        ["sub/test.txt", "6"],
        ["test.txt", "6"],
    ]
    items = json.loads(listed.stdout)
    assert [(item["name"], item["size"]) for item in items] == [
        ("sub/test.txt", 6),
        ("test.txt", 6),
    ]
    assert all(item["sha256"] for item in items)  # the uploader's manifest has them
    assert download.returncode == 0, download.stderr
    assert (tmp_path / "out" / "test.txt").read_bytes() == HELLO
    assert (tmp_path / "out" / "sub" / "test.txt").read_bytes() == HELLO
    assert download.stdout.count("sha256 verified") == 2


def test_an_object_tampered_after_listing_is_caught_and_not_left_behind(
    devstack: DevStack, tmp_path: Path
) -> None:
    job_id = create(devstack, SEED_COMMAND)
    assert wait(devstack, job_id, "--timeout", "60").returncode == 0
    listed = run_cli("artifacts", job_id, api_url=devstack.api_url)
    s3 = devstack.s3_client()
    key = f"{job_prefix(GROUP, job_id)}test.txt"
    s3.put_object(Bucket=devstack.bucket, Key=key, Body=b"HELLO\n")

    result = run_cli("download", job_id, "-o", str(tmp_path), api_url=devstack.api_url)

    assert listed.returncode == 0 and "test.txt" in listed.stdout
    assert result.returncode == 1
    assert re.fullmatch(
        r"jobartifacts: error: test\.txt: sha256 mismatch \(expected [0-9a-f]{12}…, "
        r"got [0-9a-f]{12}…\); the file was not kept \(INTEGRITY_ERROR\)\n",
        result.stderr,
    ), result.stderr
    assert not (tmp_path / "test.txt").exists()
    kept = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert all(path.read_bytes() == HELLO for path in kept)  # only verified files stay
    assert not any(path.name.endswith(".part") for path in kept)


MODES_COMMAND = (
    "mkdir -p artifacts/bin && printf '#!/bin/sh\\necho hi\\n' > artifacts/bin/run.sh"
    " && chmod 755 artifacts/bin/run.sh && echo s > artifacts/secret && chmod 600 artifacts/secret"
    " && cp artifacts/bin/run.sh artifacts/suid.sh && chmod 4755 artifacts/suid.sh"
)
"""A job leaving a 0755 script, a 0600 file and a setuid one."""


def test_a_jobs_file_modes_come_back_through_the_cli_and_the_zip_never_setuid(
    devstack: DevStack, tmp_path: Path
) -> None:
    job_id = create(devstack, MODES_COMMAND)
    assert wait(devstack, job_id, "--timeout", "60", "--exit-status").returncode == 0

    listed = run_cli("artifacts", job_id, "--json", api_url=devstack.api_url)
    download = run_cli("download", job_id, "-o", str(tmp_path / "out"), api_url=devstack.api_url)
    with urllib.request.urlopen(f"{devstack.api_url}/jobs/{job_id}/artifacts.zip") as response:
        archive = zipfile.ZipFile(io.BytesIO(response.read()))

    expected = {"bin/run.sh": 0o755, "secret": 0o600, "suid.sh": 0o755}
    assert {item["name"]: item["mode"] for item in json.loads(listed.stdout)} == {
        name: f"{mode:o}" for name, mode in expected.items()
    }
    assert download.returncode == 0, download.stderr
    on_disk = {name: (tmp_path / "out" / name).stat().st_mode for name in expected}
    assert {name: stat.S_IMODE(mode) for name, mode in on_disk.items()} == expected
    assert subprocess.run([tmp_path / "out" / "bin" / "run.sh"], capture_output=True).stdout == (
        b"hi\n"
    )
    in_zip = {info.filename: info.external_attr >> 16 for info in archive.infolist()}
    assert {name: mode & 0o7777 for name, mode in in_zip.items()} == expected
    assert all(stat.S_ISREG(mode) for mode in in_zip.values())


def test_wait_times_out_cleanly_then_returns_when_the_job_is_cancelled(devstack: DevStack) -> None:
    job_id = create(devstack, "sleep 60")

    started = time.monotonic()
    timed_out = wait(devstack, job_id, "--timeout", "1", "--json")
    took = time.monotonic() - started
    cancelled = run_cli("cancel", job_id, api_url=devstack.api_url)
    ended = wait(devstack, job_id, "--timeout", "30", "--exit-status")

    assert timed_out.returncode == 124
    assert timed_out.stderr.splitlines()[-1] == (
        f"jobartifacts: error: job {job_id} is still {json.loads(timed_out.stdout)['phase']} "
        "after 1 s (TIMEOUT)"
    )
    assert took < 8
    assert cancelled.returncode == 0, cancelled.stderr
    assert ended.returncode == 3 and ended.stdout == f"{job_id} Cancelled\n"


def test_the_library_waits_and_downloads_the_journey_in_parallel(
    devstack: DevStack, tmp_path: Path
) -> None:
    client = Client(devstack.api_url)
    job = client.create_job(SEED_COMMAND, group=GROUP)

    ended = client.wait_job(job, interval=0.2, timeout=60)
    downloads = client.download_artifacts(ended, tmp_path, progress=False)

    assert ended.phase is JobPhase.SUCCEEDED and client.is_done(ended)
    assert [(d.name, d.size, d.verified) for d in downloads] == [
        ("sub/test.txt", 6, "sha256"),
        ("test.txt", 6, "sha256"),
    ]
    assert (tmp_path / "sub" / "test.txt").read_bytes() == HELLO


def readme_cli_examples() -> str:
    """The shell block of the README's CLI section, exactly as a reader copies it."""
    section = README.read_text(encoding="utf-8").split("\n## CLI\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 1
    return str(blocks[0])


def test_the_readme_cli_examples_work_as_written(devstack: DevStack, tmp_path: Path) -> None:
    script = readme_cli_examples()
    commands = [line for line in script.splitlines() if line and not line.startswith("#")]
    bin_dir = Path(sys.executable).parent
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("JOBARTIFACTS_")},
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "JOBARTIFACTS_API_URL": devstack.api_url,
    }

    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert len(commands) == 10 and all(
        c.split()[0] in ("id=$(jobartifacts", "next=$(jobartifacts", "jobartifacts")
        for c in commands
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"job-\d{12}-[a-z0-9]{6} Succeeded", lines[0])
    assert [line.split()[:2] for line in lines[1:4]] == [
        ["PATH", "SIZE"],
        ["sub/test.txt", "6"],
        ["test.txt", "6"],
    ]
    assert (tmp_path / "results" / "test.txt").read_bytes() == HELLO
    assert (tmp_path / "results" / "sub" / "test.txt").read_bytes() == HELLO
    # Step 4, the job's log: the seed job prints nothing itself; the collection does.
    log = lines[6:-4]
    assert 0 < len(log) <= 20
    assert any(line.startswith("artifacts: ") for line in log), log  # run-job.sh's lines
    # Step 5, a job that read the first one's sub/ folder as its input: its own artifact.
    job_id = lines[0].split()[0]
    next_id, phase = lines[-4].split()
    assert phase == "Succeeded"
    consumer = Client(devstack.api_url)
    assert [item.job_id for item in consumer.job(next_id).inputs] == [job_id]
    consumer.download_artifacts(next_id, tmp_path / "next", progress=False)
    assert (tmp_path / "next" / "test.txt").read_bytes() == HELLO
    # Step 6, its retention: extended a week, kept, then deleted.
    assert re.fullmatch(rf"{job_id} EXPIRES: extended by dev on .+: expires on .+", lines[-3])
    assert re.fullmatch(rf"{job_id} KEPT: kept by dev on \d+ \w+", lines[-2])
    assert lines[-1] == f"{job_id} artifacts deleted"


def test_cleanup_waits_for_the_janitors_result(devstack: DevStack) -> None:
    wait_for = ("--wait", "--interval", "0.2", "--timeout", "30", "--json")

    result = run_cli("cleanup", *wait_for, api_url=devstack.api_url, timeout=60)

    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)
    assert run["id"].startswith("cleanup-") and run["state"] == "COMPLETE"
    assert run["result"]["outcome"] in ("completed", "skipped")
    assert run["result"]["folders_failed"] == 0
