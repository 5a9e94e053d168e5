"""Running the api for tests: in-process over real HTTP, or as a ``python -m`` subprocess.

Tests talk to the api only through HTTP (aiohttp's client), the way every real client
does; these helpers start it, hand out tokens, and put jobs and artifacts where the api
reads them (the local job store and the S3 bucket).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import psutil
from aiohttp.test_utils import TestServer

from artifacts_api.app import make_app
from artifacts_api.jobsource import JobSource
from artifacts_api.settings import ApiSettings
from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.layout import job_prefix
from artifacts_shared.phjob import PhJob, PhJobMetadata, PhJobPhase, PhJobSpec, PhJobStatus
from artifacts_shared.s3 import S3Client

JWT_SECRET = "test-secret-that-is-at-least-32-characters-long"
GRAPHQL_RESPONSE = "application/graphql-response+json"
"""The spec's own media type: a document that cannot run is a 400 (with JSON it is a 200)."""

SEED_QUERY = """
query ($id: ID!) {
  phJob(where: {id: $id}) { id artifact { prefix items { name size lastModified } } }
}
"""


def token(
    name: str = "alice",
    *,
    groups: Iterable[str] = ("team-a",),
    roles: Iterable[str] = (),
    expires_in: float = 4 * 3600,  # module-level tokens are minted at collection, runs are long
    secret: str = JWT_SECRET,
    **claims: Any,
) -> str:
    now = int(time.time())
    payload = {
        "sub": f"id-{name}",
        "preferred_username": name,
        "groups": list(groups),
        "roles": list(roles),
        "iat": now,
        "exp": now + int(expires_in),
        **claims,
    }
    return jwt.encode(payload, secret, algorithm="HS256")


@dataclass
class GraphQLResult:
    status: int
    body: dict[str, Any]
    media: str = "application/json"

    @property
    def data(self) -> Any:
        return self.body.get("data")

    @property
    def errors(self) -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = self.body.get("errors", [])
        return errors

    @property
    def codes(self) -> list[str]:
        return [error.get("extensions", {}).get("code") for error in self.errors]


@dataclass
class Api:
    """An api listening on ``url``, and an HTTP client for it."""

    url: str
    session: aiohttp.ClientSession
    settings: ApiSettings
    default_token: str | None = field(default_factory=token)

    def headers(self, bearer: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {bearer}"} if bearer else {}

    async def graphql(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        *,
        bearer: str | bool | None = True,
        accept: str | None = None,
    ) -> GraphQLResult:
        """A JSON POST; ``accept`` picks the answer's media type (aiohttp's default: */*)."""
        chosen = self.default_token if bearer is True else (bearer or None)
        headers = self.headers(chosen) | ({"Accept": accept} if accept else {})
        async with self.session.post(
            f"{self.url}/graphql",
            json={"query": query, "variables": dict(variables or {})},
            headers=headers,
        ) as response:
            media = response.content_type
            assert media in ("application/json", GRAPHQL_RESPONSE), await response.text()
            return GraphQLResult(response.status, await response.json(content_type=None), media)

    async def get(
        self, path: str, *, bearer: str | bool | None = True, accept: str | None = None
    ) -> aiohttp.ClientResponse:
        chosen = self.default_token if bearer is True else (bearer or None)
        headers = self.headers(chosen) | ({"Accept": accept} if accept else {})
        response = await self.session.get(f"{self.url}{path}", headers=headers)
        await response.read()
        return response


def api_settings(s3: Any, redis_url: str, jobs_dir: Path, **overrides: Any) -> ApiSettings:
    values: dict[str, Any] = {
        "s3_endpoint_url": s3.s3_endpoint_url,
        "s3_region": s3.s3_region,
        "s3_access_key_id": s3.s3_access_key_id,
        "s3_secret_access_key": s3.s3_secret_access_key,
        "phfs_bucket": s3.phfs_bucket,
        "redis_url": redis_url,
        "api_auth_mode": "hs256",
        "api_jwt_secret": JWT_SECRET,
        "controller_runtime": "local",
        "local_jobs_dir": jobs_dir,
    }
    values.update(overrides)
    return ApiSettings(**values)


@asynccontextmanager
async def serve(
    settings: ApiSettings, *, job_source: JobSource | None = None
) -> AsyncIterator[Api]:
    server = TestServer(make_app(settings, job_source=job_source), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            yield Api(url=str(server.make_url("")).rstrip("/"), session=session, settings=settings)
    finally:
        await server.close()


def add_job(
    store: LocalJobStore,
    job_id: str,
    *,
    group: str = "team-a",
    user: str = "alice",
    phase: PhJobPhase = PhJobPhase.SUCCEEDED,
    created: datetime | None = None,
) -> PhJob:
    """A job as the api and the controller would have left it in the local store."""
    job = PhJob(
        metadata=PhJobMetadata(name=job_id, creation_timestamp=created or datetime.now(UTC)),
        spec=PhJobSpec(
            display_name=f"job {job_id}",
            group_name=group,
            user_name=user,
            command="mkdir -p artifacts/sub; echo hello > artifacts/test.txt",
        ),
    )
    store.create(job)
    store.write_status(job_id, PhJobStatus(phase=phase))
    return store.get(job_id)


async def put_files(
    s3: S3Client,
    bucket: str,
    group: str,
    job_id: str,
    files: Mapping[str, bytes],
    *,
    concurrency: int = 16,
) -> str:
    """Upload ``files`` (relative path -> bytes) under the job's prefix; returns the prefix."""
    prefix = job_prefix(group, job_id)
    limit = asyncio.Semaphore(concurrency)

    async def put(name: str, body: bytes) -> None:
        async with limit:
            await s3.put_object(Bucket=bucket, Key=f"{prefix}{name}", Body=body)

    await asyncio.gather(*(put(name, body) for name, body in files.items()))
    return prefix


class ApiProcess:
    """``python -m artifacts_api`` as a child process, and its memory while it works."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.port = int(env["API_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = {**os.environ, **env}
        self._process: subprocess.Popen[bytes] | None = None
        self._sampling = False
        self._thread: threading.Thread | None = None
        self.peak_rss = 0

    async def start(self, timeout: float = 20.0) -> ApiProcess:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "artifacts_api"],
            env=self._env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    raise RuntimeError(f"api exited: {self.stderr()}")
                try:
                    async with session.get(f"{self.url}/healthz") as response:
                        if response.status == 200:
                            return self
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f"api did not start in {timeout} s")

    def rss(self) -> int:
        assert self._process is not None
        return int(psutil.Process(self._process.pid).memory_info().rss)

    def start_sampling(self, interval: float = 0.01) -> None:
        self.peak_rss = self.rss()
        self._sampling = True

        def sample() -> None:
            while self._sampling:
                try:
                    self.peak_rss = max(self.peak_rss, self.rss())
                except psutil.Error:
                    return
                time.sleep(interval)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()

    def stop_sampling(self) -> int:
        self._sampling = False
        if self._thread is not None:
            self._thread.join()
        return self.peak_rss

    def stderr(self) -> str:
        if self._process is None or self._process.stderr is None:
            return ""
        if self._process.poll() is None:
            return ""
        return self._process.stderr.read().decode(errors="replace")

    def stop(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process.stderr is not None:
            self._process.stderr.close()
