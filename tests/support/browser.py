"""Debian's chromium driven by Playwright (ARCHITECTURE section 9), and a GraphQL client.

Never ``playwright install``: the browser is the system's ``/usr/bin/chromium`` (``.ci/run``
installs it), launched through ``executable_path``. Without the background-networking
flags chromium tries to reach Google's services at start, and on a closed network those
connections are refused noisily.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support import journey

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

FINISHED = {"Succeeded", "Failed", "Cancelled"}

SCREENSHOTS = Path(__file__).resolve().parents[1] / "output" / "screenshots"
"""Where the browser tests leave screenshots (``tests/output/`` is git-ignored)."""


def chromium_path() -> str | None:
    """``CHROMIUM`` if set, else Debian's ``/usr/bin/chromium``, else ``chromium`` on PATH."""
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium")


@dataclass
class StackClient:
    """The running api, for setting up what a browser test then looks at (support.journey's
    GraphQL, plus what the browser tests need: groups, retention, cleanup runs)."""

    api_url: str

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        return journey.graphql(self.api_url, query, **(variables or {}))

    def create_job(
        self,
        command: str,
        *,
        name: str = "e2e job",
        group: str = "team-e2e",
        retention_seconds: int | None = None,
    ) -> str:
        data: dict[str, Any] = {"displayName": name, "groupName": group, "command": command}
        if retention_seconds is not None:
            data["artifactRetentionSeconds"] = retention_seconds
        created = self.graphql(
            "mutation ($data: PhJobCreateInput!) { createPhJob(data: $data) { id } }",
            {"data": data},
        )
        job_id: str = created["createPhJob"]["id"]
        return job_id

    def job(self, job_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.graphql(
            "query ($id: ID!) { phJob(where: {id: $id}) { id phase finishTime message } }",
            {"id": job_id},
        )["phJob"]
        return found

    def wait_finished(self, *job_ids: str, timeout: float = 60) -> dict[str, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        pending = set(job_ids)
        done: dict[str, dict[str, Any]] = {}
        while pending:
            for job_id in sorted(pending):
                job = self.job(job_id)
                if job["phase"] in FINISHED:
                    done[job_id] = job
                    pending.discard(job_id)
            if pending:
                assert time.monotonic() < deadline, f"still running after {timeout} s: {pending}"
                time.sleep(0.25)
        return done

    def run_cleanup(self, timeout: float = 30) -> dict[str, Any]:
        """Ask the janitor for a cleanup run now and wait for its result."""
        run_id = self.graphql("mutation { cleanupPhJobArtifact }")["cleanupPhJobArtifact"]
        deadline = time.monotonic() + timeout
        while True:
            status: dict[str, Any] = self.graphql(
                "query ($id: ID!) { phJobArtifactCleanup(id: $id) "
                "{ state error result { foldersDeleted deleted } } }",
                {"id": run_id},
            )["phJobArtifactCleanup"]
            if status["state"] in ("COMPLETE", "FAILED"):
                return status
            assert time.monotonic() < deadline, f"cleanup {run_id} still {status['state']}"
            time.sleep(0.25)
