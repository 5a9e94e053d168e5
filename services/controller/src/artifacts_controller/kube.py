"""Typed JSON access to the Kubernetes API through kubernetes-asyncio: the one untyped seam.

kubernetes-asyncio ships no type information and turns core objects into snake_case model
classes, while PhJobs stay camelCase dicts. The controller works on the API's own JSON
throughout instead: this module sends requests with kubernetes-asyncio's ``ApiClient``
(which owns the configuration, credentials and connection pool) and returns plain dicts,
raising ``KubeApiError`` with the server's status code. Everything untyped stays here.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config

__all__ = [
    "CONFIGMAPS",
    "LEASES",
    "PHJOBS",
    "PODS",
    "JsonObject",
    "Kube",
    "KubeApiError",
    "Resource",
    "open_kube",
]

JsonObject = dict[str, Any]


@dataclass(frozen=True)
class Resource:
    """A namespaced resource's URL parts: ``/api/v1`` or ``/apis/<group>/<version>``."""

    group: str
    version: str
    plural: str

    def path(self, namespace: str, name: str | None = None, subresource: str | None = None) -> str:
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        path = f"{root}/namespaces/{namespace}/{self.plural}"
        if name is not None:
            path += f"/{name}"
            if subresource:
                path += f"/{subresource}"
        return path


PHJOBS = Resource("primehub.io", "v1alpha1", "phjobs")
PODS = Resource("", "v1", "pods")
CONFIGMAPS = Resource("", "v1", "configmaps")
LEASES = Resource("coordination.k8s.io", "v1", "leases")


class KubeApiError(Exception):
    """A non-2xx answer from the API server, or a watch ``ERROR`` event."""

    def __init__(self, status: int, reason: str = "", message: str = "") -> None:
        super().__init__(f"{status} {reason}: {message}".strip())
        self.status = status
        self.reason = reason
        self.message = message

    @classmethod
    def from_status(cls, document: JsonObject, default: int) -> KubeApiError:
        """From a ``kind: Status`` document (the body of an error answer or event)."""
        return cls(
            int(document.get("code") or default),
            str(document.get("reason") or ""),
            str(document.get("message") or ""),
        )

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def gone(self) -> bool:
        return self.status == 410


class Kube:
    """JSON requests to one API server, in the namespace the controller works in."""

    def __init__(self, api: Any, *, namespace: str, request_timeout: float = 30.0) -> None:
        self._api = api
        self.namespace = namespace
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, Any]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> aiohttp.ClientResponse:
        response: aiohttp.ClientResponse = await self._api.call_api(
            path,
            method,
            query_params=query or [],
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body,
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=timeout or self._timeout,
        )
        return response

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, Any]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> JsonObject:
        response = await self._call(method, path, query=query, body=body, content_type=content_type)
        async with response:
            text = await response.text()
        try:
            document: Any = json.loads(text) if text else {}
        except ValueError:
            document = None
        if not 200 <= response.status < 300:
            if isinstance(document, dict) and document.get("kind") == "Status":
                raise KubeApiError.from_status(document, response.status)
            raise KubeApiError(response.status, response.reason or "", text[:200])
        if not isinstance(document, dict):
            raise KubeApiError(response.status, "BadResponse", "the answer is not an object")
        return document

    async def get(self, resource: Resource, name: str) -> JsonObject | None:
        """The object, or None when there is none."""
        try:
            return await self.request("GET", resource.path(self.namespace, name))
        except KubeApiError as err:
            if err.not_found:
                return None
            raise

    async def list(self, resource: Resource, *, label_selector: str | None = None) -> JsonObject:
        query = [("labelSelector", label_selector)] if label_selector else []
        return await self.request("GET", resource.path(self.namespace), query=query)

    async def create(self, resource: Resource, body: JsonObject) -> JsonObject:
        return await self.request("POST", resource.path(self.namespace), body=body)

    async def patch(
        self, resource: Resource, name: str, patch: JsonObject, *, subresource: str | None = None
    ) -> JsonObject:
        """A JSON merge patch (RFC 7386): ``None`` removes a field. A patch holding
        ``metadata.resourceVersion`` is refused with 409 if the object has changed since."""
        return await self.request(
            "PATCH",
            resource.path(self.namespace, name, subresource),
            body=patch,
            content_type="application/merge-patch+json",
        )

    async def delete(
        self, resource: Resource, name: str, *, grace_period_seconds: int | None = None
    ) -> bool:
        """Delete the object; False when it was already gone."""
        options: JsonObject = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        try:
            await self.request("DELETE", resource.path(self.namespace, name), body=options)
        except KubeApiError as err:
            if err.not_found:
                return False
            raise
        return True

    async def log_tail(self, pod: str, container: str, *, keep: int) -> tuple[bytes, int]:
        """The last ``keep`` bytes of a container's log and how many it holds in all.

        Read as a stream, so memory stays within about ``keep`` bytes however long the log.
        """
        query: list[tuple[str, Any]] = [("container", container)]
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60)
        response = await self._call(
            "GET", PODS.path(self.namespace, pod, "log"), query=query, timeout=timeout
        )
        async with response:
            if response.status != 200:
                text = await response.text()
                try:
                    raise KubeApiError.from_status(json.loads(text), response.status)
                except ValueError:
                    raise KubeApiError(response.status, response.reason or "", text[:200]) from None
            tail, written = bytearray(), 0
            async for chunk in response.content.iter_chunked(256 * 1024):
                written += len(chunk)
                tail += chunk
                if len(tail) > 2 * keep:
                    del tail[: len(tail) - keep]
        return bytes(tail[-keep:] if keep else b""), written

    async def watch(
        self,
        resource: Resource,
        *,
        resource_version: str | None,
        timeout_seconds: int,
        label_selector: str | None = None,
    ) -> AsyncIterator[JsonObject]:
        """The watch events (``{"type", "object"}``) from ``resource_version`` until the
        server ends the stream; an ``ERROR`` event is raised as ``KubeApiError``."""
        query: list[tuple[str, Any]] = [
            ("watch", True),
            ("timeoutSeconds", timeout_seconds),
            ("allowWatchBookmarks", True),
        ]
        if resource_version:
            query.append(("resourceVersion", resource_version))
        if label_selector:
            query.append(("labelSelector", label_selector))
        # The server closes the stream after timeout_seconds; a silent connection for longer
        # than that is a dead one.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=timeout_seconds + 30)
        response = await self._call(
            "GET", resource.path(self.namespace), query=query, timeout=timeout
        )
        async with response:
            if response.status != 200:
                text = await response.text()
                try:
                    raise KubeApiError.from_status(json.loads(text), response.status)
                except ValueError:
                    raise KubeApiError(response.status, response.reason or "", text[:200]) from None
            while line := await response.content.readline():
                if not line.strip():
                    continue
                event: JsonObject = json.loads(line)
                if event.get("type") == "ERROR":
                    raise KubeApiError.from_status(event.get("object") or {}, 500)
                yield event


@asynccontextmanager
async def open_kube(*, namespace: str, user_agent: str) -> AsyncIterator[Kube]:
    """A client for the cluster we run in (service account), else the current kubeconfig."""
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        k8s_config.load_incluster_config()  # type: ignore[no-untyped-call]
        api = k8s_client.ApiClient()
    else:
        configuration = k8s_client.Configuration()
        await k8s_config.load_kube_config(client_configuration=configuration)
        api = k8s_client.ApiClient(configuration)
    api.user_agent = user_agent
    async with api:
        yield Kube(api, namespace=namespace)
