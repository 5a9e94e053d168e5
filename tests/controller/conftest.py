"""Fixtures for the controller's tests: settings with short timings, a Kube client on the
emulator, and a temporary job home for run-job.sh."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes_asyncio import client as k8s_client
from redis.asyncio import Redis
from support.jobs import JobHome

from artifacts_controller.expiry_feed import ExpiryFeed
from artifacts_controller.kube import Kube
from artifacts_controller.settings import ControllerSettings
from artifacts_shared.expiry_index import ExpiryIndex
from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.settings import RedisSettings, S3Settings


@pytest.fixture
def controller_settings(
    kube_namespace: str, s3_settings: S3Settings, redis_settings: RedisSettings
) -> ControllerSettings:
    return ControllerSettings(
        **dict(s3_settings),  # the test's own bucket, where finished jobs' logs go
        redis_url=redis_settings.redis_url,  # the test's Redis: expiry index, input holds
        kube_namespace=kube_namespace,
        artifact_delivery="phfs",
        controller_resync_seconds=60,
        controller_backoff_initial_seconds=0.05,
        controller_backoff_max_seconds=0.2,
        controller_lease_seconds=1.0,
        controller_lease_renew_seconds=0.2,
        controller_workers=8,
    )


@pytest.fixture
def local_settings(
    tmp_path: Path, s3_settings: S3Settings, redis_settings: RedisSettings
) -> ControllerSettings:
    """The controller of the dev stack (``CONTROLLER_RUNTIME=local``) on the test's servers."""
    return ControllerSettings(
        **s3_settings.model_dump(),
        redis_url=redis_settings.redis_url,
        controller_runtime="local",
        artifact_delivery="s3",
        local_jobs_dir=tmp_path / "jobs",
        local_runtime_dir=tmp_path / "runtime",
        local_poll_seconds=0.1,
        job_termination_grace_seconds=30,
        controller_backoff_initial_seconds=0.05,
        controller_backoff_max_seconds=0.2,
    )


@pytest.fixture
def store(local_settings: ControllerSettings) -> LocalJobStore:
    """The local job store the local runtime reads."""
    return LocalJobStore(local_settings.local_jobs_dir)


@pytest.fixture
def expiry_feed(redis: Redis, controller_settings: ControllerSettings) -> ExpiryFeed:
    """The feed of the expiry index, on the test's Redis."""
    return ExpiryFeed(ExpiryIndex(redis), policy=controller_settings)


@pytest.fixture
def kube(kube_api: k8s_client.ApiClient, kube_namespace: str) -> Kube:
    return Kube(kube_api, namespace=kube_namespace)


@pytest.fixture
def job(tmp_path: Path) -> JobHome:
    return JobHome(tmp_path)
