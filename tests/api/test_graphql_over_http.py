"""The GraphQL over HTTP spec as graphql-http's audit checks it, and the forms PrimeHub sends.

Requests come in three forms (JSON POST, form POST, GET for queries); everything else is
refused before it runs. In ``none`` mode nothing but the address stands between a web page
and a mutation that runs a command on this machine, so the tests here try what a hostile
page would: a ``text/plain`` or form post from another origin, a DNS-rebound ``Host``.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from support.api import GRAPHQL_RESPONSE, Api, api_settings, serve, token
from support.npm import node_modules, node_path

from artifacts_api.guards import MAX_HEADER_BYTES
from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.settings import RedisSettings, S3Settings

HERE = Path(__file__).resolve().parent
CREATE = (
    "mutation ($data: PhJobCreateInput!) { createPhJob(data: $data) { id } }",
    {"data": {"displayName": "x", "groupName": "team-a", "command": "touch pwned"}},
)


@pytest.fixture
async def open_api(
    s3_settings: S3Settings, redis_settings: RedisSettings, store: LocalJobStore
) -> AsyncIterator[Api]:
    """The api in ``none`` mode, as ``make run`` starts it."""
    settings = api_settings(
        s3_settings, redis_settings.redis_url, store.root, api_auth_mode="none",
        api_dev_groups="team-a",
    )  # fmt: skip
    async with serve(settings) as running:
        running.default_token = None
        yield running


async def _audit(api: Api, bearer: str | None) -> list[dict[str, Any]]:
    modules = node_modules(HERE / "graphql-http.txt")
    env = {**os.environ, "NODE_PATH": str(modules)}
    if bearer:
        env["AUDIT_TOKEN"] = bearer
    process = await asyncio.create_subprocess_exec(
        node_path(),
        str(HERE / "audit_server.cjs"),
        f"{api.url}/graphql",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, err.decode()
    results: list[dict[str, Any]] = json.loads(out)
    return results


@pytest.mark.parametrize("mode", ["none", "hs256"])
async def test_graphql_http_server_audit_passes_every_check(
    mode: str, open_api: Api, api: Api
) -> None:
    target, bearer = (open_api, None) if mode == "none" else (api, token())

    results = await _audit(target, bearer)

    failed = [result for result in results if result["status"] != "ok"]
    print(f"graphql-http audit ({mode}): {len(results) - len(failed)} of {len(results)} ok")
    assert len(results) == 61
    assert failed == []


async def _post(
    api: Api,
    body: bytes | str | dict[str, str],
    content_type: str | None,
    *,
    headers: dict[str, str] | None = None,
) -> tuple[int, str, dict[str, Any]]:
    sent = dict(headers or {})
    if content_type is not None:
        sent["Content-Type"] = content_type
    data = aiohttp.FormData(body) if isinstance(body, dict) else body
    async with api.session.post(
        f"{api.url}/graphql", data=data, headers=sent, skip_auto_headers=["Content-Type"]
    ) as response:
        return response.status, response.content_type, await response.json(content_type=None)


async def test_a_form_post_with_json_string_variables_runs_as_primehubs_sdk_sends_it(
    api: Api, store: LocalJobStore
) -> None:
    query, variables = CREATE
    form = {"query": query, "variables": json.dumps(variables)}
    status, media, body = await _post(
        api,
        form,
        "application/x-www-form-urlencoded",
        headers={"Authorization": f"Bearer {token()}"},
    )

    assert status == 200 and media == "application/json", body
    (job,) = store.list()
    assert body == {"data": {"createPhJob": {"id": job.id}}}


async def test_get_runs_queries_and_never_mutations(api: Api, store: LocalJobStore) -> None:
    query, variables = CREATE
    params = {"query": query, "variables": json.dumps(variables)}
    auth = {"Authorization": f"Bearer {token()}"}
    async with api.session.get(f"{api.url}/graphql", params=params, headers=auth) as refused:
        refused_body = await refused.json()
    read = {"query": "query ($first: Int) { phJobs(first: $first) { totalCount } }"}
    read["variables"] = json.dumps({"first": 5})
    async with api.session.get(f"{api.url}/graphql", params=read, headers=auth) as answered:
        answered_body = await answered.json()

    assert refused.status == 405 and refused.headers["Allow"] == "POST"
    assert refused_body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "GET runs queries only" in refused_body["errors"][0]["message"]
    assert store.list() == []  # nothing was created
    assert answered.status == 200 and answered_body == {"data": {"phJobs": {"totalCount": 0}}}


async def test_the_response_media_type_follows_accept(api: Api) -> None:
    strict = await api.graphql("{ nope }", accept=GRAPHQL_RESPONSE)
    legacy = await api.graphql("{ nope }", accept="application/json")
    fine = await api.graphql("{ __typename }", accept=f"{GRAPHQL_RESPONSE}, application/json")
    async with api.session.post(
        f"{api.url}/graphql",
        json={"query": "{ __typename }"},
        headers={"Accept": "image/png", **api.headers(api.default_token)},
    ) as refused:
        refused_body = await refused.json()

    # A document that cannot run: 400 with the spec's type, 200 with legacy JSON; no data.
    assert (strict.status, legacy.status) == (400, 200)
    assert (strict.media, legacy.media, fine.media) == (
        GRAPHQL_RESPONSE,
        "application/json",
        GRAPHQL_RESPONSE,
    )
    assert "data" not in strict.body and "data" not in legacy.body
    assert strict.codes == legacy.codes == ["BAD_USER_INPUT"]
    assert fine.status == 200 and fine.data == {"__typename": "Query"}
    assert refused.status == 406 and "application/json" in refused_body["errors"][0]["message"]


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "multipart/form-data; boundary=x", "application/json; charset=latin-1"],
)
async def test_other_media_types_are_refused_before_anything_runs(
    open_api: Api, store: LocalJobStore, content_type: str | None
) -> None:
    query, variables = CREATE

    status, _, body = await _post(
        open_api, json.dumps({"query": query, "variables": variables}), content_type
    )

    assert status == 415, body
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert store.list() == []


async def test_a_deeply_nested_body_is_a_400_not_a_500(api: Api) -> None:
    depth = 20_000  # far past the recursion limit, well within the body limit
    deep = '{"a": ' + "[" * depth + "]" * depth + "}"
    nested_body = '{"query": "{ __typename }", "variables": ' + deep + "}"
    nested_form = {"query": "{ __typename }", "variables": deep}
    auth = {"Authorization": f"Bearer {token()}"}

    as_json = await _post(api, nested_body, "application/json", headers=auth)
    as_form = await _post(api, nested_form, "application/x-www-form-urlencoded", headers=auth)

    for status, _, body in (as_json, as_form):
        assert status == 400, body
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert "nested too deeply" in body["errors"][0]["message"]


async def test_an_oversized_header_gets_a_graphql_shaped_400(api: Api) -> None:
    async with api.session.post(
        f"{api.url}/graphql",
        json={"query": "{ __typename }"},
        headers={"X-Padding": "a" * (MAX_HEADER_BYTES + 10), **api.headers(api.default_token)},
    ) as response:
        body = await response.json()

    assert response.status == 400
    assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "header": "X-Padding"}
    assert str(MAX_HEADER_BYTES) in body["errors"][0]["message"]


async def test_other_methods_get_a_graphql_shaped_405(api: Api) -> None:
    async with api.session.put(f"{api.url}/graphql", json={"query": "{ __typename }"}) as put:
        body = await put.json()

    assert put.status == 405 and put.headers["Allow"] == "GET, POST"
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
async def test_none_mode_refuses_a_mutation_posted_from_another_origin(
    open_api: Api, store: LocalJobStore, content_type: str
) -> None:
    query, variables = CREATE
    body: str | dict[str, str] = (
        json.dumps({"query": query, "variables": variables})
        if content_type == "text/plain"
        else {"query": query, "variables": json.dumps(variables)}
    )

    status, _, answer = await _post(
        open_api, body, content_type, headers={"Origin": "http://127.0.0.1:1"}
    )

    assert status == 403
    assert answer["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "'http://127.0.0.1:1' may not call this api" in answer["errors"][0]["message"]
    assert store.list() == []


async def test_none_mode_refuses_a_dns_rebound_host_and_serves_loopback_programs(
    open_api: Api, store: LocalJobStore
) -> None:
    query, variables = CREATE
    form = {"query": query, "variables": json.dumps(variables)}
    port = open_api.url.rsplit(":", 1)[1]

    rebound = await _post(
        open_api,
        form,
        "application/x-www-form-urlencoded",
        headers={"Host": f"attacker.example:{port}", "Origin": f"http://attacker.example:{port}"},
    )
    no_origin = await _post(
        open_api, form, "application/x-www-form-urlencoded", headers={"Host": f"localhost:{port}"}
    )
    own_page = await _post(
        open_api,
        form,
        "application/x-www-form-urlencoded",
        headers={"Origin": open_api.url},
    )

    assert rebound[0] == 403 and "attacker.example" in rebound[2]["errors"][0]["message"]
    # curl and PrimeHub's SDK send no Origin; the api's own pages send its own.
    assert no_origin[0] == 200 and own_page[0] == 200, (no_origin, own_page)
    assert len(store.list()) == 2


async def test_token_modes_need_the_bearer_token_for_a_form_post(
    api: Api, store: LocalJobStore
) -> None:
    query, variables = CREATE

    status, _, body = await _post(
        api,
        {"query": query, "variables": json.dumps(variables)},
        "application/x-www-form-urlencoded",
        headers={"Origin": "http://evil.example"},
    )

    assert status == 401 and body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert store.list() == []
