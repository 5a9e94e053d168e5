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
def expiry_feed(redis: Redis, controller_settings: ControllerSettings) -> ExpiryFeed:
    """The feed of the expiry index, on the test's Redis."""
    return ExpiryFeed(ExpiryIndex(redis), policy=controller_settings)


@pytest.fixture
def kube(kube_api: k8s_client.ApiClient, kube_namespace: str) -> Kube:
    return Kube(kube_api, namespace=kube_namespace)


@pytest.fixture
def job(tmp_path: Path) -> JobHome:
    return JobHome(tmp_path)
