"""Bad requests get clear GraphQL errors; a backend outage gives UNAVAILABLE, then recovery."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from support.api import GRAPHQL_RESPONSE, SEED_QUERY, Api, add_job, api_settings, serve, token
from support.servers import S3Server

from artifacts_api.settings import ApiSettings
from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.layout import job_prefix
from artifacts_shared.settings import RedisSettings

JOB = "job-202103040506-robust"


async def post_raw(
    api: Api, body: bytes, content_type: str = "application/json", accept: str = "*/*"
) -> tuple[int, dict]:
    async with api.session.post(
        f"{api.url}/graphql",
        data=body,
        headers={**api.headers(api.default_token), "Content-Type": content_type, "Accept": accept},
    ) as response:
        assert response.content_type in ("application/json", GRAPHQL_RESPONSE)
        return response.status, await response.json(content_type=None)


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b"{not json", 400, "must be JSON"),
        (b'{"variables": {}}', 400, "'query' string"),
        (b'{"query": "{ phJobs { totalCount } }", "variables": []}', 400, "'variables'"),
        (b'{"query": "{ phJobs { totalCount "}', 400, "cannot be parsed"),
        (b'{"query": "{ nope }"}', 400, "Cannot query field 'nope'"),
        (b'{"query": "query ($id: ID!) { phJob(where: {id: $id}) { id } }"}', 400, "$id"),
    ],
    ids=["not-json", "no-query", "bad-variables", "syntax", "unknown-field", "missing-variable"],
)
async def test_malformed_requests_get_a_bad_user_input_error(
    api: Api, body: bytes, status: int, says: str
) -> None:
    got_status, payload = await post_raw(api, body, accept=GRAPHQL_RESPONSE)

    assert got_status == status
    assert "data" not in payload  # nothing ran
    assert [e["extensions"]["code"] for e in payload["errors"]] == ["BAD_USER_INPUT"]
    assert says in payload["errors"][0]["message"]


async def test_a_body_over_the_limit_is_refused_with_413(api: Api) -> None:
    padding = " " * (api.settings.api_max_body_bytes + 1)
    status, payload = await post_raw(
        api, f'{{"query": "{{ phJobs {{ totalCount }} }}{padding}"}}'.encode()
    )

    assert status == 413
    assert payload["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert str(api.settings.api_max_body_bytes) in payload["errors"][0]["message"]


async def test_a_query_deeper_than_the_limit_is_refused_before_it_runs(
    settings: ApiSettings, store: LocalJobStore
) -> None:
    add_job(store, JOB)
    shallow = settings.model_copy(update={"api_max_query_depth": 3})
    deep = "{ phJobs { edges { node { artifact { items { name } } } } } }"  # 6 levels

    async with serve(shallow) as api:
        refused = await api.graphql(deep, accept=GRAPHQL_RESPONSE)
        fine = await api.graphql("{ phJobs { nodes { id } } }")

    assert refused.status == 400 and refused.codes == ["BAD_USER_INPUT"]
    assert refused.errors[0]["message"] == "the query is 6 levels deep; at most 3 are allowed"
    assert fine.errors == [] and fine.data["phJobs"]["nodes"] == [{"id": JOB}]


async def test_absurdly_nested_queries_and_fragments_are_refused_cleanly(api: Api) -> None:
    nested = await api.graphql(
        "{ phJobs " + "{ nodes " * 3000 + "}" * 3001, accept=GRAPHQL_RESPONSE
    )
    fragments = (
        "\n".join(f"fragment F{i} on PhJob {{ id ...F{i + 1} ...F{i + 1} }}" for i in range(40))
        + "\nfragment F40 on PhJob { id }"
    )
    document = "{ phJobs { nodes { ...F0 } } }\n" + fragments
    bomb = await api.graphql(document, accept=GRAPHQL_RESPONSE)

    assert nested.status == 400 and nested.codes == ["BAD_USER_INPUT"]
    assert bomb.status == 400, bomb.body
    assert "maximum cost" in bomb.errors[0]["message"]


async def test_an_alias_bomb_exceeds_the_cost_limit(api: Api) -> None:
    aliases = " ".join(
        f"a{i}: phJobs(first: 200) {{ nodes {{ artifact {{ fileCount }} }} }}" for i in range(20)
    )

    result = await api.graphql(f"{{ {aliases} }}", accept=GRAPHQL_RESPONSE)

    assert result.status == 400 and result.codes == ["BAD_USER_INPUT"]
    assert "maximum cost" in result.errors[0]["message"]


async def test_primehubs_job_list_counts_its_page_size_in_the_cost(api: Api) -> None:
    aliases = " ".join(
        f"a{i}: phJobsConnection(first: 200) {{ edges {{ node {{ artifact {{ prefix }} }} }} }}"
        for i in range(3)
    )

    result = await api.graphql(f"{{ {aliases} }}", accept=GRAPHQL_RESPONSE)

    assert result.status == 400 and result.codes == ["BAD_USER_INPUT"]
    assert "maximum cost" in result.errors[0]["message"]


async def test_a_document_checked_once_is_still_checked_against_each_requests_variables(
    api: Api,
) -> None:
    # The spec's rules run once per query text; the cost, which reads the variables, per
    # request: the same document is cheap with a small page and refused with a huge one.
    query = "query ($n: Int) { phJobs(first: $n) { nodes { artifact { fileCount } } } }"
    invalid = "{ phJobs { nodes { nope } } }"

    cheap = await api.graphql(query, {"n": 1}, accept=GRAPHQL_RESPONSE)
    costly = await api.graphql(query, {"n": 100_000}, accept=GRAPHQL_RESPONSE)
    again = await api.graphql(query, {"n": 1}, accept=GRAPHQL_RESPONSE)
    refused = [await api.graphql(invalid, accept=GRAPHQL_RESPONSE) for _ in range(2)]

    assert (cheap.status, cheap.errors, again.status, again.errors) == (200, [], 200, [])
    assert costly.status == 400 and "maximum cost" in costly.errors[0]["message"]
    assert [(r.status, r.codes) for r in refused] == [(400, ["BAD_USER_INPUT"])] * 2
    assert [r.errors[0]["message"] for r in refused] == [
        "Cannot query field 'nope' on type 'PhJob'."
    ] * 2


async def test_too_many_tokens_are_refused_by_the_parser(api: Api) -> None:
    fields = " ".join("a" for _ in range(20_100))  # just over the limit, far under 256 kB

    result = await api.graphql(f"{{ {fields} }}", accept=GRAPHQL_RESPONSE)

    assert result.status == 400 and result.codes == ["BAD_USER_INPUT"]
    assert "tokens" in result.errors[0]["message"]


async def test_s3_stopped_mid_test_gives_unavailable_and_the_api_recovers(
    redis_settings: RedisSettings, tmp_path: Path
) -> None:
    server = S3Server().start()
    bucket = f"outage-{uuid.uuid4().hex[:8]}"
    server.create_bucket(bucket)
    server.seed(bucket, {f"{job_prefix('team-a', JOB)}test.txt": b"hello\n"})
    s3 = server.settings(bucket)
    store = LocalJobStore(tmp_path / "jobs")
    add_job(store, JOB)
    settings = api_settings(s3, redis_settings.redis_url, store.root, api_s3_timeout_seconds=2)
    try:
        async with serve(settings) as api:
            before = await api.graphql(SEED_QUERY, {"id": JOB})
            server.stop()
            started = time.monotonic()
            during = await api.graphql(SEED_QUERY, {"id": JOB})
            elapsed = time.monotonic() - started
            ready_during = await api.get("/readyz")
            zip_during = await api.get(f"/jobs/{JOB}/artifacts.zip")
            server.start()  # the same ports and data
            after = await api.graphql(SEED_QUERY, {"id": JOB})
            ready_after = await api.get("/readyz")
    finally:
        server.close()

    assert [i["name"] for i in before.data["phJob"]["artifact"]["items"]] == ["test.txt"]
    assert during.status == 200 and during.codes == ["UNAVAILABLE"]
    assert during.data == {"phJob": {"id": JOB, "artifact": None}}  # the job itself still shows
    assert during.errors[0]["path"] == ["phJob", "artifact"]
    assert elapsed < 10
    assert ready_during.status == 503
    assert (await ready_during.json())["checks"]["s3"].startswith("unavailable")
    assert zip_during.status == 503
    assert (await zip_during.json())["errors"][0]["extensions"]["code"] == "UNAVAILABLE"
    assert after.errors == [] and after.data == before.data
    assert ready_after.status == 200


async def test_errors_never_leak_internals_or_html(api: Api) -> None:
    result = await api.graphql("{ phJobs(first: -1) { totalCount } }", bearer=token())
    missing = await api.get("/no/such/route")

    assert result.codes == ["BAD_USER_INPUT"]
    assert "Traceback" not in str(result.body)
    assert missing.status == 404
    assert "<html" not in (await missing.text()).lower()
