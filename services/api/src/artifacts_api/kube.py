"""PhJobs and their pods' logs in Kubernetes, through kubernetes-asyncio: the only module
that imports it.

kubernetes-asyncio is untyped, so its surface stays here behind ``JobSource``. Every call
carries ``API_KUBE_TIMEOUT_SECONDS``; errors other than "not found" and "already exists"
mean the cluster cannot serve us and become ``Unavailable``.

A pod's log (``pods/log``) is read through the API server, which tails and follows it; a
followed log can stay open for as long as the job runs, so log streams go through an
``ApiClient`` of their own: however many readers are slow or idle, PhJob requests keep
their connections.
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
from artifacts_api.loglines import LinePage, last_lines, window
from artifacts_api.logreaders import Chunks, JobLog, LogGone, LogNotStarted, LogSource
from artifacts_shared.jobstore import JobExistsError
from artifacts_shared.phjob import API_GROUP, API_VERSION, PLURAL, JobId, PhJob

__all__ = ["JOB_CONTAINER", "KubernetesJobSource", "PodLog", "open_kubernetes"]

log = logging.getLogger(__name__)
T = TypeVar("T")
_LIST_PAGE = 500
_ERROR_BODY = 64 * 1024

JOB_CONTAINER = "job"
"""The container that runs run-job.sh in a job's pod (the controller's
``podspec.JOB_CONTAINER``): its output is the job's log."""
_NOT_STARTED = ("waiting to start", "ContainerCreating", "PodInitializing")
"""How the API server says a container has no log yet (HTTP 400)."""


@asynccontextmanager
async def open_kubernetes(*, connections: int | None = None) -> AsyncIterator[Any]:
    """An ApiClient for the cluster we run in, else for the current kubeconfig context,
    with at most ``connections`` connections at once (kubernetes-asyncio's 100 if None)."""
    configuration = client.Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        # Read KUBECONFIG now: kubernetes-asyncio reads it once, when first imported.
        await config.load_kube_config(
            config_file=os.environ.get("KUBECONFIG"), client_configuration=configuration
        )
    if connections is not None:
        configuration.connection_pool_maxsize = connections
    api_client = client.ApiClient(configuration=configuration)
    try:
        yield api_client
    finally:
        await api_client.close()


class PodLog:
    """The log of a job's pod, read through the API server (``GET .../pods/<pod>/log``)."""

    source: LogSource = "LIVE"

    def __init__(self, core: Any, *, pod: str, namespace: str, timeout_seconds: float) -> None:
        self._core = core
        self._pod = pod
        self._namespace = namespace
        self._timeout = timeout_seconds
        self._responses: list[aiohttp.ClientResponse] = []

    async def _open(self, *, tail_lines: int | None, follow: bool) -> aiohttp.ClientResponse:
        # A followed log is quiet while the job is: only connecting has a deadline.
        timeout = aiohttp.ClientTimeout(
            sock_connect=self._timeout, sock_read=None if follow else self._timeout
        )
        try:
            response: aiohttp.ClientResponse = await self._core.read_namespaced_pod_log(
                name=self._pod,
                namespace=self._namespace,
                container=JOB_CONTAINER,
                follow=follow,
                tail_lines=tail_lines,
                _preload_content=False,
                _request_timeout=timeout,
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            log.warning("Kubernetes is unreachable: %r", err)
            raise Unavailable("Kubernetes is unavailable", backend="kubernetes") from err
        if response.status == 200:
            self._responses.append(response)  # closed by aclose, read or not
            return response
        try:
            body = await response.content.read(_ERROR_BODY)
        finally:
            response.release()
        message = _status_message(body)
        if response.status == 404:
            raise LogGone(f"the job's pod {self._pod} is gone, and its log with it")
        if response.status == 400 and any(mark in message for mark in _NOT_STARTED):
            raise LogNotStarted(message)
        log.warning("Kubernetes refused a log request: %s %s", response.status, message)
        raise Unavailable(
            f"Kubernetes refused to read the job's log ({response.status} {message[:200]})",
            backend="kubernetes",
        )

    async def stream(self, *, tail_lines: int | None, follow: bool) -> Chunks:
        return _body(await self._open(tail_lines=tail_lines, follow=follow))

    async def page(self, *, offset: int | None, limit: int) -> LinePage:
        # The API server tails, but cannot say how many lines came before: count them all.
        chunks = await self.stream(tail_lines=None, follow=False)
        if offset is None:
            return await last_lines(chunks, limit=limit)
        return await window(chunks, offset=offset, limit=limit)

    async def aclose(self) -> None:
        for response in self._responses:
            response.close()
        self._responses.clear()


async def _body(response: aiohttp.ClientResponse) -> Chunks:
    try:
        async for chunk in response.content.iter_any():
            yield chunk
    finally:
        response.close()


def _status_message(body: bytes) -> str:
    """The ``message`` of a Kubernetes ``Status`` body, else the body as text."""
    try:
        document = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip()
    message = document.get("message") if isinstance(document, dict) else None
    return str(message) if message else body.decode("utf-8", "replace").strip()


class KubernetesJobSource:
    def __init__(
        self,
        api_client: Any,
        *,
        namespace: str,
        timeout_seconds: float,
        log_client: Any | None = None,
    ) -> None:
        self._api = client.CustomObjectsApi(api_client)
        self._core = client.CoreV1Api(log_client or api_client)
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

    @staticmethod
    def _unavailable(err: Any) -> Unavailable:
        log.warning("Kubernetes refused a request: %s %s", err.status, err.reason)
        return Unavailable(
            f"Kubernetes refused the request ({err.status} {err.reason})", backend="kubernetes"
        )

    async def get(self, job_id: JobId) -> PhJob | None:
        try:
            document = await self._call(self._api.get_namespaced_custom_object, name=job_id)
        except client.ApiException as err:
            if err.status == 404:
                return None
            raise self._unavailable(err) from err
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
                raise self._unavailable(err) from err
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
            raise self._unavailable(err) from err
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
            raise self._unavailable(err) from err
        return PhJob.from_k8s(document)

    async def live_log(self, job: PhJob) -> JobLog | None:
        pod = job.status.pod_name
        if pod is None:
            return None
        return PodLog(self._core, pod=pod, namespace=self._namespace, timeout_seconds=self._timeout)
