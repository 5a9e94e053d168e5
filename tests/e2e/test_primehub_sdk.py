"""PrimeHub's Python SDK 0.4.2, unchanged, against the `make run` stack.

Its ``primehub`` CLI is what PrimeHub users already script with: every command posts a form
(``query`` and JSON-string ``variables``) with a bearer token, resolves the group through
``me.effectiveGroups``, and downloads artifacts through ``files`` and ``/api/files/...``.
The dev stack's user ``dev`` is in the group ``phusers`` (``API_DEV_GROUPS``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.devstack import DevStack
from support.journey import SEED_COMMAND
from support.primehub_sdk import PrimeHubCli, install_sdk

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
PHJOB_FIELDS = {
    "id", "displayName", "cancel", "command", "groupId", "groupName", "recurrence", "image",
    "instanceType", "userId", "userName", "phase", "reason", "message", "createTime",
    "startTime", "finishTime",
}  # fmt: skip
"""What the SDK's job commands print (it renames ``schedule`` to ``recurrence``)."""


@pytest.fixture(scope="module")
def primehub(devstack: DevStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrimeHubCli]:
    yield PrimeHubCli(
        executable=install_sdk(HERE / "primehub-sdk.txt"),
        endpoint=f"{devstack.api_url}/graphql",
        group="phusers",
        home=tmp_path_factory.mktemp("primehub-home"),
    )


def _submit(primehub: PrimeHubCli, command: str, **extra: Any) -> dict[str, Any]:
    config = {
        "instanceType": "cpu-1",
        "image": "base-notebook",
        "displayName": "from the sdk",
        "command": command,
        **extra,
    }
    job: dict[str, Any] = primehub.json("jobs", "submit", stdin=json.dumps(config))
    return job


def test_me_names_the_user_and_its_group(primehub: PrimeHubCli) -> None:
    me = primehub.json("me")

    assert me == {
        "id": "dev",
        "username": "dev",
        "firstName": None,
        "lastName": None,
        "email": None,
        "isAdmin": True,
    }


def test_instancetypes_list_shows_the_presets_of_the_group(primehub: PrimeHubCli) -> None:
    listed = primehub.json("instancetypes", "list")

    by_name = {preset["name"]: preset for preset in listed}
    assert sorted(by_name) == ["cpu-1", "cpu-2"]
    assert by_name["cpu-1"] == {
        "name": "cpu-1",
        "displayName": "CPU 1",
        "description": "1 CPU, 1 GB memory",
        "cpuRequest": None,
        "cpuLimit": 1,
        "memoryRequest": None,
        "memoryLimit": 1,
        "gpuLimit": 0,
        "global": True,
    }


def test_submit_wait_get_list_and_download_the_seed_jobs_artifacts(
    primehub: PrimeHubCli, tmp_path: Path
) -> None:
    submitted = _submit(primehub, SEED_COMMAND, activeDeadlineSeconds=600)
    job_id = submitted["id"]
    assert set(submitted) == PHJOB_FIELDS
    assert submitted["groupName"] == submitted["groupId"] == "phusers"
    assert submitted["instanceType"]["name"] == "cpu-1"
    assert submitted["userName"] == "dev" and submitted["recurrence"] is None

    waited = primehub.json("jobs", "wait", job_id, "--timeout", "120")
    got = primehub.json("jobs", "get", job_id)
    listed = primehub.json("jobs", "list")
    artifacts = primehub.json("jobs", "list-artifacts", job_id)
    dest = tmp_path / "downloaded"
    dest.mkdir()
    primehub.run("jobs", "download-artifacts", job_id, "/", str(dest), "--recursive")

    assert waited["phase"] == got["phase"] == "Succeeded", waited
    assert got["instanceType"] == {
        "id": "cpu-1",
        "name": "cpu-1",
        "displayName": "CPU 1",
        "cpuLimit": 1,
        "memoryLimit": 1,
        "gpuLimit": 0,
    }
    assert job_id in [job["id"] for job in listed]
    assert sorted(item["name"] for item in artifacts) == ["sub/test.txt", "test.txt"]
    assert all(item["size"] == 6 for item in artifacts)
    # The SDK keeps the job's folder name: <dest>/<job id>/...
    files = sorted(str(path.relative_to(dest)) for path in dest.rglob("*") if path.is_file())
    assert files == [f"{job_id}/sub/test.txt", f"{job_id}/test.txt"]
    assert (dest / job_id / "test.txt").read_bytes() == b"hello\n"
    assert (dest / job_id / "sub" / "test.txt").read_bytes() == b"hello\n"


def test_cancel_stops_a_running_job_and_rerun_starts_a_new_one_like_it(
    primehub: PrimeHubCli,
) -> None:
    job_id = _submit(primehub, "sleep 300")["id"]
    deadline = time.monotonic() + 60
    while primehub.json("jobs", "get", job_id)["phase"] != "Running":
        assert time.monotonic() < deadline, "the job did not start"
        time.sleep(0.5)

    cancelled = primehub.json("jobs", "cancel", job_id)
    rerun = primehub.json("jobs", "rerun", job_id)
    rerun_cancelled = primehub.json("jobs", "cancel", rerun["id"])

    assert cancelled["id"] == job_id and cancelled["cancel"] is True
    assert primehub.json("jobs", "wait", job_id, "--timeout", "60")["phase"] == "Cancelled"
    assert rerun["id"] != job_id and set(rerun) >= PHJOB_FIELDS - {"recurrence"}
    assert (rerun["displayName"], rerun["command"], rerun["groupId"]) == (
        "from the sdk",
        "sleep 300",
        "phusers",
    )
    assert rerun["instanceType"]["name"] == "cpu-1"
    assert rerun_cancelled["cancel"] is True


def test_logs_follow_a_running_job_to_its_end_and_tail_its_last_lines(
    primehub: PrimeHubCli,
) -> None:
    command = 'for i in 1 2 3 4 5; do echo "line $i"; sleep 0.4; done'
    job_id = _submit(primehub, command)["id"]

    # ``jobs logs --follow`` starts while the job prints and returns once it has ended.
    followed = primehub.run("jobs", "logs", job_id, "--follow", timeout=120)
    phase = primehub.json("jobs", "get", job_id)["phase"]
    last = primehub.run("jobs", "logs", job_id, "--tail", "1")
    whole = primehub.run("jobs", "logs", job_id, "--tail", "1000")

    assert phase == "Succeeded"
    lines = [line for line in followed.splitlines() if line.startswith("line ")]
    assert lines == [f"line {i}" for i in range(1, 6)], followed
    assert len(last.splitlines()) == 1 and last.splitlines() == whole.splitlines()[-1:]
    assert [line for line in whole.splitlines() if line.startswith("line ")] == lines


def test_the_sdk_says_not_found_for_an_unknown_job_and_shows_other_errors(
    primehub: PrimeHubCli,
) -> None:
    missing = primehub.call("jobs", "get", "job-202001010000-nosuch")
    refused = primehub.call(
        "jobs", "submit", stdin=json.dumps({"instanceType": "gpu-99", "image": "x",
                                            "displayName": "x", "command": "true"}),
    )  # fmt: skip

    # The SDK recognises PrimeHub's Kubernetes wording and prints its own sentence.
    assert missing.returncode == 1
    assert 'Cannot find resource type "job" with [id: job-202001010000-nosuch]' in missing.stderr
    assert refused.returncode == 1
    assert "there is no instance type 'gpu-99'" in refused.stderr
