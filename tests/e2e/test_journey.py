"""The acceptance story of ARCHITECTURE section 1, through GraphQL, on the `make run` stack."""

from __future__ import annotations

import hashlib
import time
import urllib.request
from datetime import UTC, datetime

import pytest
from support.devstack import DevStack
from support.journey import SEED_COMMAND, artifact, create_job, graphql, wait_finished

pytestmark = pytest.mark.slow


def _bucket_keys(stack: DevStack, prefix: str) -> list[str]:
    response = stack.s3_client().list_objects_v2(Bucket=stack.bucket, Prefix=prefix)
    return [item["Key"] for item in response.get("Contents", [])]


def _download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        body: bytes = response.read()
        return body


def test_the_seed_journey_lists_downloads_and_expires_its_artifacts(devstack: DevStack) -> None:
    started = time.monotonic()
    job_id = create_job(devstack.api_url, SEED_COMMAND, retention=4)
    assert wait_finished(devstack.api_url, job_id)["phase"] == "Succeeded"

    listed = artifact(devstack.api_url, job_id)
    assert listed is not None
    items = {item["name"]: item for item in listed["items"]}
    assert sorted(items) == ["sub/test.txt", "test.txt"]
    assert listed["fileCount"] == 2 and listed["totalSize"] == 12
    for item in items.values():
        assert item["size"] == 6
        assert item["sha256"] == hashlib.sha256(b"hello\n").hexdigest()
        assert _download(item["downloadUrl"]) == b"hello\n"
    expired_at = datetime.fromisoformat(listed["expiredAt"].replace("Z", "+00:00"))
    # PrimeHub's form: no trailing slash (its clients join f"{prefix}/{name}").
    prefix = listed["prefix"] + "/"
    assert _bucket_keys(devstack, prefix)

    # Past the expiry, an admin asks for the cleanup and waits for the run to finish.
    time.sleep(max(0.0, (expired_at - datetime.now(UTC)).total_seconds()) + 1.5)
    run_id = graphql(devstack.api_url, "mutation { cleanupPhJobArtifact }")["cleanupPhJobArtifact"]
    deadline = time.monotonic() + 60
    while True:
        run = graphql(
            devstack.api_url,
            "query($id: ID!) { phJobArtifactCleanup(id: $id) { state error "
            "result { foldersDeleted deleted } } }",
            id=run_id,
        )["phJobArtifactCleanup"]
        if run["state"] in {"COMPLETE", "FAILED"}:
            break
        assert time.monotonic() < deadline, run
        time.sleep(0.3)
    assert run["state"] == "COMPLETE", run
    assert prefix in run["result"]["deleted"]

    after = artifact(devstack.api_url, job_id)
    assert after is not None and after["items"] == []  # never null, now empty
    assert _bucket_keys(devstack, prefix) == []
    print(f"journey wall time: {time.monotonic() - started:.1f} s")


def test_a_failed_job_still_shows_its_artifacts(devstack: DevStack) -> None:
    job_id = create_job(
        devstack.api_url, 'mkdir -p artifacts; echo "partial" > artifacts/log.txt; exit 3'
    )
    job = wait_finished(devstack.api_url, job_id)
    assert job["phase"] == "Failed"
    listed = artifact(devstack.api_url, job_id)
    assert listed is not None
    [item] = listed["items"]
    assert (item["name"], item["size"]) == ("log.txt", 8)
    assert _download(item["downloadUrl"]) == b"partial\n"


def test_a_file_named_with_a_newline_and_unicode_is_collected_listed_and_downloaded(
    devstack: DevStack,
) -> None:
    name = "new\nline ünï.txt"
    job_id = create_job(
        devstack.api_url,
        "mkdir -p artifacts; printf 'odd\\n' > \"artifacts/$(printf 'new\\nline ünï.txt')\"",
    )
    assert wait_finished(devstack.api_url, job_id)["phase"] == "Succeeded"

    listed = artifact(devstack.api_url, job_id)

    assert listed is not None
    [item] = listed["items"]
    assert (item["name"], item["size"]) == (name, 4)
    assert item["sha256"] == hashlib.sha256(b"odd\n").hexdigest()
    assert _download(item["downloadUrl"]) == b"odd\n"
    folder = listed["prefix"].rstrip("/") + "/"
    assert _bucket_keys(devstack, folder) == [
        f"{folder}.primehub/metadata/expiredAt",
        f"{folder}.primehub/metadata/job.log",  # the job's log, kept with its artifacts
        f"{folder}.primehub/metadata/manifest.json",
        f"{folder}{name}",
    ]
