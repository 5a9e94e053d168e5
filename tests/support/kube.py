"""A Kubernetes API server for tests: kmock's KubernetesEmulator over real HTTP, made faithful.

ARCHITECTURE section 9: tests drive the controller (and the api) through kubernetes-asyncio
against kmock's in-memory emulator on a loopback port. The emulator is a JSON store with
Kubernetes URLs; where it differs from a real API server in ways our code depends on, this
one module closes the gap, so product code runs here exactly as it would against a cluster:

- ``POST`` (create) answers ``201 Created``, not ``200``;
- ``?watch=True`` (what kubernetes-asyncio sends) is a watch, not only ``?watch=true``;
- a created object gets ``metadata.namespace`` from the URL, plus ``uid``,
  ``creationTimestamp`` and a ``resourceVersion`` that grows with every change;
- a patch carrying ``metadata.resourceVersion`` is a precondition (``409 Conflict`` when stale),
  which leader election relies on;
- resources with a ``status`` subresource keep spec and status apart: a create or a patch of
  the object ignores ``status``, a patch of ``/status`` changes only ``status``; a new pod
  starts ``Pending``;
- lists carry a ``resourceVersion`` and honour ``labelSelector``; a watch from a
  ``resourceVersion`` replays only the changes after it (including deletions), and a watch
  from no version starts with every object as ``ADDED``, then follows changes without a gap;
- a delete that only marks an object (it has finalizers: a ``deletionTimestamp``) gets a
  new ``resourceVersion``, and removing the last finalizer of such an object ends it with a
  ``DELETED`` event, as on a real server;
- a pod has a log (``GET .../pods/<name>/log``, which the emulator lacks) as the API server
  serves it from the kubelet: ``container`` (required when the pod has several), ``tailLines``,
  ``follow`` (until the container has terminated); ``400`` while the container is waiting
  to start, ``404`` once the pod is gone. Tests play the container with ``write_pod_log``.

Tests also get the failures a real server produces: ``disconnect_watches()`` ends every open
watch stream (a load balancer's idle timeout), ``expire_watches()`` answers ``410 Gone`` to
every open and resumed watch (etcd compaction), so a client must relist.

``served`` and ``requests_to()`` list the requests served; ``fail_next()`` makes the next
requests of a kind fail, for retry and backoff tests.

Where it still differs from a real API server, the product follows the real one, which the
cluster tier (``make test-cluster``, ``tests/cluster/``: kube-apiserver 1.20 on etcd) checks:

- no RBAC and no authentication: only the tier shows that each service's Role allows every
  request it makes (and nothing else); the chart's grants no service used went away for it;
- no admission: a real server gives every pod the namespace's ``default`` service account
  and, unless the pod says ``automountServiceAccountToken: false`` (job pods do, since
  the tier showed it), mounts its token into the user's containers;
- no schema: a real server rejects a PhJob its CRD schema refuses (422) and prunes fields
  the schema lacks (``tests/controller/test_crd.py`` keeps model and schema in step);
- deletion is immediate: a real server deletes a pod bound to a node gracefully (it stays,
  with a ``deletionTimestamp``, until its kubelet is done), which the controller's cancel
  must not take for a failure;
- watches end only when a test says so: a real server ends every watch after its
  ``timeoutSeconds`` and answers ``410 Gone`` to a resume from a version it no longer has
  (after it restarted, say), which ``expire_watches()`` imitates;
- a 403 carries the server's sentence naming the user, verb and resource; the api passes it on.

``serve_kube()`` runs it; ``api_client_for()`` gives a kubernetes-asyncio client for it. The
fixtures ``kube_emulator`` and ``kube_api`` in ``tests/conftest.py`` use both.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import itertools
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import kmock
import yaml
from kmock._internal import aiobus, enums, rendering
from kubernetes_asyncio import client as k8s_client

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "helm" / "crds" / "phjobs.yaml"

CORE_RESOURCES: dict[str, kmock.ResourceInfo] = {
    "v1/pods": kmock.ResourceInfo(
        kind="Pod", singular="pod", namespaced=True, subresources={"status", "log"}
    ),
    "v1/configmaps": kmock.ResourceInfo(kind="ConfigMap", singular="configmap", namespaced=True),
    "v1/events": kmock.ResourceInfo(kind="Event", singular="event", namespaced=True),
    "coordination.k8s.io/v1/leases": kmock.ResourceInfo(
        kind="Lease", singular="lease", namespaced=True
    ),
}

_HANG_UP = "hang-up"
"""A bus item that tells every open watch stream to end, as a dropped connection would."""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
    }


def _parse_selector(text: str | None) -> list[tuple[str, str | None, bool]]:
    """``a=b,c,!d,e!=f`` as (key, value or None for existence, wanted)."""
    terms: list[tuple[str, str | None, bool]] = []
    for term in filter(None, (part.strip() for part in (text or "").split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            terms.append((key.strip(), value.strip(), False))
        elif "=" in term:
            key, value = term.split("=", 1)
            terms.append((key.strip(), value.lstrip("=").strip(), True))
        elif term.startswith("!"):
            terms.append((term[1:].strip(), None, False))
        else:
            terms.append((term, None, True))
    return terms


def _labels_match(obj: Mapping[str, Any], terms: list[tuple[str, str | None, bool]]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for key, value, wanted in terms:
        found = key in labels if value is None else labels.get(key) == value
        if found != wanted:
            return False
    return True


@attrs.define(kw_only=True, eq=False)
class _RecordingBus(aiobus.Bus[Any]):
    """The emulator's per-resource event bus, also kept as a history for resumed watches."""

    clock: Any = None
    history: list[dict[str, Any]] = attrs.field(factory=list)

    async def put(self, *items: Any) -> None:
        stamped = []
        for item in items:
            if isinstance(item, dict) and item.get("type") == "DELETED" and self.clock:
                # A deletion is a change: it gets its own, newer resourceVersion.
                item = copy.deepcopy(item)
                item["object"].setdefault("metadata", {})["resourceVersion"] = str(self.clock())
            if isinstance(item, dict) and item.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                self.history.append(item)
            stamped.append(item)
        await super().put(*stamped)


@attrs.define(kw_only=True)
class KubeEmulator(kmock.KubernetesEmulator):
    """kmock's KubernetesEmulator with the gaps listed in the module docstring closed."""

    _clock: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1), init=False)
    _rv: int = attrs.field(default=0, init=False)
    _oldest_rv: int = attrs.field(default=0, init=False)
    _writes: asyncio.Lock = attrs.field(factory=asyncio.Lock, init=False)
    _status_subresources: set[Any] = attrs.field(factory=set, init=False)
    _kinds: dict[Any, tuple[str, str]] = attrs.field(factory=dict, init=False)
    _failures: dict[tuple[Any, Any], list[int]] = attrs.field(factory=dict, init=False)
    _log: list[rendering.Request] = attrs.field(factory=list, init=False)
    _watching: collections.Counter[Any] = attrs.field(factory=collections.Counter, init=False)
    latency: float = 0.0
    """Seconds added to every request but watches: a remote API server's round trip."""
    _inflight: dict[int, rendering.Request] = attrs.field(factory=dict, init=False)
    _pod_logs: dict[tuple[str, str, str], bytearray] = attrs.field(factory=dict, init=False)
    log_poll: float = 0.02
    """How often a followed pod log looks for new bytes and for its container's end."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._buses = collections.defaultdict(lambda: _RecordingBus(clock=self._tick))

    def _tick(self) -> int:
        self._rv = next(self._clock)
        return self._rv

    # -- declaring resources ------------------------------------------------------------

    def declare(self, resource: str, info: kmock.ResourceInfo) -> None:
        self.resources[resource] = info
        key = kmock.resource(resource)
        if "status" in info.subresources:
            self._status_subresources.add(key)
        api_version = resource.rsplit("/", 1)[0]
        self._kinds[key] = (api_version, info.kind or "")

    def declare_crd(self, document: Mapping[str, Any]) -> None:
        spec = document["spec"]
        names = spec["names"]
        for version in spec["versions"]:
            self.declare(
                f"{spec['group']}/{version['name']}/{names['plural']}",
                kmock.ResourceInfo(
                    kind=names["kind"],
                    singular=names.get("singular"),
                    namespaced=spec["scope"] == "Namespaced",
                    shortnames=set(names.get("shortNames", [])),
                    subresources=set(version.get("subresources", {})),
                ),
            )

    # -- what tests use -----------------------------------------------------------------

    def read_object(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        key = (kmock.resource(resource), namespace, name)
        if key not in self.objects or self.objects[key].deleted:
            return None
        return copy.deepcopy(self.objects[key].raw)

    def list_objects(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        wanted = kmock.resource(resource)
        return [
            copy.deepcopy(obj.raw)
            for (res, ns, _), obj in self.objects.items()
            if res == wanted and not obj.deleted and (namespace is None or ns == namespace)
        ]

    def requests_to(self, action: str, resource: str) -> list[rendering.Request]:
        """The requests served so far for one action (``create``, ``watch``...) on a resource."""
        wanted = kmock.resource(resource)
        return [
            request
            for request in self._log
            if request.action == enums.action(action) and request.resource == wanted
        ]

    @property
    def served(self) -> list[rendering.Request]:
        """Every request served so far, oldest first."""
        return list(self._log)

    def open_watches(self, resource: str) -> int:
        """How many watch streams on ``resource`` are open and following changes now."""
        return self._watching[kmock.resource(resource)]

    def write_pod_log(
        self, namespace: str, pod: str, data: bytes, *, container: str = "job"
    ) -> None:
        """Play a pod's container: append ``data`` to what it wrote (its log)."""
        self._pod_logs.setdefault((namespace, pod, container), bytearray()).extend(data)

    def fail_next(self, action: str, resource: str, *, times: int = 1, status: int = 500) -> None:
        """Answer the next ``times`` requests of ``action`` on ``resource`` with ``status``."""
        key = (enums.action(action), kmock.resource(resource))
        self._failures.setdefault(key, []).extend([status] * times)

    async def disconnect_watches(self) -> None:
        """End every open watch stream, as a dropped connection or a proxy timeout would."""
        for bus in list(self._buses.values()):
            await bus.put(_HANG_UP)

    async def expire_watches(self) -> None:
        """Compact history: open watches get ``410 Gone``, so do resumes from older versions."""
        async with self._lock:
            self._oldest_rv = self._tick()
        gone = {"type": "ERROR", "object": _status(410, "Expired", "too old resource version")}
        for bus in list(self._buses.values()):
            await bus.put(gone)

    # -- closing the gaps -------------------------------------------------------------------

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        watch = raw_request.query.get("watch")
        if watch is not None and watch != watch.lower():
            raw_request = raw_request.clone(
                rel_url=raw_request.rel_url.update_query(watch=watch.lower())
            )
        response = await super().__call__(raw_request)
        if raw_request.method == "POST" and response.status == 200 and not response.prepared:
            response.set_status(201)
        return response

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        # kmock matches each request against its whole request history: quadratic, 50 ms a
        # request after a few thousand. Keep only the requests still being served there
        # (all that matching needs) and our own log for tests.
        self._log.append(request)
        if self.latency and request.action != enums.action.WATCH:
            await asyncio.sleep(self.latency)
        self._inflight[id(request)] = request
        self._requests[:] = list(self._inflight.values())
        try:
            return await self._handle_faithfully(request)
        finally:
            del self._inflight[id(request)]

    async def _handle_faithfully(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        planned = self._failures.get((request.action, request.resource))
        if planned:
            status = planned.pop(0)
            raise kmock.KubernetesError(status=status, reason="Planned", message="fail_next()")
        if request.resource == kmock.resource("v1/pods") and request.subresource == "log":
            return await self._serve_pod_log(request)
        if request.resource is not None and request.action == enums.action.DELETE:
            async with self._writes:
                self._admit_delete(request)
                return await super()._handle(request)
        if request.resource is None or request.action not in (
            enums.action.CREATE,
            enums.action.UPDATE,
        ):
            return await super()._handle(request)
        # Check preconditions and stamp versions atomically with the emulator's own write.
        async with self._writes:
            if request.action == enums.action.CREATE:
                self._admit_create(request)
            else:
                self._admit_update(request)
            response = await super()._handle(request)
            await self._announce_release(request)
            return response

    def _admit_delete(self, request: rendering.Request) -> None:
        """A delete that only marks the object (it has finalizers) changes it: a new version."""
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            return
        metadata = self.objects[key].raw.get("metadata") or {}
        if metadata.get("finalizers") and not metadata.get("deletionTimestamp"):
            self.objects[key].patch({"metadata": {"resourceVersion": str(self._tick())}})

    async def _announce_release(self, request: rendering.Request) -> None:
        """The emulator removes an object whose last finalizer went without a ``DELETED``
        event; a real API server sends one, which watchers rely on."""
        key = (request.resource, request.namespace, request.name)
        if request.name is None or key not in self.objects or not self.objects[key].deleted:
            return
        last = copy.deepcopy(self.objects[key].last.raw)
        if (last.get("metadata") or {}).get("deletionTimestamp"):
            await self._buses[request.resource].put({"type": "DELETED", "object": last})

    def _admit_create(self, request: rendering.Request) -> None:
        data = request.data
        if not isinstance(data, dict):
            raise kmock.KubernetesError(status=400, reason="BadRequest", message="not an object")
        metadata = data.setdefault("metadata", {})
        if request.namespace and not metadata.get("namespace"):
            metadata["namespace"] = request.namespace
        if not metadata.get("name") and metadata.get("generateName"):
            metadata["name"] = metadata["generateName"] + uuid.uuid4().hex[:5]
        if not metadata.get("name"):
            raise kmock.KubernetesError(
                status=422, reason="Invalid", message="metadata.name: Required value"
            )
        key = (request.resource, metadata.get("namespace"), metadata["name"])
        if key in self.objects and not self.objects[key].deleted:
            return  # the emulator answers 409 itself
        metadata["uid"] = str(uuid.uuid4())
        metadata["creationTimestamp"] = _now()
        metadata["generation"] = 1
        metadata["resourceVersion"] = str(self._tick())
        if request.resource in self._status_subresources:
            data.pop("status", None)
            if request.resource == kmock.resource("v1/pods"):
                data["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
        api_version, kind = self._kinds.get(request.resource, ("", ""))
        if kind:
            data.setdefault("apiVersion", api_version)
            data.setdefault("kind", kind)

    def _admit_update(self, request: rendering.Request) -> None:
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            return  # the emulator answers 404 itself
        current = self.objects[key].raw
        rv = str(self._rv + 1)
        data = request.data
        if isinstance(data, list):  # a JSON patch
            data.append({"op": "add", "path": "/metadata/resourceVersion", "value": rv})
            self._tick()
            return
        if not isinstance(data, dict):
            raise kmock.KubernetesError(status=400, reason="BadRequest", message="not a patch")
        expected = (data.get("metadata") or {}).get("resourceVersion")
        actual = current.get("metadata", {}).get("resourceVersion")
        if expected is not None and expected != actual:
            raise kmock.KubernetesError(
                status=409,
                reason="Conflict",
                message=f"the object has been modified (resourceVersion {actual}, not {expected})",
            )
        if request.resource in self._status_subresources:
            if request.subresource == "status":
                kept = {"status": data.get("status")} if "status" in data else {}
                data.clear()
                data.update(kept)
            elif request.subresource is None:
                data.pop("status", None)
        metadata = data.setdefault("metadata", {})
        for immutable in ("uid", "creationTimestamp", "namespace", "name"):
            metadata.pop(immutable, None)
        metadata["resourceVersion"] = str(self._tick())

    # -- pod logs ---------------------------------------------------------------------------

    def _container_state(self, namespace: str, pod: str, container: str) -> str:
        """``waiting``, ``running``, ``terminated`` (``gone`` with the pod), as the kubelet says."""
        found = self.read_object("v1/pods", namespace, pod)
        if found is None:
            return "gone"
        for status in (found.get("status") or {}).get("containerStatuses") or []:
            if status.get("name") == container:
                state = status.get("state") or {}
                for name in ("terminated", "running"):
                    if name in state:
                        return name
        return "waiting"

    def _log_container(self, request: rendering.Request) -> tuple[str, str, str]:
        namespace, pod = request.namespace or "", request.name or ""
        found = self.read_object("v1/pods", namespace, pod)
        if found is None:
            raise kmock.KubernetesError(
                status=404, reason="NotFound", message=f'pods "{pod}" not found'
            )
        spec = found.get("spec") or {}
        names = [c["name"] for c in spec.get("containers", []) + spec.get("initContainers", [])]
        container = request.params.get("container") or (names[0] if len(names) == 1 else "")
        if not container:
            raise kmock.KubernetesError(
                status=400,
                reason="BadRequest",
                message=f"a container name must be specified for pod {pod}, "
                f"choose one of: [{' '.join(names)}]",
            )
        if container not in names:
            raise kmock.KubernetesError(
                status=400,
                reason="BadRequest",
                message=f"container {container} is not valid for pod {pod}",
            )
        if self._container_state(namespace, pod, container) == "waiting":
            raise kmock.KubernetesError(
                status=400,
                reason="BadRequest",
                message=f'container "{container}" in pod "{pod}" is waiting to start: '
                "ContainerCreating",
            )
        return namespace, pod, container

    async def _serve_pod_log(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        key = self._log_container(request)
        data = bytes(self._pod_logs.get(key, b""))
        tail = request.params.get("tailLines")
        start = 0
        if tail is not None:
            lines = data.splitlines(keepends=True)
            kept = lines[-int(tail) :] if int(tail) else []
            start = len(data) - sum(map(len, kept))
        follow = request.params.get("follow", "false").lower() == "true"
        raw = request._raw_request
        assert raw is not None
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(raw)
        await response.write(data[start:])
        sent = len(data)
        while follow:
            state = self._container_state(*key)
            log = self._pod_logs.get(key, b"")
            if len(log) > sent:
                await response.write(bytes(log[sent:]))
                sent = len(log)
            elif state != "running":
                break
            else:
                await asyncio.sleep(self.log_poll)
        await response.write_eof()
        return response

    async def _serve_list(self, request: rendering.Request) -> rendering.Payload:
        if request.resource not in self._get_resources():
            raise kmock.KubernetesResourceNotFoundError()
        terms = _parse_selector(request.params.get("labelSelector"))
        async with self._lock:
            items = [
                copy.deepcopy(obj.raw)
                for obj in self._matching(request)
                if _labels_match(obj.raw, terms)
            ]
            version = max(self._rv, self._oldest_rv)
        api_version, kind = self._kinds.get(request.resource, ("v1", ""))
        return {
            "apiVersion": api_version,
            "kind": f"{kind}List",
            "metadata": {"resourceVersion": str(version)},
            "items": items,
        }

    async def _serve_watch(self, request: rendering.Request) -> AsyncIterator[rendering.Payload]:
        yield b""  # send the headers now: a watch with nothing to say is still open
        assert request.resource is not None
        bus = self._buses[request.resource]
        terms = _parse_selector(request.params.get("labelSelector"))
        since = request.params.get("resourceVersion") or ""
        async with self._lock:
            # Mark the bus while holding the lock the writers hold: no change falls in between.
            marker = await bus.mark()
            replay: list[Any]
            if since not in ("", "0") and int(since) < self._oldest_rv:
                replay = [{"type": "ERROR", "object": _status(410, "Expired", "too old")}]
            elif since in ("", "0"):
                replay = [
                    {"type": "ADDED", "object": copy.deepcopy(obj.raw)}
                    for obj in self._matching(request)
                ]
            else:
                replay = [
                    event
                    for event in bus.history
                    if int(event["object"]["metadata"]["resourceVersion"]) > int(since)
                ]
        self._watching[request.resource] += 1
        try:
            async for event in _replay_then_follow(replay, bus, marker):
                if event == _HANG_UP:
                    return
                if event["type"] == "ERROR":
                    yield event
                    return
                if self._event_matches(request, event["object"]) and _labels_match(
                    event["object"], terms
                ):
                    yield event
        finally:
            self._watching[request.resource] -= 1
            await bus.unmark(marker)

    def _matching(self, request: rendering.Request) -> Iterable[Any]:
        for (resource, namespace, name), obj in self.objects.items():
            if resource != request.resource or obj.deleted:
                continue
            if request.namespace is not None and namespace != request.namespace:
                continue
            if request.name is not None and name != request.name:
                continue
            yield obj

    @staticmethod
    def _event_matches(request: rendering.Request, obj: Mapping[str, Any]) -> bool:
        metadata = obj.get("metadata") or {}
        if request.namespace is not None and metadata.get("namespace") != request.namespace:
            return False
        return request.name is None or metadata.get("name") == request.name


async def _replay_then_follow(
    replay: list[Any], bus: aiobus.Bus[Any], marker: aiobus.BusMark[Any]
) -> AsyncIterator[Any]:
    for item in replay:
        yield item
    async for item in bus.stream(since=marker):
        yield item


def phjob_crd() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(CRD_PATH.read_text(encoding="utf-8"))
    return document


@asynccontextmanager
async def serve_kube(*, latency: float = 0.0) -> AsyncIterator[tuple[KubeEmulator, str]]:
    """A fresh emulator that knows the PhJob CRD and the core resources, on a loopback port."""
    async with (
        KubeEmulator(latency=latency) as emulator,
        kmock.Server(emulator, host="127.0.0.1") as server,
    ):
        emulator.declare_crd(phjob_crd())
        for resource, info in CORE_RESOURCES.items():
            emulator.declare(resource, info)
        yield emulator, str(server.url).rstrip("/")


def api_client_for(url: str) -> k8s_client.ApiClient:
    """A kubernetes-asyncio client for ``url``, as a kubeconfig without credentials gives."""
    configuration = k8s_client.Configuration(host=url)
    return k8s_client.ApiClient(configuration)
