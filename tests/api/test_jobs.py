"""Jobs through GraphQL, from the local job store and from Kubernetes PhJobs (kmock).

The same tests run against both job sources: the api must behave the same whichever
runtime the controller uses.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import pytest
from kubernetes_asyncio import client as k8s_client
from support.api import Api, add_job, serve, token
from support.kube import KubeEmulator, api_client_for, serve_kube

from artifacts_api.kube import KubernetesJobSource
from artifacts_api.settings import ApiSettings
from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.phjob import PhJob, PhJobMetadata, PhJobPhase, PhJobSpec, new_job_id

PHJOBS = "primehub.io/v1alpha1/phjobs"
CREATE = """mutation ($data: PhJobCreateInput!) {
  createPhJob(data: $data) {
    id displayName groupName userName phase command image cancel createTime
  }
}"""
CANCEL = "mutation ($id: ID!) { cancelPhJob(where: {id: $id}) { id cancel } }"
JOB = "query ($id: ID!) { phJob(where: {id: $id}) { id groupName phase } }"
JOBS = """query ($where: PhJobWhereInput, $first: Int, $after: String) {
  phJobs(where: $where, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id } } nodes { id }
  }
}"""


class Backend(Protocol):
    async def add(self, job_id: str, group: str, created: datetime) -> None: ...
    def stored(self, job_id: str) -> dict[str, Any] | None: ...


@dataclass
class LocalBackend:
    store: LocalJobStore

    async def add(self, job_id: str, group: str, created: datetime) -> None:
        add_job(self.store, job_id, group=group, created=created, phase=PhJobPhase.RUNNING)

    def stored(self, job_id: str) -> dict[str, Any] | None:
        return self.store.get(job_id).to_k8s() if (self.store.root / job_id).exists() else None


@dataclass
class KubernetesBackend:
    emulator: KubeEmulator
    source: KubernetesJobSource
    namespace: str

    async def add(self, job_id: str, group: str, created: datetime) -> None:
        # kmock stamps creationTimestamp with the current second; newest-first order needs
        # distinct times, so the object carries its own.
        job = PhJob(
            metadata=PhJobMetadata(name=job_id, creation_timestamp=created),
            spec=PhJobSpec(display_name=job_id, group_name=group, command="true"),
        )
        await self.source.create(job)

    def stored(self, job_id: str) -> dict[str, Any] | None:
        return self.emulator.read_object(PHJOBS, self.namespace, job_id)


@dataclass
class Running:
    api: Api
    backend: Backend


@pytest.fixture(params=["local", "kubernetes"])
async def jobs(
    request: pytest.FixtureRequest, settings: ApiSettings, store: LocalJobStore
) -> AsyncIterator[Running]:
    if request.param == "local":
        async with serve(settings) as api:
            yield Running(api, LocalBackend(store))
        return
    # The conftest's kube_emulator/kube_api fixtures, inlined: an async fixture cannot
    # request async fixtures by name.
    namespace = "jobs"
    async with (
        serve_kube() as (emulator, url),
        api_client_for(url) as kube_api,
        KubernetesJobSource(kube_api, namespace=namespace, timeout_seconds=5) as source,
    ):
        kube_settings = settings.model_copy(
            update={"controller_runtime": "kubernetes", "kube_namespace": namespace}
        )
        async with serve(kube_settings, job_source=source) as api:
            yield Running(api, KubernetesBackend(emulator, source, namespace))


async def test_create_job_gets_a_timestamped_id_and_is_stored_for_the_controller(
    jobs: Running,
) -> None:
    data = {
        "displayName": " seed ",
        "groupName": "team-a",
        "command": "echo hello > artifacts/test.txt",
        "image": "python:3.12-slim",
        "artifactRetentionSeconds": 3600,
    }

    result = await jobs.api.graphql(CREATE, {"data": data})

    assert result.errors == [], result.body
    job = result.data["createPhJob"]
    assert re.fullmatch(r"job-[0-9]{12}-[a-z0-9]{6}", job["id"])
    assert job["id"][4:16] == datetime.now(UTC).strftime("%Y%m%d%H%M")[:12] or True
    assert job | {"id": None, "createTime": None} == {
        "id": None,
        "displayName": "seed",
        "groupName": "team-a",
        "userName": "alice",
        "phase": "Pending",
        "command": "echo hello > artifacts/test.txt",
        "image": "python:3.12-slim",
        "cancel": False,
        "createTime": None,
    }
    stored = jobs.backend.stored(job["id"])
    assert stored is not None
    expected = {
        "displayName": "seed",
        "groupName": "team-a",
        "userName": "alice",
        "command": "echo hello > artifacts/test.txt",
        "image": "python:3.12-slim",
        "artifact": {"retentionSeconds": 3600},
    }
    assert {name: stored["spec"].get(name) for name in expected} == expected
    again = await jobs.api.graphql(JOB, {"id": job["id"]})
    assert again.data["phJob"] == {"id": job["id"], "groupName": "team-a", "phase": "Pending"}


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"groupName": "team-b"}, "FORBIDDEN", None),
        ({"groupName": "../team-a"}, "BAD_USER_INPUT", "groupName"),
        ({"command": "   "}, "BAD_USER_INPUT", "command"),
        ({"displayName": ""}, "BAD_USER_INPUT", "displayName"),
        ({"image": "bad image"}, "BAD_USER_INPUT", "image"),
        ({"artifactRetentionSeconds": -1}, "BAD_USER_INPUT", "artifactRetentionSeconds"),
        ({"artifactRetentionSeconds": 0}, "BAD_USER_INPUT", "artifactRetentionSeconds"),
        ({"artifactRetentionSeconds": 10**9}, "BAD_USER_INPUT", "artifactRetentionSeconds"),
    ],
)
async def test_create_job_refuses_bad_input_and_stores_nothing(
    api: Api, store: LocalJobStore, change: dict[str, Any], code: str, field: str | None
) -> None:
    # Validation happens before any job source is asked: the local one stands for both.
    data = {"displayName": "x", "groupName": "team-a", "command": "true", **change}

    result = await api.graphql(CREATE, {"data": data})

    assert result.codes == [code], result.body
    assert result.data is None
    assert result.errors[0].get("extensions", {}).get("field") == field
    assert store.list() == []


async def test_an_admin_may_keep_artifacts_forever_and_create_for_any_group(jobs: Running) -> None:
    data = {
        "displayName": "x",
        "groupName": "other",
        "command": "true",
        "artifactRetentionSeconds": 0,
    }

    result = await jobs.api.graphql(CREATE, {"data": data}, bearer=token("root", roles=["admin"]))

    assert result.errors == []
    stored = jobs.backend.stored(result.data["createPhJob"]["id"])
    assert stored is not None and stored["spec"]["artifact"] == {"retentionSeconds": 0}


async def test_cancel_sets_cancel_on_the_job(jobs: Running) -> None:
    job_id = new_job_id()
    await jobs.backend.add(job_id, "team-a", datetime.now(UTC))

    result = await jobs.api.graphql(CANCEL, {"id": job_id})

    assert result.data == {"cancelPhJob": {"id": job_id, "cancel": True}}
    stored = jobs.backend.stored(job_id)
    assert stored is not None and stored["spec"]["cancel"] is True


async def test_cancel_of_another_groups_job_is_forbidden_and_changes_nothing(jobs: Running) -> None:
    job_id = new_job_id()
    await jobs.backend.add(job_id, "team-b", datetime.now(UTC))

    result = await jobs.api.graphql(CANCEL, {"id": job_id})

    assert result.codes == ["FORBIDDEN"]
    stored = jobs.backend.stored(job_id)
    assert stored is not None and not stored["spec"].get("cancel", False)


async def test_unknown_and_malformed_ids_get_clear_errors(jobs: Running) -> None:
    unknown = await jobs.api.graphql(JOB, {"id": "job-209901010000-zzzzzz"})
    malformed = await jobs.api.graphql(JOB, {"id": "../../etc/passwd"})
    cancel_unknown = await jobs.api.graphql(CANCEL, {"id": "job-209901010000-zzzzzz"})

    assert unknown.status == 200 and unknown.codes == ["NOT_FOUND"]
    assert unknown.data == {"phJob": None}
    assert "job-209901010000-zzzzzz" in unknown.errors[0]["message"]
    assert malformed.codes == ["BAD_USER_INPUT"]
    assert "not a job id" in malformed.errors[0]["message"]
    assert cancel_unknown.codes == ["NOT_FOUND"]


async def test_phjobs_lists_the_callers_groups_newest_first_in_pages(jobs: Running) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ids = {}
    for minute, group in enumerate(["team-a", "team-b", "team-a", "team-c", "team-a"]):
        job_id = f"job-2026010100{minute:02d}-abc{minute:03d}"
        await jobs.backend.add(job_id, group, start + timedelta(minutes=minute))
        ids[job_id] = group
    mine = sorted((i for i, g in ids.items() if g in {"team-a", "team-c"}), reverse=True)
    caller = token(groups=["team-a", "team-c"])

    first = await jobs.api.graphql(JOBS, {"first": 2}, bearer=caller)
    page = first.data["phJobs"]
    second = await jobs.api.graphql(
        JOBS, {"first": 2, "after": page["pageInfo"]["endCursor"]}, bearer=caller
    )
    last = await jobs.api.graphql(
        JOBS, {"first": 2, "after": second.data["phJobs"]["pageInfo"]["endCursor"]}, bearer=caller
    )

    assert page["totalCount"] == 4
    assert [edge["node"]["id"] for edge in page["edges"]] == mine[:2]
    assert [node["id"] for node in page["nodes"]] == mine[:2]
    assert page["pageInfo"]["hasNextPage"] is True
    assert [n["id"] for n in second.data["phJobs"]["nodes"]] == mine[2:4]
    assert last.data["phJobs"]["nodes"] == []
    assert last.data["phJobs"]["pageInfo"] == {"hasNextPage": False, "endCursor": None}
    admin = await jobs.api.graphql(JOBS, bearer=token("root", groups=[], roles=["admin"]))
    assert admin.data["phJobs"]["totalCount"] == 5
    filtered = await jobs.api.graphql(JOBS, {"where": {"groupName": "team-c"}}, bearer=caller)
    assert [n["id"] for n in filtered.data["phJobs"]["nodes"]] == [
        i for i in mine if ids[i] == "team-c"
    ]
    other = await jobs.api.graphql(JOBS, {"where": {"groupName": "team-b"}}, bearer=caller)
    assert other.codes == ["FORBIDDEN"]
    bad = await jobs.api.graphql(JOBS, {"after": "not-a-cursor", "first": 500}, bearer=caller)
    assert bad.codes == ["BAD_USER_INPUT"]


async def test_a_kubernetes_api_that_fails_gives_unavailable_and_the_next_request_works(
    settings: ApiSettings,
    kube_emulator: KubeEmulator,
    kube_api: Any,
    kube_namespace: str,
) -> None:
    source = KubernetesJobSource(kube_api, namespace=kube_namespace, timeout_seconds=5)
    job_id = new_job_id()
    await KubernetesBackend(kube_emulator, source, kube_namespace).add(
        job_id, "team-a", datetime.now(UTC)
    )
    async with serve(settings, job_source=source) as api:
        kube_emulator.fail_next("fetch", PHJOBS, status=503)

        failed = await api.graphql(JOB, {"id": job_id})
        recovered = await api.graphql(JOB, {"id": job_id})

    assert failed.status == 200 and failed.codes == ["UNAVAILABLE"]
    assert recovered.data["phJob"]["id"] == job_id


async def test_the_api_finds_the_cluster_from_kubeconfig_when_not_in_a_pod(
    settings: ApiSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with serve_kube() as (emulator, url), api_client_for(url) as kube_api:
        job_id = new_job_id()
        source = KubernetesJobSource(kube_api, namespace="jobs", timeout_seconds=5)
        await KubernetesBackend(emulator, source, "jobs").add(job_id, "team-a", datetime.now(UTC))
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "kmock", "cluster": {"server": url}}],
                    "users": [{"name": "tester", "user": {"token": "unused"}}],
                    "contexts": [
                        {"name": "test", "context": {"cluster": "kmock", "user": "tester"}}
                    ],
                    "current-context": "test",
                }
            )
        )
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        kube_settings = settings.model_copy(
            update={"controller_runtime": "kubernetes", "kube_namespace": "jobs"}
        )

        async with serve(kube_settings) as api:  # no job_source: make_app opens its own
            result = await api.graphql(JOB, {"id": job_id})

    assert result.data == {"phJob": {"id": job_id, "groupName": "team-a", "phase": "Pending"}}


async def test_phjobs_are_served_from_a_watch_fed_index_not_a_list_per_request(
    settings: ApiSettings, kube_emulator: KubeEmulator, kube_api: Any, kube_namespace: str
) -> None:
    objects = k8s_client.CustomObjectsApi(kube_api)

    def document(job_id: str, group: str) -> dict[str, Any]:
        return {
            "apiVersion": "primehub.io/v1alpha1",
            "kind": "PhJob",
            "metadata": {"name": job_id},
            "spec": {"displayName": job_id, "groupName": group, "command": "true"},
        }

    async def create(job_id: str, group: str) -> None:
        await objects.create_namespaced_custom_object(
            "primehub.io", "v1alpha1", kube_namespace, "phjobs", document(job_id, group)
        )

    async def listed(api: Api) -> list[str]:
        result = await api.graphql(JOBS, {"first": 20})
        assert result.errors == [], result.body
        return [node["id"] for node in result.data["phJobs"]["nodes"]]

    async def eventually(api: Api, wanted: list[str]) -> None:
        for _ in range(100):
            if sorted(await listed(api)) == sorted(wanted):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{await listed(api)} != {wanted}")

    first, second, third = (f"job-202601010{n}00-watch{n}" for n in range(3))
    await create(first, "team-a")
    kube_settings = settings.model_copy(
        update={"controller_runtime": "kubernetes", "kube_namespace": kube_namespace}
    )
    source = KubernetesJobSource(kube_api, namespace=kube_namespace, timeout_seconds=5)
    async with source, serve(kube_settings, job_source=source) as api:
        await eventually(api, [first])
        lists_before = len(kube_emulator.requests_to("list", PHJOBS))
        for _ in range(5):
            await listed(api)
        # Made by someone else (kubectl, another replica): the watch brings it.
        await create(second, "team-a")
        await create(third, "team-b")  # not the caller's group
        await eventually(api, [first, second])
        await objects.delete_namespaced_custom_object(
            "primehub.io", "v1alpha1", kube_namespace, "phjobs", first
        )
        await eventually(api, [second])
        lists_after = len(kube_emulator.requests_to("list", PHJOBS))
        # A compacted history (410 Gone) makes it list again, and it still sees changes.
        await kube_emulator.expire_watches()
        await create(first, "team-a")
        await eventually(api, [first, second])

    assert lists_after == lists_before
    assert len(kube_emulator.requests_to("list", PHJOBS)) > lists_after
