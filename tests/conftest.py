"""Session-wide real servers, and a clean namespace on them for every test.

ARCHITECTURE section 9: S3 is SeaweedFS (``weed mini``, checking signatures), Redis a real
redis-server, Kubernetes kmock's emulator over HTTP (``support/kube.py``). Each test gets a
bucket of its own (deleted after the test), an empty Redis database and a fresh emulator.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import pytest
from arq.connections import ArqRedis, create_pool
from kubernetes_asyncio import client as k8s_client
from redis.asyncio import Redis
from support.devstack import DevStack, stack_env
from support.folders import FixedClock
from support.kube import KubeEmulator, api_client_for, serve_kube
from support.servers import MotoS3Server, RedisServer, S3Server

from artifacts_janitor.metrics import JanitorMetrics
from artifacts_janitor.settings import JanitorSettings
from artifacts_janitor.worker import Janitor, arq_redis_settings
from artifacts_shared.input_holds import InputHolds
from artifacts_shared.redis import open_redis
from artifacts_shared.s3 import S3Client, open_s3
from artifacts_shared.settings import RedisSettings, S3Settings


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = S3Server().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def s3_settings(s3_server: S3Server) -> Iterator[S3Settings]:
    """Settings for the real S3 server with a new, empty bucket of this test's own."""
    settings = s3_server.settings(f"phfs-{uuid.uuid4().hex[:12]}")
    s3_server.create_bucket(settings.phfs_bucket)
    try:
        yield settings
    finally:
        s3_server.delete_bucket(settings.phfs_bucket)


@pytest.fixture
async def s3(s3_settings: S3Settings) -> AsyncIterator[S3Client]:
    async with open_s3(s3_settings) as client:
        yield client


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoS3Server]:
    """A server that stores keys as AWS would and SeaweedFS will not (``..``, ``//``)."""
    server = MotoS3Server().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def aws_keys_s3_settings(moto_server: MotoS3Server) -> AsyncIterator[S3Settings]:
    """A new bucket on ``moto_server``, for a test that needs keys SeaweedFS refuses."""
    settings = moto_server.settings(f"aws-{uuid.uuid4().hex[:12]}")
    async with open_s3(settings) as client:
        await client.create_bucket(Bucket=settings.phfs_bucket)
    yield settings


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_settings(redis_server: RedisServer) -> RedisSettings:
    """Settings for the real Redis server, emptied before the test."""
    redis_server.flush()
    return RedisSettings(redis_url=redis_server.url)


@pytest.fixture
async def redis(redis_settings: RedisSettings) -> AsyncIterator[Redis]:
    async with open_redis(redis_settings) as client:
        yield client


@pytest.fixture
def input_holds(redis: Redis) -> InputHolds:
    """The input holds (``artifacts_shared.input_holds``) on the test's Redis."""
    return InputHolds(redis)


@pytest.fixture
async def kube_emulator() -> AsyncIterator[KubeEmulator]:
    """A fresh Kubernetes API emulator on a loopback port, knowing PhJobs and core resources.

    Its URL is ``str(kube_emulator.url)``; ``read_object``, ``list_objects`` and
    ``requests_to`` inspect it; ``disconnect_watches`` and ``expire_watches`` break watches.
    """
    async with serve_kube() as (emulator, _url):
        yield emulator


@pytest.fixture
async def kube_api(kube_emulator: KubeEmulator) -> AsyncIterator[k8s_client.ApiClient]:
    """A kubernetes-asyncio ``ApiClient`` configured for ``kube_emulator``."""
    async with api_client_for(str(kube_emulator.url).rstrip("/")) as api:
        yield api


@pytest.fixture
def kube_namespace() -> str:
    """The namespace tests put their objects in (not ``default``, to catch a forgotten one)."""
    return "jobs"


@pytest.fixture(scope="session")
def devstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    """The whole stack as `make run` starts it (devstack/run.py), on free ports.

    Shared by the end-to-end, browser and CLI tests; each test makes its own jobs.
    """
    data_dir = tmp_path_factory.mktemp("devstack")
    stack = DevStack(data_dir, stack_env(data_dir)).start()
    try:
        yield stack
    finally:
        stack.stop()


# --- skips: a failure in CI, one line at the end elsewhere ---------------------------------
# A test skips only when this machine lacks a tool (chromium, docker-compose), and its reason
# names the command that installs it. CI installs everything, so there a skip is a failure;
# on a developer's machine the run ends with one line saying what did not run and why.


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and os.environ.get("CI") == "true":
        report.outcome = "failed"
        report.longrepr = f"skipped, and CI=true runs every test: {_skip_reason(report)}"


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    reasons: Mapping[str, int] = Counter(
        _skip_reason(report) for report in terminalreporter.stats.get("skipped", [])
    )
    if reasons:
        listed = "; ".join(f"{count} x {reason}" for reason, count in reasons.items())
        terminalreporter.write_line(f"SKIPPED {sum(reasons.values())} tests: {listed}")


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


@pytest.fixture
def janitor_settings(s3_settings: S3Settings, redis_settings: RedisSettings) -> JanitorSettings:
    """The janitor on the test's servers; tests/janitor tunes its own."""
    return JanitorSettings(
        **s3_settings.model_dump(),
        redis_url=redis_settings.redis_url,
        janitor_metrics_port=0,
        janitor_lock_seconds=2,
    )


@pytest.fixture
def clock() -> FixedClock:
    """The janitor's "now": the real time, held still for the test."""
    return FixedClock(time.time())


@pytest.fixture
async def janitor(
    s3: S3Client, janitor_settings: JanitorSettings, clock: FixedClock
) -> AsyncIterator[Janitor]:
    """The janitor's run with arq's pool, on the ``janitor_settings`` and ``clock`` of the
    test's directory or module."""
    pool: ArqRedis = await create_pool(arq_redis_settings(janitor_settings))
    try:
        yield Janitor(
            settings=janitor_settings, s3=s3, redis=pool, clock=clock, metrics=JanitorMetrics()
        )
    finally:
        await pool.aclose()
