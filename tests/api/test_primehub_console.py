"""PrimeHub console's job documents, verbatim, run against the api as the console sends them.

The documents are quoted from InfuseAI/primehub-console (Apache-2.0) at commit 2dd28092:
``packages/client/src/queries/PhJob.graphql`` (the ``PhJobInfo`` fragment and the
operations using it) and the Artifacts tab's ``GET_PH_JOB_ARTIFACT``
(``packages/client/src/ee/containers/jobArtifact.tsx``). The console sends them through
Apollo, which adds ``__typename`` to every selection set, with the operation's name, and
the variables its job pages build: ``page``, ``where: {groupId_in: [group.id], search,
mine}``, ``orderBy: {}`` or ``{<column>: 'asc' | 'desc'}``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from graphql import FieldNode, NameNode, SelectionSetNode, parse, print_ast, visit
from graphql.language import Visitor
from support.api import Api, GraphQLResult, add_job, put_files, token

from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.phjob import PhJobPhase
from artifacts_shared.s3 import S3Client

PHJOB_INFO = """
fragment PhJobInfo on PhJob {
  id
  displayName
  cancel
  command
  groupId
  groupName
  schedule
  image
  instanceType {
    id
    name
    displayName
    cpuLimit
    memoryLimit
    gpuLimit
  }
  userId
  userName
  phase
  reason
  message
  createTime
  startTime
  finishTime
  logEndpoint
}
"""

PH_JOBS_CONNECTION = """
query PhJobsConnection($where: PhJobWhereInput, $page: Int, $orderBy: PhJobOrderByInput) {
  phJobsConnection(where: $where, page: $page, orderBy: $orderBy) {
    pageInfo {
      totalPage
      currentPage
    }
    edges {
      cursor
      node {
        ...PhJobInfo
      }
    }
  }
}
"""

PH_JOB = """
query phJob($where: PhJobWhereUniqueInput!) {
  phJob(where: $where) {
    ...PhJobInfo
  }
}
"""

RERUN_PH_JOB = """
mutation rerunPhJob($where: PhJobWhereUniqueInput!) {
  rerunPhJob(where: $where) {
    ...PhJobInfo
  }
}
"""

CANCEL_PH_JOB = """
mutation cancelPhJob($where: PhJobWhereUniqueInput!) {
  cancelPhJob(where: $where) {
    id
  }
}
"""

GET_PH_JOB_ARTIFACT = """
  query phJob($where: PhJobWhereUniqueInput!) {
    phJob(where: $where) {
      id
      artifact {
        prefix
        items {
          name
          size
          lastModified
        }
      }
    }
  }
"""

GROUP = "team-a"
ALICE = token("alice", groups=[GROUP, "team-b"])
BOB = token("bob", groups=[GROUP])


class _AddTypename(Visitor):
    """Apollo Client's ``addTypename``: ``__typename`` in every selection set below the root."""

    def enter_selection_set(self, node: SelectionSetNode, key: Any, parent: Any, *_: Any) -> Any:
        if getattr(parent, "kind", None) == "operation_definition":
            return None
        names = {s.name.value for s in node.selections if isinstance(s, FieldNode)}
        if "__typename" in names:
            return None
        typename = FieldNode(name=NameNode(value="__typename"), arguments=(), directives=())
        return SelectionSetNode(selections=(*node.selections, typename))


def as_apollo_sends(*documents: str) -> str:
    return print_ast(visit(parse("\n".join(documents)), _AddTypename()))


async def send(
    api: Api, operation: str, document: str, variables: dict[str, Any], bearer: str = ALICE
) -> GraphQLResult:
    async with api.session.post(
        f"{api.url}/graphql",
        json={"operationName": operation, "query": document, "variables": variables},
        headers={"Authorization": f"Bearer {bearer}", "Accept": "*/*"},
    ) as response:
        return GraphQLResult(response.status, await response.json())


def _jobs(store: LocalJobStore, count: int) -> list[str]:
    start = datetime(2020, 9, 25, 1, 0, tzinfo=UTC)
    made = []
    for i in range(count):
        job_id = f"job-20200925{i:04d}-abc{i:03d}"
        add_job(
            store,
            job_id,
            group=GROUP,
            user="alice" if i % 2 == 0 else "bob",
            created=start + timedelta(minutes=i),
        )
        made.append(job_id)
    return made


def _page(page: int, **where: Any) -> dict[str, Any]:
    return {
        "page": page,
        "where": {"groupId_in": [GROUP], "search": "", "mine": False, **where},
        "orderBy": {},
    }


async def test_the_job_list_pages_as_the_console_shows_it(api: Api, store: LocalJobStore) -> None:
    made = _jobs(store, 13)
    add_job(store, "job-202009250500-other1", group="team-c")  # not alice's group
    document = as_apollo_sends(PH_JOBS_CONNECTION, PHJOB_INFO)

    first = await send(api, "PhJobsConnection", document, _page(1))
    second = await send(api, "PhJobsConnection", document, _page(2))
    past = await send(api, "PhJobsConnection", document, _page(3))

    assert first.status == 200 and first.errors == [], first.body
    connection = first.data["phJobsConnection"]
    assert connection["pageInfo"] == {"totalPage": 2, "currentPage": 1, "__typename": "PageInfo"}
    ids = [edge["node"]["id"] for edge in connection["edges"]]
    assert ids == made[::-1][:10]  # newest first, PrimeHub's ten a page
    assert [edge["cursor"] for edge in connection["edges"]] == ids
    node = connection["edges"][0]["node"]
    assert node["groupId"] == node["groupName"] == GROUP
    assert node["phase"] == "Succeeded" and node["schedule"] is None
    assert node["__typename"] == "PhJob" and node["instanceType"] is None
    assert node["userId"] == node["userName"]
    rest = [edge["node"]["id"] for edge in second.data["phJobsConnection"]["edges"]]
    assert rest == made[::-1][10:]
    assert past.data["phJobsConnection"]["edges"] == []  # how the SDK knows it has all


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"where": {"groupId_in": [GROUP], "search": "ABC002", "mine": False}}, [2]),
        ({"where": {"groupId_in": [GROUP], "search": "", "mine": True}}, [4, 2, 0]),
        ({"where": {"groupId_in": []}, "orderBy": {"createTime": "asc"}}, [0, 1, 2, 3, 4]),
        ({"where": {"groupId_in": ["team-b"]}}, []),
        ({"where": {"groupId_in": [GROUP]}, "orderBy": {"userName": "asc"}}, [4, 2, 0, 3, 1]),
    ],
    ids=["search", "mine", "ascending", "other-group", "by-user"],
)
async def test_search_mine_and_order_filter_the_list_like_primehub(
    api: Api, store: LocalJobStore, variables: dict[str, Any], expected: list[int]
) -> None:
    made = _jobs(store, 5)

    result = await send(
        api, "PhJobsConnection", as_apollo_sends(PH_JOBS_CONNECTION, PHJOB_INFO), variables
    )

    assert result.errors == [], result.body
    ids = [edge["node"]["id"] for edge in result.data["phJobsConnection"]["edges"]]
    assert ids == [made[i] for i in expected]


async def test_a_job_page_reads_cancels_and_reruns_a_job(api: Api, store: LocalJobStore) -> None:
    (job_id,) = _jobs(store, 1)

    read = await send(api, "phJob", as_apollo_sends(PH_JOB, PHJOB_INFO), {"where": {"id": job_id}})
    rerun = await send(
        api, "rerunPhJob", as_apollo_sends(RERUN_PH_JOB, PHJOB_INFO), {"where": {"id": job_id}}, BOB
    )
    cancelled = await send(
        api, "cancelPhJob", as_apollo_sends(CANCEL_PH_JOB), {"where": {"id": job_id}}
    )

    assert read.errors == [] and read.data["phJob"]["id"] == job_id, read.body
    # PrimeHub's console fetches it with ?tailLines=...&follow=true appended: no query here.
    assert read.data["phJob"]["logEndpoint"] == f"{api.url}/jobs/{job_id}/logs"
    assert rerun.errors == [], rerun.body
    again = rerun.data["rerunPhJob"]
    assert again["id"] != job_id and again["phase"] == "Pending"
    assert again["userName"] == "bob"  # whoever reruns it owns the new job
    assert (again["displayName"], again["command"], again["groupId"]) == (
        read.data["phJob"]["displayName"],
        read.data["phJob"]["command"],
        GROUP,
    )
    assert cancelled.errors == [] and cancelled.data == {
        "cancelPhJob": {"id": job_id, "__typename": "PhJob"}
    }
    assert store.get(job_id).spec.cancel and store.get(again["id"]).status.phase is (
        PhJobPhase.PENDING
    )


async def test_another_groups_job_is_refused_to_every_console_document(
    api: Api, store: LocalJobStore
) -> None:
    add_job(store, "job-202009250153-theirs", group="team-c")
    where = {"where": {"id": "job-202009250153-theirs"}}

    read = await send(api, "phJob", as_apollo_sends(PH_JOB, PHJOB_INFO), where)
    rerun = await send(api, "rerunPhJob", as_apollo_sends(RERUN_PH_JOB, PHJOB_INFO), where)
    listed = await send(
        api,
        "PhJobsConnection",
        as_apollo_sends(PH_JOBS_CONNECTION, PHJOB_INFO),
        {"where": {"groupId_in": ["team-c"]}, "page": 1},
    )

    assert read.codes == rerun.codes == ["FORBIDDEN"]
    assert len(store.list()) == 1  # no rerun was created
    assert listed.data["phJobsConnection"]["edges"] == []


async def test_the_artifacts_tab_links_each_file_under_the_prefix(
    api: Api, s3: S3Client, store: LocalJobStore
) -> None:
    (job_id,) = _jobs(store, 1)
    empty_id = "job-202009251200-empty0"
    add_job(store, empty_id, group=GROUP)
    key_prefix = await put_files(
        s3,
        api.settings.phfs_bucket,
        GROUP,
        job_id,
        {"test.txt": b"hello\n", "sub/test.txt": b"hello\n"},
    )
    document = as_apollo_sends(GET_PH_JOB_ARTIFACT)

    result = await send(api, "phJob", document, {"where": {"id": job_id}})
    empty = await send(api, "phJob", document, {"where": {"id": empty_id}})

    assert result.errors == [], result.body
    artifact = result.data["phJob"]["artifact"]
    # The tab links `${prefix}/${item.name}`: that must be each object's key.
    links = sorted(f"{artifact['prefix']}/{item['name']}" for item in artifact["items"])
    assert links == [f"{key_prefix}sub/test.txt", f"{key_prefix}test.txt"]
    assert [item["size"] for item in artifact["items"]] == [6, 6]
    # A job that left nothing: the tab maps over items, never null.
    assert empty.data["phJob"]["artifact"]["items"] == []
