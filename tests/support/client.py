"""Helpers for the client's tests: the api served from a thread, the bucket, the CLI.

The client is synchronous, so the api cannot share the test's thread: ``ThreadedApi``
runs it on an event loop of its own in a background thread, over real S3 (moto) and
Redis. ``Bucket`` writes artifacts the way a collector does (boto3); ``run_cli`` runs
``python -m artifacts_client`` as a user runs ``jobartifacts``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer

from artifacts_api.app import make_app
from artifacts_api.settings import ApiSettings
from artifacts_shared.layout import job_prefix, manifest_key
from artifacts_shared.manifest import Manifest, ManifestFile, ManifestLimits

JOB = "job-202009250153-34s0ti"
GROUP = "team-a"
HELLO = b"hello\n"
JOURNEY = {"test.txt": HELLO, "sub/test.txt": HELLO}
"""What the acceptance story's job leaves: ``mkdir -p artifacts/sub; echo "hello" > ...``."""


class ThreadedApi:
    """``make_app(settings)`` served on 127.0.0.1 from an event loop in its own thread."""

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="api", daemon=True)
        self._server: TestServer | None = None

    def _call(self, coroutine: Any, timeout: float = 120) -> Any:
        # A wait, not a budget: the api's start-up (S3 client, link signer, job index)
        # waits its turn on a machine the suite's workers keep busy.
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    async def _start(self) -> str:
        self._server = TestServer(make_app(self.settings), host="127.0.0.1")
        await self._server.start_server()
        return str(self._server.make_url("")).rstrip("/")

    def start(self) -> ThreadedApi:
        self._thread.start()
        self.url = self._call(self._start())
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._call(self._server.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()


@dataclass
class Bucket:
    """The test's bucket, written the way a collector writes it."""

    name: str
    client: Any

    def put(self, key: str, body: bytes) -> None:
        self.client.put_object(Bucket=self.name, Key=key, Body=body)

    def put_artifacts(
        self,
        job_id: str,
        files: Mapping[str, bytes],
        *,
        group: str = GROUP,
        manifest: bool = True,
        modes: Mapping[str, str] | None = None,
    ) -> str:
        """The files under the job's prefix, and a manifest with their sha256 (unless told)
        and the ``modes`` given (a name without one records none)."""
        prefix = job_prefix(group, job_id)
        for name, body in files.items():
            self.put(f"{prefix}{name}", body)
        if manifest:
            record = Manifest(
                job=job_id,
                group=group,
                collected_at=datetime.now(UTC),
                file_count=len(files),
                total_size=sum(len(body) for body in files.values()),
                limits=ManifestLimits(size_mb=100, files=1000),
                files=[
                    ManifestFile(
                        name=name,
                        size=len(body),
                        sha256=hashlib.sha256(body).hexdigest(),
                        mode=(modes or {}).get(name),
                    )
                    for name, body in files.items()
                ],
            )
            self.put(manifest_key(prefix), record.to_json())
        return prefix


@dataclass(frozen=True)
class CliRun:
    returncode: int
    stdout: str
    stderr: str


def run_cli(
    *args: str,
    api_url: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 30,
) -> CliRun:
    """``python -m artifacts_client ARGS`` as a user would run ``jobartifacts``."""
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("JOBARTIFACTS_")
    }
    if api_url is not None:
        environment["JOBARTIFACTS_API_URL"] = api_url
    environment.update(env or {})
    result = subprocess.run(
        [sys.executable, "-m", "artifacts_client", *args],
        env=environment,
        cwd=cwd,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    # Decoded by hand: text mode would turn the progress bar's "\r" into newlines.
    return CliRun(result.returncode, result.stdout.decode(), result.stderr.decode())
