"""Job logs on the dev stack: real jobs run by the local runtime through run-job.sh.

The log is what the job printed on stdout and stderr, in order, then the collection's own
lines; ``follow`` receives lines while the job runs and ends when it has ended; PrimeHub's
SDK reads it through ``logEndpoint`` exactly as it reads PrimeHub's.
"""

from __future__ import annotations

import shutil
import time
import urllib.error
import urllib.request

import pytest
from primehub.utils.http_client import Client as PrimeHubHttp
from support.devstack import DevStack
from support.journey import create_job, graphql, wait_finished

from artifacts_shared.expiry import parse_expired_at
from artifacts_shared.layout import expired_at_key, job_log_key, job_prefix, manifest_key
from artifacts_shared.manifest import Manifest

TICKS = 'for i in $(seq 1 8); do echo "tick $i"; sleep 0.3; done; echo "oops" >&2; exit 3'


def read(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        body: bytes = response.read()
    return body


@pytest.mark.slow
def test_follow_receives_a_running_jobs_lines_and_ends_when_it_ends(devstack: DevStack) -> None:
    job_id = create_job(devstack.api_url, TICKS)
    arrivals: list[tuple[float, bytes]] = []

    with urllib.request.urlopen(
        f"{devstack.api_url}/jobs/{job_id}/logs?follow=true", timeout=60
    ) as response:
        for line in response:
            arrivals.append((time.monotonic(), line))
    job = wait_finished(devstack.api_url, job_id)

    lines = [line for _, line in arrivals]
    assert lines[:9] == [f"tick {i}\n".encode() for i in range(1, 9)] + [b"oops\n"]
    assert job["phase"] == "Failed"
    # The collection's lines (run-job.sh's) come after the job's own.
    assert any(b"artifacts" in line for line in lines[9:]), lines
    # Lines came as they were written (about 0.3 s apart), not all at the end.
    assert arrivals[7][0] - arrivals[0][0] > 1.0
    # The whole log read afterwards is what the stream delivered.
    assert read(f"{devstack.api_url}/jobs/{job_id}/logs") == b"".join(lines)


@pytest.mark.slow
def test_primehubs_sdk_reads_the_log_through_log_endpoint(devstack: DevStack) -> None:
    job_id = create_job(devstack.api_url, 'for i in 1 2 3 4 5; do echo "line $i"; done')
    wait_finished(devstack.api_url, job_id)
    endpoint = graphql(
        devstack.api_url, "query ($id: ID!) { phJob(where: {id: $id}) { logEndpoint } }", id=job_id
    )["phJob"]["logEndpoint"]

    class Config:
        api_token = "unused-in-this-stack"  # API_AUTH_MODE=none; sent as Authorization

    sdk = PrimeHubHttp(Config())
    whole = b"".join(sdk.request_logs(endpoint, False, 0))
    followed = b"".join(sdk.request_logs(endpoint, True, 0))
    tailed = b"".join(sdk.request_logs(endpoint, False, 10))  # the SDK's default --tail

    assert whole.startswith(b"line 1\nline 2\nline 3\nline 4\nline 5\n")
    assert followed == whole
    assert tailed == b"".join(whole.splitlines(keepends=True)[-10:])


@pytest.mark.slow
def test_the_log_goes_with_the_artifacts_and_outlives_the_runtime_folder_until_it_expires(
    devstack: DevStack,
) -> None:
    retention = 8
    job_id = create_job(
        devstack.api_url,
        'mkdir artifacts; echo kept > artifacts/out.txt; echo "to stdout"; echo "to stderr" >&2',
        retention=retention,
    )
    wait_finished(devstack.api_url, job_id)
    prefix = job_prefix("phusers", job_id)
    s3 = devstack.s3_client()
    delivered = s3.get_object(Bucket=devstack.bucket, Key=job_log_key(prefix))["Body"].read()
    manifest = Manifest.from_json(
        s3.get_object(Bucket=devstack.bucket, Key=manifest_key(prefix))["Body"].read()
    )
    listed = graphql(
        devstack.api_url,
        "query ($id: ID!) { phJob(where: {id: $id}) { artifact { items { name } } } }",
        id=job_id,
    )["phJob"]["artifact"]["items"]

    # The job's output in order, then run-job.sh's collection lines.
    assert delivered.startswith(b"to stdout\nto stderr\n")
    assert b"artifacts: 1 file staged" in delivered
    assert manifest.log is not None and manifest.log.size == len(delivered)
    assert manifest.file_count == 1 and [item["name"] for item in listed] == ["out.txt"]

    shutil.rmtree(devstack.data_dir / "runtime" / job_id)  # the runtime folder is gone
    with urllib.request.urlopen(f"{devstack.api_url}/jobs/{job_id}/logs", timeout=30) as kept:
        assert kept.headers["X-Log-Source"] == "ARCHIVE"
        assert kept.read() == delivered

    expired_at = parse_expired_at(
        s3.get_object(Bucket=devstack.bucket, Key=expired_at_key(prefix))["Body"].read()
    )
    time.sleep(max(0.0, expired_at + 1 - time.time()))
    with pytest.raises(urllib.error.HTTPError) as refused:
        read(f"{devstack.api_url}/jobs/{job_id}/logs")
    assert refused.value.code == 404
    assert b"expired" in refused.value.read()
