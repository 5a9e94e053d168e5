"""Job logs on the dev stack: real jobs run by the local runtime through run-job.sh.

The log is what the job printed on stdout and stderr, in order, then the collection's own
lines; ``follow`` receives lines while the job runs and ends when it has ended; PrimeHub's
SDK reads it through ``logEndpoint`` exactly as it reads PrimeHub's.
"""

from __future__ import annotations

import time
import urllib.request

import pytest
from primehub.utils.http_client import Client as PrimeHubHttp
from support.devstack import DevStack
from support.journey import create_job, graphql, wait_finished

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
    # The collection's lines come after the job's own: the script's, then the uploader's.
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
