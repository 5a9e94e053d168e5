"""PhJobs and their pods' logs in Kubernetes, through kubernetes-asyncio: the only module
that imports it.

kubernetes-asyncio is untyped, so its surface stays here behind ``JobSource``. Every call
carries ``API_KUBE_TIMEOUT_SECONDS``; errors other than "not found" and "already exists"
mean the cluster cannot serve us and become ``Unavailable``.

Listing every PhJob of the namespace on each ``phJobs`` (which the UI polls every two
seconds) costs the API server and us in proportion to all jobs ever run. So the source
keeps them in a ``JobIndex`` fed by one list-then-watch, as PrimeHub's own console does
(``phJobCacheList``) and client-go's informers: lists page with ``limit``/``continue``,
a watch resumes from the last resourceVersion, ``410 Gone`` lists again, other failures
retry after a backoff. Pages are answered from memory once the first list is in.
What this api creates or cancels goes into the index at once (read your own writes), and
a job it does not know yet (made a moment ago through another replica) is fetched.

A pod's log (``pods/log``) is read through the API server, which tails and follows it; a
followed log can stay open for as long as the job runs, so log streams go through an
``ApiClient`` of their own: however many readers are slow or idle, PhJob requests keep
their connections.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, TypeVar

import aiohttp
from kubernetes_asyncio import client, config, watch

from artifacts_api.errors import Unavailable
from artifacts_api.jobindex import JobIndex, JobPage, JobQuery
from artifacts_api.loglines import LinePage, last_lines, window
from artifacts_api.logreaders import Chunks, JobLog, LogGone, LogNotStarted, LogSource
from artifacts_shared.jobstore import JobExistsError
from artifacts_shared.phjob import API_GROUP, API_VERSION, PLURAL, JobId, PhJob

__all__ = ["JOB_CONTAINER", "KubernetesJobSource", "PodLog", "open_kubernetes"]

log = logging.getLogger(__name__)
T = TypeVar("T")
_LIST_PAGE = 500
_WATCH_SECONDS = 300
"""The server ends each watch after this; it is resumed from the last version seen."""
_BACKOFF = (0.5, 30.0)
_ERROR_BODY = 64 * 1024

JOB_CONTAINER = "job"
"""The container that runs run-job.sh in a job's pod (the controller's
``pods.JOB_CONTAINER``): its output is the job's log."""
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


def _server_message(err: Any) -> str:
    """The API server's own sentence from a ``Status`` body (RBAC names the user and verb)."""
    try:
        message = str(json.loads(err.body).get("message") or "")
    except (TypeError, ValueError, AttributeError):
        message = ""
    return (message or str(err.reason))[:300]


def _version(document: dict[str, Any]) -> int | None:
    value = (document.get("metadata") or {}).get("resourceVersion")
    return int(value) if isinstance(value, str) and value.isdigit() else None


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
    """``async with KubernetesJobSource(...) as source``: the watch runs while it is open."""

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
        self._index = JobIndex()
        self._versions: dict[str, int] = {}
        self._synced = asyncio.Event()
        self._answered = asyncio.Event()
        """Set once the first list either succeeded or failed: page() need not wait longer."""
        self._trouble: Unavailable | None = None
        """Why the list of jobs failed last, until one succeeds: what page() answers."""
        self._follower: asyncio.Task[None] | None = None

    async def __aenter__(self) -> KubernetesJobSource:
        self._follower = asyncio.create_task(self._follow(), name="phjob-watch")
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._follower is not None:
            self._follower.cancel()
            try:
                await self._follower
            except asyncio.CancelledError:
                pass
            self._follower = None

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
        if self._synced.is_set():
            known = self._index.get(job_id)
            if known is not None:
                return known
        try:
            document = await self._call(self._api.get_namespaced_custom_object, name=job_id)
        except client.ApiException as err:
            if err.status == 404:
                return None
            raise self._unavailable(err, "get") from err
        return self._learn(document)

    async def page(self, query: JobQuery) -> JobPage:
        if not self._synced.is_set():
            try:
                await asyncio.wait_for(self._answered.wait(), self._timeout)
            except TimeoutError:
                raise Unavailable(
                    "Kubernetes has not answered the list of jobs yet", backend="kubernetes"
                ) from None
            if not self._synced.is_set():
                assert self._trouble is not None
                raise self._trouble
        return self._index.page(query)

    def _learn(self, document: dict[str, Any]) -> PhJob:
        """Put what the API server answered into the index, unless it already has newer."""
        job = PhJob.from_k8s(document)
        version = _version(document)
        known = self._versions.get(job.id)
        if version is None or known is None or version >= known:
            self._index.put(job)
            if version is not None:
                self._versions[job.id] = version
        return job

    def _apply(self, kind: str, document: dict[str, Any]) -> None:
        name = (document.get("metadata") or {}).get("name", "?")
        try:
            if kind == "DELETED":
                self._index.remove(name)
                self._versions.pop(name, None)
            elif kind in ("ADDED", "MODIFIED"):
                self._learn(document)
        except ValueError as err:
            # One malformed object must not hide every other job.
            log.warning("skipping PhJob %s: %s", name, err)

    async def _relist(self) -> str | None:
        documents: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": _LIST_PAGE}
            if token:
                kwargs["_continue"] = token
            try:
                page = await self._call(self._api.list_namespaced_custom_object, **kwargs)
            except client.ApiException as err:
                raise self._unavailable(err, "list") from err
            documents.extend(page.get("items", []))
            token = page.get("metadata", {}).get("continue")
            if not token:
                break
        version = page.get("metadata", {}).get("resourceVersion")
        listed_at = int(version) if isinstance(version, str) and version.isdigit() else None
        # What this process wrote or read after the list's snapshot (a job created while the
        # list was on its way) stays: the watch from that snapshot has yet to bring it.
        newer = [
            job
            for name, seen in self._versions.items()
            if listed_at is not None
            and seen > listed_at
            and (job := self._index.get(name)) is not None
        ]
        kept = {job.id: self._versions[job.id] for job in newer}
        self._index = JobIndex()
        self._versions = {}
        for document in documents:
            self._apply("ADDED", document)
        for job in newer:
            if kept[job.id] > self._versions.get(job.id, -1):
                self._index.put(job)
                self._versions[job.id] = kept[job.id]
        self._trouble = None
        self._synced.set()
        self._answered.set()
        return str(version) if version else None

    async def _follow(self) -> None:
        version: str | None = None
        failures = 0
        while True:
            try:
                if version is None:
                    version = await self._relist()
                async with watch.Watch() as stream:
                    async for event in stream.stream(
                        self._api.list_namespaced_custom_object,
                        group=API_GROUP,
                        version=API_VERSION,
                        namespace=self._namespace,
                        plural=PLURAL,
                        resource_version=version,
                        timeout_seconds=_WATCH_SECONDS,
                        allow_watch_bookmarks=True,
                    ):
                        document = event.get("raw_object") or {}
                        version = (document.get("metadata") or {}).get("resourceVersion") or version
                        self._apply(str(event.get("type")), document)
                        failures = 0
            except client.ApiException as err:
                if err.status == 410:
                    log.info("PhJob watch: version %s expired; listing again", version)
                    version = None
                    continue
                failures += 1
                await self._pause(err, failures)
            except Unavailable as err:
                if not self._synced.is_set():  # callers get this reason, not a time-out
                    self._trouble = err
                    self._answered.set()
                failures += 1
                await self._pause(err, failures)
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as err:
                failures += 1
                await self._pause(err, failures)

    @staticmethod
    async def _pause(err: Exception, failures: int) -> None:
        low, high = _BACKOFF
        delay = min(high, low * 2 ** min(failures, 10)) * random.uniform(0.5, 1.0)
        log.warning("PhJob watch failed (%s); retrying in %.1f s", err, delay)
        await asyncio.sleep(delay)

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
        return self._learn(document)

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
        return self._learn(document)

    async def live_log(self, job: PhJob) -> JobLog | None:
        pod = job.status.pod_name
        if pod is None:
            return None
        return PodLog(self._core, pod=pod, namespace=self._namespace, timeout_seconds=self._timeout)
