"""A few lines of GraphQL over HTTP for the end-to-end tests, with the stdlib only."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

SEED_COMMAND = (
    'mkdir -p artifacts/sub; echo "hello" > artifacts/test.txt; '
    'echo "hello" > artifacts/sub/test.txt'
)


def graphql(api_url: str, query: str, **variables: Any) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{api_url}/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        document: dict[str, Any] = json.load(response)
    assert "errors" not in document, document
    data: dict[str, Any] = document["data"]
    return data


def create_job(api_url: str, command: str, retention: int | None = None) -> str:
    data = graphql(
        api_url,
        "mutation($data: PhJobCreateInput!) { createPhJob(data: $data) { id phase } }",
        data={
            "displayName": "journey",
            "groupName": "phusers",
            "command": command,
            "artifactRetentionSeconds": retention,
        },
    )
    job_id: str = data["createPhJob"]["id"]
    return job_id


def wait_finished(api_url: str, job_id: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = graphql(
            api_url, "query($id: ID!) { phJob(where: {id: $id}) { id phase message } }", id=job_id
        )["phJob"]
        if job["phase"] in {"Succeeded", "Failed", "Cancelled"}:
            return job
        assert time.monotonic() < deadline, f"{job_id} still {job['phase']} after {timeout} s"
        time.sleep(0.3)


def artifact(api_url: str, job_id: str) -> dict[str, Any] | None:
    data = graphql(
        api_url,
        """query($id: ID!) { phJob(where: {id: $id}) { artifact {
             prefix expiredAt fileCount totalSize
             items { name size lastModified sha256 downloadUrl } } } }""",
        id=job_id,
    )
    result: dict[str, Any] | None = data["phJob"]["artifact"]
    return result
