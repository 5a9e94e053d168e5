"""The api on a real API server with its own Role: create, list and cancel PhJobs through
GraphQL, a clear error when the Role denies a verb, and the CRD's schema at work.

The api finds the cluster as it does outside a pod, from ``KUBECONFIG`` (a kubeconfig that
holds the api's service-account token), and opens its own Kubernetes client.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from support.api import Api, api_settings, serve
from support.cluster import ChartNamespace, Cluster, ClusterError, Identity

from artifacts_api.settings import ApiSettings
from artifacts_shared.phjob import (
    ArtifactOverrides,
    PhJob,
    PhJobMetadata,
    PhJobSpec,
    new_job_id,
)
from artifacts_shared.settings import RedisSettings, S3Settings

CREATE = """mutation ($data: PhJobCreateInput!) {
  createPhJob(data: $data) { id displayName groupName userName phase command cancel }
}"""
CANCEL = "mutation ($id: ID!) { cancelPhJob(where: {id: $id}) { id cancel } }"
JOB = "query ($id: ID!) { phJob(where: {id: $id}) { id groupName phase cancel } }"
JOBS = "query { phJobs { totalCount nodes { id } } }"


def _phjobs_path(namespace: str, name: str = "") -> str:
    path = f"/apis/primehub.io/v1alpha1/namespaces/{namespace}/phjobs"
    return f"{path}/{name}" if name else path


@pytest.fixture
def settings(
    chart: ChartNamespace, s3_settings: S3Settings, redis_settings: RedisSettings, tmp_path: Path
) -> ApiSettings:
    return api_settings(
        s3_settings,
        redis_settings.redis_url,
        tmp_path / "unused-local-jobs",
        controller_runtime="kubernetes",
        kube_namespace=chart.namespace,
    )


@asynccontextmanager
async def serving_as(
    cluster: Cluster,
    identity: Identity,
    settings: ApiSettings,
    folder: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Api]:
    kubeconfig = cluster.kubeconfig(identity, folder / "api.kubeconfig")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    async with serve(settings) as api:
        yield api


@pytest.fixture
async def api(
    cluster: Cluster,
    chart: ChartNamespace,
    settings: ApiSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Api]:
    """The api with its own service account's token, in the chart's namespace."""
    async with serving_as(cluster, chart.api, settings, tmp_path, monkeypatch) as running:
        yield running


async def test_the_api_creates_lists_and_cancels_phjobs_with_its_own_role(
    cluster: Cluster, chart: ChartNamespace, api: Api
) -> None:
    mark = cluster.audit_mark()
    data = {"displayName": "seed", "groupName": "team-a", "command": "echo hi"}
    first = await api.graphql(CREATE, {"data": data})
    await asyncio.sleep(1.1)  # creationTimestamp has whole seconds; newest first needs two
    second = await api.graphql(CREATE, {"data": {**data, "displayName": "later"}})
    assert first.errors == [] and second.errors == [], (first.body, second.body)
    job_id = first.data["createPhJob"]["id"]
    later_id = second.data["createPhJob"]["id"]
    assert first.data["createPhJob"]["phase"] == "Pending"

    stored = cluster.request("GET", _phjobs_path(chart.namespace, job_id))
    assert stored["spec"] == {
        "displayName": "seed",
        "groupName": "team-a",
        "userName": "alice",
        "command": "echo hi",
        "cancel": False,
    }
    assert "status" not in stored and stored["metadata"]["uid"]

    listed = await api.graphql(JOBS)
    assert listed.data["phJobs"]["totalCount"] == 2
    assert [node["id"] for node in listed.data["phJobs"]["nodes"]] == [later_id, job_id]
    cancelled = await api.graphql(CANCEL, {"id": job_id})
    assert cancelled.data == {"cancelPhJob": {"id": job_id, "cancel": True}}
    read = await api.graphql(JOB, {"id": job_id})
    assert read.data["phJob"] == {
        "id": job_id,
        "groupName": "team-a",
        "phase": "Pending",
        "cancel": True,
    }
    assert cluster.request("GET", _phjobs_path(chart.namespace, job_id))["spec"]["cancel"] is True
    unknown = await api.graphql(JOB, {"id": new_job_id()})
    assert unknown.codes == ["NOT_FOUND"]

    answered = {
        (event.verb, event.code)
        for event in cluster.audit_since(mark)
        if event.user == chart.api.username
    }
    # Known jobs come from the api's watch-fed index; only an unknown one is asked for (the
    # watch itself is audited when it ends: test_rbac sees it).
    assert {("create", 201), ("list", 200), ("patch", 200), ("get", 404)} <= answered
    assert all(code < 400 or code == 404 for _, code in answered), answered


async def test_a_verb_the_role_does_not_grant_gives_a_clear_error_and_changes_nothing(
    cluster: Cluster, chart: ChartNamespace, api: Api
) -> None:
    # An operator's narrower Role: the api may read jobs, not create them.
    role = copy.deepcopy(chart.roles["api"])
    for rule in role["rules"]:
        rule["verbs"] = [verb for verb in rule["verbs"] if verb != "create"]
    cluster.apply(role)
    data = {"displayName": "seed", "groupName": "team-a", "command": "echo hi"}

    refused = await api.graphql(CREATE, {"data": data})

    assert refused.status == 200 and refused.codes == ["UNAVAILABLE"]
    message = refused.errors[0]["message"]
    assert message.startswith(
        f"Kubernetes forbids the api to create PhJobs in namespace {chart.namespace} "
        "(403 Forbidden): "
    ), message
    assert f'User "{chart.api.username}" cannot create resource "phjobs"' in message
    assert cluster.request("GET", _phjobs_path(chart.namespace))["items"] == []
    assert (await api.graphql(JOBS)).data["phJobs"]["totalCount"] == 0  # reading still works


async def test_an_api_pointed_at_a_namespace_without_its_role_says_so(
    cluster: Cluster,
    chart: ChartNamespace,
    settings: ApiSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    elsewhere = cluster.grant()  # a namespace whose Roles bind other accounts
    wrong = settings.model_copy(update={"kube_namespace": elsewhere.namespace})
    async with serving_as(cluster, chart.api, wrong, tmp_path, monkeypatch) as api:
        listed = await api.graphql(JOBS)
    assert listed.codes == ["UNAVAILABLE"]
    message = listed.errors[0]["message"]
    assert f"forbids the api to list PhJobs in namespace {elsewhere.namespace}" in message


def _full_job() -> PhJob:
    return PhJob(
        metadata=PhJobMetadata(name=new_job_id(), labels={"team": "a"}, annotations={"n": "1"}),
        spec=PhJobSpec(
            display_name="every field",
            user_name="alice",
            group_name="ML_Team",
            image="python:3.12-slim",
            command="echo hi",
            active_deadline_seconds=600,
            cancel=False,
            artifact=ArtifactOverrides(
                enabled=True, retention_seconds=0, limit_size_mb=5, limit_files=10
            ),
        ),
    )


def test_a_phjob_with_every_field_keeps_them_all(cluster: Cluster, chart: ChartNamespace) -> None:
    """The server prunes fields its schema lacks: none of the model's may be among them."""
    job = _full_job()
    body = job.to_k8s()
    body.pop("status")
    created = cluster.request("POST", _phjobs_path(chart.namespace), body, token=chart.api.token)
    assert created["spec"] == body["spec"]
    assert PhJob.from_k8s(created).spec == job.spec


MALFORMED: dict[str, tuple[dict[str, Any], str]] = {
    "no command": ({"displayName": "x", "groupName": "g"}, "spec.command: Required value"),
    "empty display name": (
        {"displayName": "", "groupName": "g", "command": "true"},
        "spec.displayName: Invalid value",
    ),
    "negative retention": (
        {"displayName": "x", "groupName": "g", "command": "true",
         "artifact": {"retentionSeconds": -1}},
        "spec.artifact.retentionSeconds: Invalid value",
    ),
    "deadline as text": (
        {"displayName": "x", "groupName": "g", "command": "true", "activeDeadlineSeconds": "1h"},
        "spec.activeDeadlineSeconds: Invalid value",
    ),
    "cancel as text": (
        {"displayName": "x", "groupName": "g", "command": "true", "cancel": "yes"},
        "spec.cancel: Invalid value",
    ),
}  # fmt: skip


@pytest.mark.parametrize(("spec", "complaint"), MALFORMED.values(), ids=list(MALFORMED))
def test_the_crd_schema_rejects_a_malformed_phjob(
    cluster: Cluster, chart: ChartNamespace, spec: dict[str, Any], complaint: str
) -> None:
    name = new_job_id()
    body = {
        "apiVersion": "primehub.io/v1alpha1",
        "kind": "PhJob",
        "metadata": {"name": name},
        "spec": spec,
    }
    with pytest.raises(ClusterError) as refused:
        cluster.request("POST", _phjobs_path(chart.namespace), body, token=chart.api.token)
    assert refused.value.status == 422, refused.value
    assert complaint in str(refused.value)
    with pytest.raises(ClusterError) as missing:
        cluster.request("GET", _phjobs_path(chart.namespace, name))
    assert missing.value.status == 404


def test_the_crd_schema_rejects_an_unknown_phase_in_the_status(
    cluster: Cluster, chart: ChartNamespace
) -> None:
    job = _full_job().to_k8s()
    job.pop("status")
    cluster.request("POST", _phjobs_path(chart.namespace), job)
    name = job["metadata"]["name"]
    with pytest.raises(ClusterError) as refused:
        cluster.request(
            "PATCH",
            _phjobs_path(chart.namespace, name) + "/status",
            {"status": {"phase": "Exploded"}},
            token=chart.controller.token,
            content_type="application/merge-patch+json",
        )
    assert refused.value.status == 422
    assert 'status.phase: Unsupported value: "Exploded"' in str(refused.value)
