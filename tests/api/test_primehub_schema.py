"""PrimeHub's job schema beside ours: its create input, ``me``, instance types, its list paging."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from support.api import Api, add_job, serve, token

from artifacts_api.settings import ApiSettings
from artifacts_shared.instance_types import InstanceType
from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.phjob import PhJobPhase, PhJobStatus

GROUP = "team-a"
CREATE = """mutation ($data: PhJobCreateInput!) {
  createPhJob(data: $data) {
    id groupId groupName userId instanceType { id name cpuLimit } activeDeadlineSeconds
  }
}"""
PRESETS = [
    {"name": "cpu-1", "displayName": "CPU 1", "cpuLimit": 1, "memoryLimit": 1},
    {"name": "gpu-1", "cpuLimit": 8, "memoryLimit": 32.5, "gpuLimit": 1, "groups": ["team-b"],
     "nodeSelector": {"gpu": "a100"},
     "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]},
]  # fmt: skip


@pytest.fixture
async def presets_api(settings: ApiSettings) -> AsyncIterator[Api]:
    presets = [InstanceType(**preset) for preset in PRESETS]
    async with serve(settings.model_copy(update={"instance_types": presets})) as running:
        yield running


async def test_primehubs_create_input_makes_the_same_job_as_ours(
    presets_api: Api, store: LocalJobStore
) -> None:
    data = {
        "displayName": "from the sdk",
        "groupId": GROUP,
        "instanceType": "cpu-1",
        "image": "base-notebook",
        "command": "echo hi",
        "activeDeadlineSeconds": 600,
    }

    result = await presets_api.graphql(CREATE, {"data": data})

    assert result.errors == [], result.body
    job = result.data["createPhJob"]
    assert job | {"id": None} == {
        "id": None,
        "groupId": GROUP,
        "groupName": GROUP,
        "userId": "alice",
        "instanceType": {"id": "cpu-1", "name": "cpu-1", "cpuLimit": 1},
        "activeDeadlineSeconds": 600,
    }
    spec = store.get(job["id"]).spec
    assert (spec.group_name, spec.instance_type, spec.active_deadline_seconds) == (
        GROUP,
        "cpu-1",
        600,
    )


@pytest.mark.parametrize(
    ("change", "code", "says"),
    [
        ({"groupId": None}, "BAD_USER_INPUT", "groupName (or PrimeHub's groupId) is required"),
        ({"groupName": "team-b"}, "BAD_USER_INPUT", "name different groups"),
        ({"groupId": "team-b"}, "FORBIDDEN", "team-b"),
        ({"instanceType": "gpu-99"}, "BAD_USER_INPUT", "there is no instance type 'gpu-99'"),
        ({"instanceType": "gpu-1"}, "BAD_USER_INPUT", "not offered to group 'team-a'"),
        ({"activeDeadlineSeconds": -5}, "BAD_USER_INPUT", "activeDeadlineSeconds must be 0"),
    ],
    ids=["no-group", "two-groups", "foreign-group", "unknown-type", "not-offered", "negative"],
)
async def test_bad_primehub_input_is_refused_and_nothing_is_created(
    presets_api: Api, store: LocalJobStore, change: dict[str, Any], code: str, says: str
) -> None:
    data = {"displayName": "x", "groupId": GROUP, "command": "true", **change}

    result = await presets_api.graphql(CREATE, {"data": data})

    assert result.codes == [code], result.body
    assert says in result.errors[0]["message"]
    assert store.list() == []


async def test_a_zero_deadline_is_primehubs_no_deadline(presets_api: Api) -> None:
    data = {"displayName": "x", "groupName": GROUP, "command": "true", "activeDeadlineSeconds": 0}

    result = await presets_api.graphql(CREATE, {"data": data})

    assert result.data["createPhJob"]["activeDeadlineSeconds"] is None


ME = """{ me { id username email firstName lastName isAdmin
  effectiveGroups { id name displayName instanceTypes {
    id name displayName description cpuLimit memoryLimit gpuLimit gpuResourceName
    cpuRequest memoryRequest global tolerations { operator key value effect } nodeSelector
  } } } }"""


async def test_me_lists_the_callers_groups_and_the_instance_types_each_is_offered(
    presets_api: Api,
) -> None:
    caller = token("carol", groups=["team-b", GROUP], email="carol@example.com", given_name="Carol")

    result = await presets_api.graphql(ME, bearer=caller)

    assert result.errors == [], result.body
    me = result.data["me"]
    assert {key: me[key] for key in ("id", "username", "email", "firstName", "isAdmin")} == {
        "id": "carol",
        "username": "carol",
        "email": "carol@example.com",
        "firstName": "Carol",
        "isAdmin": False,
    }
    groups = {group["name"]: group for group in me["effectiveGroups"]}
    assert sorted(groups) == [GROUP, "team-b"]
    assert groups[GROUP]["id"] == groups[GROUP]["displayName"] == GROUP
    assert [t["name"] for t in groups[GROUP]["instanceTypes"]] == ["cpu-1"]
    (cpu,) = groups[GROUP]["instanceTypes"]
    assert (cpu["global"], cpu["gpuResourceName"], cpu["nodeSelector"], cpu["tolerations"]) == (
        True,
        None,
        None,
        [],
    )
    gpu = groups["team-b"]["instanceTypes"][1]
    assert gpu == {
        "id": "gpu-1",
        "name": "gpu-1",
        "displayName": "gpu-1",
        "description": None,
        "cpuLimit": 8,
        "memoryLimit": 32.5,
        "gpuLimit": 1,
        "gpuResourceName": "nvidia.com/gpu",
        "cpuRequest": None,
        "memoryRequest": None,
        "global": False,
        "tolerations": [
            {"operator": "Exists", "key": "gpu", "value": None, "effect": "NoSchedule"}
        ],
        "nodeSelector": {"gpu": "a100"},
    }


async def test_a_jobs_instance_type_and_reason_show_even_after_the_preset_is_gone(
    api: Api, store: LocalJobStore
) -> None:
    job_id = "job-202009250153-gone00"
    add_job(store, job_id, group=GROUP)
    job = store.get(job_id)
    store.root.joinpath(job_id, "spec.json").write_text(
        json.dumps(
            job.model_copy(
                update={"spec": job.spec.model_copy(update={"instance_type": "old-1"})}
            ).to_k8s()
        )
    )
    store.write_status(
        job_id,
        PhJobStatus(phase=PhJobPhase.FAILED, reason="DeadlineExceeded", message="too long"),
    )

    result = await api.graphql(
        "query ($id: ID!) { phJob(where: {id: $id}) "
        "{ reason message instanceType { id name cpuLimit global } } }",
        {"id": job_id},
    )

    assert result.errors == [], result.body
    assert result.data["phJob"] == {
        "reason": "DeadlineExceeded",
        "message": "too long",
        "instanceType": {"id": "old-1", "name": "old-1", "cpuLimit": None, "global": False},
    }


CONNECTION = """query ($after: String, $before: String, $first: Int, $last: Int, $page: Int,
                      $orderBy: PhJobOrderByInput) {
  phJobsConnection(after: $after, before: $before, first: $first, last: $last, page: $page,
                   orderBy: $orderBy) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor totalPage currentPage }
    edges { cursor node { id } }
  }
}"""


def _made(store: LocalJobStore, count: int) -> list[str]:
    start = datetime(2020, 9, 25, 1, 0, tzinfo=UTC)
    ids = [f"job-20200925{i:04d}-conn{i:02d}" for i in range(count)]
    for i, job_id in enumerate(ids):
        add_job(store, job_id, group=GROUP, created=start + timedelta(minutes=i))
    return ids[::-1]  # newest first


async def _connection(api: Api, **variables: Any) -> dict[str, Any]:
    result = await api.graphql(CONNECTION, variables)
    assert result.errors == [], result.body
    connection: dict[str, Any] = result.data["phJobsConnection"]
    return connection


async def test_the_connection_pages_by_job_id_cursors_without_a_page(
    api: Api, store: LocalJobStore
) -> None:
    newest = _made(store, 7)

    first = await _connection(api, first=3)
    after = await _connection(api, first=3, after=first["pageInfo"]["endCursor"])
    before = await _connection(api, last=2, before=newest[4])
    default = await _connection(api)

    assert [e["node"]["id"] for e in first["edges"]] == newest[:3]
    assert first["pageInfo"] == {
        "hasNextPage": True,
        "hasPreviousPage": False,
        "startCursor": newest[0],
        "endCursor": newest[2],
        "totalPage": None,
        "currentPage": None,
    }
    assert [e["node"]["id"] for e in after["edges"]] == newest[3:6]
    assert [e["node"]["id"] for e in before["edges"]] == newest[2:4]
    assert before["pageInfo"]["hasPreviousPage"] and before["pageInfo"]["hasNextPage"]
    assert len(default["edges"]) == 7 and default["totalCount"] == 7


async def test_numbered_pages_take_first_as_their_size(api: Api, store: LocalJobStore) -> None:
    newest = _made(store, 5)

    page2 = await _connection(api, page=2, first=2)
    by_phase = await _connection(api, page=1, first=2, orderBy={"phase": "asc"})

    assert [e["node"]["id"] for e in page2["edges"]] == newest[2:4]
    assert (page2["pageInfo"]["totalPage"], page2["pageInfo"]["currentPage"]) == (3, 2)
    assert page2["pageInfo"]["hasPreviousPage"] and page2["pageInfo"]["hasNextPage"]
    assert [e["node"]["id"] for e in by_phase["edges"]] == newest[:2]  # ties stay newest first


@pytest.mark.parametrize(
    ("variables", "says"),
    [
        ({"page": 0}, "page must be 1 or more"),
        ({"first": 500}, "first must be from 0 to 200"),
        ({"after": "job-202001010000-nosuch"}, "there is no job"),
        ({"orderBy": {"phase": "up"}}, "orderBy.phase must be 'asc' or 'desc'"),
        ({"orderBy": {"phase": "asc", "userName": "desc"}}, "orderBy takes one field"),
    ],
)
async def test_bad_paging_arguments_are_refused_with_a_clear_message(
    api: Api, store: LocalJobStore, variables: dict[str, Any], says: str
) -> None:
    _made(store, 2)

    result = await api.graphql(CONNECTION, variables)

    assert result.codes == ["BAD_USER_INPUT"], result.body
    assert says in result.errors[0]["message"]


async def test_rerun_is_refused_to_a_caller_outside_the_group(
    api: Api, store: LocalJobStore
) -> None:
    add_job(store, "job-202009250153-rerun0", group=GROUP)

    result = await api.graphql(
        'mutation { rerunPhJob(where: {id: "job-202009250153-rerun0"}) { id } }',
        bearer=token("mallory", groups=["team-z"]),
    )

    assert result.codes == ["FORBIDDEN"]
    assert len(store.list()) == 1
