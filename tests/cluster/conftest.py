"""The real API server tier (``make test-cluster``): one cluster per session, a namespace per test.

The session builds (or finds cached) kube-apiserver, starts it on etcd and applies the
chart's CRD. Every test gets a namespace of its own with the chart's ServiceAccounts,
Roles and RoleBindings, and clients that hold the controller's and the api's service-account
tokens, so each request is authorized by exactly the Role the chart gives that service.
A tier that cannot build or start its server fails; it never skips.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config
from redis.asyncio import Redis
from support.apiserver_build import BuildError, kube_apiserver
from support.cluster import ChartNamespace, Cluster, Identity

from artifacts_controller.expiry_feed import ExpiryFeed
from artifacts_controller.kube import Kube
from artifacts_controller.settings import ControllerSettings
from artifacts_shared.expiry_index import ExpiryIndex
from artifacts_shared.settings import RedisSettings, S3Settings


@pytest.hookimpl(tryfirst=True)  # before ``-m`` picks tests by their marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here is of the ``cluster`` tier, which ``make test`` leaves out."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    try:
        binary = kube_apiserver()
    except BuildError as err:
        pytest.fail(f"no kube-apiserver for the cluster tier: {err}")
    running = Cluster(tmp_path_factory.mktemp("cluster"), binary).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def chart(cluster: Cluster) -> ChartNamespace:
    """A fresh namespace set up as the chart sets it up."""
    return cluster.grant()


@asynccontextmanager
async def kube_as(
    cluster: Cluster, identity: Identity, namespace: str, folder: Path
) -> AsyncIterator[Kube]:
    """A ``Kube`` holding ``identity``'s token, configured from a kubeconfig file as the
    controller's ``open_kube`` configures itself outside a pod."""
    path = cluster.kubeconfig(identity, folder / f"{identity.name}.kubeconfig", namespace=namespace)
    configuration = k8s_client.Configuration()
    await k8s_config.load_kube_config(config_file=str(path), client_configuration=configuration)
    async with k8s_client.ApiClient(configuration) as api:
        yield Kube(api, namespace=namespace)


@pytest.fixture
async def controller_kube(
    cluster: Cluster, chart: ChartNamespace, tmp_path: Path
) -> AsyncIterator[Kube]:
    """The controller's client: its service account's token, nothing more."""
    async with kube_as(cluster, chart.controller, chart.namespace, tmp_path) as kube:
        yield kube


@pytest.fixture
async def admin_kube(
    cluster: Cluster, chart: ChartNamespace, tmp_path: Path
) -> AsyncIterator[Kube]:
    """The admin's client in the test's namespace: plays the api, the scheduler, the kubelet."""
    async with kube_as(cluster, cluster.admin, chart.namespace, tmp_path) as kube:
        yield kube


@pytest.fixture
def expiry_feed(redis: Redis, controller_settings: ControllerSettings) -> ExpiryFeed:
    """The feed of the expiry index, on the test's Redis."""
    return ExpiryFeed(ExpiryIndex(redis), policy=controller_settings)


@pytest.fixture
def controller_settings(
    chart: ChartNamespace, s3_settings: S3Settings, redis_settings: RedisSettings
) -> ControllerSettings:
    return ControllerSettings(
        **dict(s3_settings),  # the test's own bucket, where finished jobs' logs go
        redis_url=redis_settings.redis_url,  # the test's Redis: expiry index, input holds
        kube_namespace=chart.namespace,
        artifact_delivery="phfs",
        controller_resync_seconds=60,
        controller_backoff_initial_seconds=0.1,
        controller_backoff_max_seconds=0.5,
        controller_lease_seconds=2.0,
        controller_lease_renew_seconds=0.5,
        controller_workers=8,
    )
