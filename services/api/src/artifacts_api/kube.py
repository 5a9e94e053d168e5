"""PhJobs in Kubernetes, through kubernetes-asyncio: the only module that imports it.

kubernetes-asyncio is untyped, so its surface stays here behind ``JobSource``. Every call
carries ``API_KUBE_TIMEOUT_SECONDS``; errors other than "not found" and "already exists"
mean the cluster cannot serve us and become ``Unavailable``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import aiohttp
from kubernetes_asyncio import client, config

from artifacts_api.errors import Unavailable
from artifacts_api.jobsource import newest_first
from artifacts_shared.jobstore import JobExistsError
from artifacts_shared.phjob import API_GROUP, API_VERSION, PLURAL, JobId, PhJob

__all__ = ["KubernetesJobSource", "open_kubernetes"]

log = logging.getLogger(__name__)
T = TypeVar("T")
_LIST_PAGE = 500


@asynccontextmanager
async def open_kubernetes() -> AsyncIterator[Any]:
    """An ApiClient for the cluster we run in, else for the current kubeconfig context."""
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        api_client = client.ApiClient(configuration=configuration)
    else:
        # Read KUBECONFIG now: kubernetes-asyncio reads it once, when first imported.
        api_client = await config.new_client_from_config(config_file=os.environ.get("KUBECONFIG"))
    try:
        yield api_client
    finally:
        await api_client.close()


def _server_message(err: Any) -> str:
    """The API server's own sentence from a ``Status`` body (RBAC names the user and verb)."""
    try:
        message = str(json.loads(err.body).get("message") or "")
    except (TypeError, ValueError, AttributeError):
        message = ""
    return (message or str(err.reason))[:300]


class KubernetesJobSource:
    def __init__(self, api_client: Any, *, namespace: str, timeout_seconds: float) -> None:
        self._api = client.CustomObjectsApi(api_client)
        self._namespace = namespace
        self._timeout = timeout_seconds

    async def _call(self, call: Callable[..., Awaitable[T]], /, **kwargs: Any) -> T:
        try:
            return await call(
                group=API_GROUP,
                version=API_VERSION,
                namespace=self._namespace,
                plural=PLURAL,
                _request_timeout=self._timeout,
                **kwargs,
            )
        except client.ApiException:
            raise
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            log.warning("Kubernetes is unreachable: %r", err)
            raise Unavailable("Kubernetes is unavailable", backend="kubernetes") from err

    def _unavailable(self, err: Any, verb: str) -> Unavailable:
        if err.status in (401, 403):
            # The api's own credentials or Role (or an admission policy) stand in the way: an
            # operator must act, so say which request, and pass on the server's reason.
            reason = _server_message(err)
            log.error("Kubernetes forbids the api to %s phjobs: %s", verb, reason)
            return Unavailable(
                f"Kubernetes forbids the api to {verb} PhJobs in namespace {self._namespace} "
                f"({err.status} {err.reason}): {reason}",
                backend="kubernetes",
            )
        log.warning("Kubernetes refused to %s phjobs: %s %s", verb, err.status, err.reason)
        return Unavailable(
            f"Kubernetes refused the request ({err.status} {err.reason})", backend="kubernetes"
        )

    async def get(self, job_id: JobId) -> PhJob | None:
        try:
            document = await self._call(self._api.get_namespaced_custom_object, name=job_id)
        except client.ApiException as err:
            if err.status == 404:
                return None
            raise self._unavailable(err, "get") from err
        return PhJob.from_k8s(document)

    async def list(self) -> list[PhJob]:
        jobs: list[PhJob] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": _LIST_PAGE}
            if token:
                kwargs["_continue"] = token
            try:
                page = await self._call(self._api.list_namespaced_custom_object, **kwargs)
            except client.ApiException as err:
                raise self._unavailable(err, "list") from err
            for item in page.get("items", []):
                try:
                    jobs.append(PhJob.from_k8s(item))
                except ValueError as err:
                    # One malformed object must not hide every other job.
                    name = item.get("metadata", {}).get("name", "?")
                    log.warning("skipping PhJob %s: %s", name, err)
            token = page.get("metadata", {}).get("continue")
            if not token:
                return newest_first(jobs)

    async def create(self, job: PhJob) -> PhJob:
        body = job.to_k8s()
        body.pop("status", None)
        body["metadata"]["namespace"] = self._namespace
        try:
            document = await self._call(self._api.create_namespaced_custom_object, body=body)
        except client.ApiException as err:
            if err.status == 409:
                raise JobExistsError(job.id) from err
            raise self._unavailable(err, "create") from err
        return PhJob.from_k8s(document)

    async def request_cancel(self, job_id: JobId) -> PhJob | None:
        try:
            document = await self._call(
                self._api.patch_namespaced_custom_object,
                name=job_id,
                body={"spec": {"cancel": True}},
                # Custom resources take JSON merge patches, not strategic ones.
                _content_type="application/merge-patch+json",
            )
        except client.ApiException as err:
            if err.status == 404:
                return None
            raise self._unavailable(err, "patch") from err
        return PhJob.from_k8s(document)
