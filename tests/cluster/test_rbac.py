"""The chart's RBAC is enough and not more, as a real API server enforces it.

``GRANTS`` (``support/deploy.py``) is the grant table the chart's Roles are checked against
in tests/deploy. Here the controller and the api run their whole repertoire with their own
service-account tokens; the API server's audit log then shows that none of their requests
was refused and that they used every grant (a grant nobody uses is one too many). Every
request outside the table, by either identity, is answered ``403 Forbidden``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config
from redis.asyncio import Redis
from support.cluster import TIMEOUT, ChartNamespace, Cluster, ClusterError, Identity, bind_pod
from support.deploy import GRANTS
from support.phjobs import (
    STAND_IN_SCRIPT,
    eventually,
    new_phjob,
    running,
    set_pod_status,
    terminated,
    wait_for_phase,
    wait_for_pod,
)

from artifacts_api.jobindex import JobQuery
from artifacts_api.kube import KubernetesJobSource
from artifacts_api.logreaders import LogGone
from artifacts_controller.controller import run_elected
from artifacts_controller.expiry_feed import ExpiryFeed
from artifacts_controller.kube import CONFIGMAPS, PHJOBS, Kube
from artifacts_controller.metrics import ControllerMetrics
from artifacts_controller.pods import SCRIPT_KEY, SCRIPTS_CONFIGMAP
from artifacts_controller.settings import ControllerSettings
from artifacts_shared.input_holds import InputHolds
from artifacts_shared.phjob import API_GROUP, API_VERSION, PhJobPhase, PhJobStatus, new_job_id
from artifacts_shared.s3 import S3Client, open_s3

VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
SUBRESOURCE_VERBS = ("get", "update", "patch")

# Resources neither service may touch at all, beyond the ones in the table.
STRANGERS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "secrets"): ("get", "list"),
    ("", "serviceaccounts/token"): ("create",),
    ("", "pods/exec"): ("create",),
    ("", "pods/log"): ("get",),
    ("", "pods/status"): ("patch",),
    ("", "pods/binding"): ("create",),
    ("rbac.authorization.k8s.io", "roles"): ("list", "create"),
    ("rbac.authorization.k8s.io", "rolebindings"): ("create",),
}
VERSIONS = {"": "v1", API_GROUP: API_VERSION, "coordination.k8s.io": "v1"}
VERSIONS["rbac.authorization.k8s.io"] = "v1"


@asynccontextmanager
async def client_for(
    cluster: Cluster, identity: Identity, namespace: str, folder: Path
) -> AsyncIterator[k8s_client.ApiClient]:
    path = cluster.kubeconfig(identity, folder / f"{identity.name}.kubeconfig", namespace=namespace)
    async with await k8s_config.new_client_from_config(config_file=str(path)) as api:
        yield api


async def _controller_repertoire(
    cluster: Cluster, chart: ChartNamespace, admin: Kube, controller: Kube,
    settings: ControllerSettings, expiry_feed: ExpiryFeed,
) -> None:  # fmt: skip
    """Everything the controller does: lease, watches, pods, status, cancel, its ConfigMap."""
    async with open_s3(settings) as s3:
        await _controller_acts(cluster, chart, admin, controller, settings, s3, expiry_feed)


async def _controller_acts(
    cluster: Cluster, chart: ChartNamespace, admin: Kube, controller: Kube,
    settings: ControllerSettings, s3: S3Client, expiry_feed: ExpiryFeed,
) -> None:  # fmt: skip
    redis = Redis.from_url(settings.redis_url)
    elected = asyncio.create_task(
        run_elected(
            kube=controller,
            settings=settings,
            script=STAND_IN_SCRIPT,
            metrics=ControllerMetrics(),
            s3=s3,
            expiry_feed=expiry_feed,
            input_holds=InputHolds(redis),
        )
    )
    mark = cluster.audit_mark()
    try:
        job = new_phjob()
        await admin.create(PHJOBS, job.to_k8s())
        name = job.metadata.name
        await wait_for_pod(admin, name, timeout=TIMEOUT)
        await bind_pod(admin, name)
        await set_pod_status(admin, name, running())
        await wait_for_phase(admin, name, PhJobPhase.RUNNING, timeout=TIMEOUT)
        await admin.patch(PHJOBS, name, {"spec": {"cancel": True}})
        await wait_for_phase(admin, name, PhJobPhase.CANCELLED, timeout=TIMEOUT)
        # Someone edits the script; the next job's start puts it back.
        await admin.patch(CONFIGMAPS, SCRIPTS_CONFIGMAP, {"data": {SCRIPT_KEY: "edited"}})
        await asyncio.sleep(settings.controller_resync_seconds + 0.2)
        second = new_phjob()
        await admin.create(PHJOBS, second.to_k8s())
        await wait_for_pod(admin, second.metadata.name, timeout=TIMEOUT)

        async def script_restored() -> bool:
            found = await admin.get(CONFIGMAPS, SCRIPTS_CONFIGMAP)
            return found is not None and found["data"][SCRIPT_KEY] == STAND_IN_SCRIPT

        await eventually(script_restored, timeout=TIMEOUT, what="the script to be put back")
        # The second job ends: the controller reads its pod's log to keep it (pod_logs.py).
        await bind_pod(admin, second.metadata.name)
        await set_pod_status(admin, second.metadata.name, terminated("Succeeded", 0))

        async def log_read() -> bool:
            return any(
                event.user == chart.controller.username and event.resource_path == "pods/log"
                for event in cluster.audit_since(mark)
            )

        await eventually(log_read, timeout=TIMEOUT, what="the controller to read the pod's log")
    finally:
        elected.cancel()  # releases the lease: a last patch
        await asyncio.gather(elected, return_exceptions=True)
        await redis.aclose()


async def _api_repertoire(source: KubernetesJobSource) -> None:
    """Everything the api asks of Kubernetes: list and watch (its index), create, get, cancel,
    and a running job's pod log."""
    async with source:
        job = await source.create(new_phjob())
        page = await source.page(JobQuery(groups=None, first=50))
        assert job.id in [listed.id for listed in page.jobs]
        assert await source.get(job.id) is not None  # from the index
        assert await source.get(new_job_id()) is None  # not in the index: asked, 404
        cancelled = await source.request_cancel(job.id)
        assert cancelled is not None and cancelled.spec.cancel
        # No kubelet here, so no pod: the log request gets past authorization to a 404.
        running = job.model_copy(update={"status": PhJobStatus(pod_name=job.id)})
        log = await source.live_log(running)
        assert log is not None
        with pytest.raises(LogGone):
            await log.stream(tail_lines=10, follow=False)
        await log.aclose()


async def test_every_request_the_services_make_is_allowed_and_every_grant_is_used(
    cluster: Cluster,
    chart: ChartNamespace,
    admin_kube: Kube,
    controller_kube: Kube,
    controller_settings: ControllerSettings,
    expiry_feed: ExpiryFeed,
    tmp_path: Path,
) -> None:
    settings = controller_settings.model_copy(update={"controller_resync_seconds": 1.0})
    mark = cluster.audit_mark()
    await _controller_repertoire(cluster, chart, admin_kube, controller_kube, settings, expiry_feed)
    async with client_for(cluster, chart.api, chart.namespace, tmp_path) as api_client:
        await _api_repertoire(
            KubernetesJobSource(api_client, namespace=chart.namespace, timeout_seconds=10)
        )
    events = cluster.audit_since(mark)
    for service, identity in (("controller", chart.controller), ("api", chart.api)):
        mine = [event for event in events if event.user == identity.username]
        refused = [f"{e.verb} {e.uri} -> {e.code}" for e in mine if e.code in (401, 403)]
        assert refused == [], f"the {service} was refused: {refused}"
        used: dict[tuple[str, str], set[str]] = {}
        for event in mine:
            assert event.namespace == chart.namespace, f"{service} left its namespace: {event.uri}"
            used.setdefault((event.group, event.resource_path), set()).add(event.verb)
        granted = {key: set(verbs) for key, verbs in GRANTS[service].items()}
        assert used == granted, (
            f"the {service} used {sorted(used.items())}; its Role grants {sorted(granted.items())}"
        )


def _request(
    group: str, resource: str, verb: str, namespace: str
) -> tuple[str, str, dict[str, Any] | None, str]:
    """(method, path, body, content type) of ``verb`` on ``resource`` in ``namespace``."""
    root = f"/apis/{group}/{VERSIONS[group]}" if group else "/api/v1"
    plural, _, subresource = resource.partition("/")
    collection = f"{root}/namespaces/{namespace}/{plural}"
    one = f"{collection}/probe" + (f"/{subresource}" if subresource else "")
    body = {"metadata": {"name": "probe", "namespace": namespace}}
    merge = "application/merge-patch+json"
    return {
        "get": ("GET", one, None, ""),
        "list": ("GET", collection, None, ""),
        "watch": ("GET", f"{collection}?watch=true&timeoutSeconds=1", None, ""),
        "create": ("POST", one if subresource else collection, body, "application/json"),
        "update": ("PUT", one, body, "application/json"),
        "patch": ("PATCH", one, {}, merge),
        "delete": ("DELETE", one, None, ""),
        "deletecollection": ("DELETE", collection, None, ""),
    }[verb]


def _answer(cluster: Cluster, identity: Identity, request: tuple[str, str, Any, str]) -> int:
    method, path, body, content_type = request
    try:
        cluster.request(
            method,
            path,
            body,
            token=identity.token,
            content_type=content_type or "application/json",
        )
    except ClusterError as err:
        return err.status
    return 200


def _outside(service: str) -> list[tuple[str, str, str]]:
    """(group, resource, verb) for every request the service's grants leave out."""
    table = GRANTS[service]
    requests = []
    for (group, resource), verbs in table.items():
        possible = SUBRESOURCE_VERBS if "/" in resource else VERBS
        requests += [(group, resource, verb) for verb in possible if verb not in verbs]
    for (group, resource), verbs in STRANGERS.items():
        requests += [
            (group, resource, verb)
            for verb in verbs
            if verb not in table.get((group, resource), ())
        ]
    return requests


@pytest.mark.parametrize("service", ["controller", "api"])
def test_every_request_outside_the_grant_table_is_forbidden(
    cluster: Cluster, chart: ChartNamespace, service: str
) -> None:
    identity = chart.controller if service == "controller" else chart.api
    allowed = {
        f"{verb} {group or 'core'}/{resource}": status
        for group, resource, verb in _outside(service)
        if (status := _answer(cluster, identity, _request(group, resource, verb, chart.namespace)))
        != 403
    }
    assert allowed == {}, f"the {service} may do more than its grants: {allowed}"
    # Its grants hold in its namespace only, and give nothing cluster-wide.
    elsewhere = cluster.grant().namespace
    for group, resource in GRANTS[service]:
        if "/" not in resource:
            assert _answer(cluster, identity, _request(group, resource, "list", elsewhere)) == 403
    with pytest.raises(ClusterError) as cluster_wide:
        cluster.request("GET", "/api/v1/namespaces", token=identity.token)
    assert cluster_wide.value.status == 403


@pytest.mark.parametrize("service", ["controller", "api"])
def test_the_same_requests_for_granted_verbs_get_past_authorization(
    cluster: Cluster, chart: ChartNamespace, service: str
) -> None:
    """The requests above are the right ones: for a granted verb, the answer is not 403."""
    identity = chart.controller if service == "controller" else chart.api
    answers = {
        f"{verb} {group or 'core'}/{resource}": _answer(
            cluster, identity, _request(group, resource, verb, chart.namespace)
        )
        for (group, resource), verbs in GRANTS[service].items()
        for verb in verbs
    }
    assert 403 not in answers.values(), answers
