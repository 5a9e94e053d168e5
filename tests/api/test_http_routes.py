"""The api's other routes: probes, metrics, the explorer and the UI folder."""

from __future__ import annotations

import re

from graphql import get_introspection_query
from support.api import SEED_QUERY, Api, add_job, put_files

from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.s3 import S3Client

JOB = "job-202104050607-routes"


async def test_healthz_and_readyz_answer_when_everything_is_up(api: Api) -> None:
    health = await api.get("/healthz", bearer=None)
    ready = await api.get("/readyz", bearer=None)

    assert health.status == 200 and await health.json() == {"status": "ok"}
    assert ready.status == 200
    assert await ready.json() == {"status": "ready", "checks": {"s3": "ok", "redis": "ok"}}


async def test_metrics_count_and_time_requests_per_operation_and_s3_calls(
    api: Api, s3: S3Client, store: LocalJobStore
) -> None:
    add_job(store, JOB)
    await put_files(s3, api.settings.phfs_bucket, "team-a", JOB, {"a.txt": b"a"})
    for _ in range(3):
        await api.graphql(SEED_QUERY, {"id": JOB})
    await api.graphql('{ phJob(where: {id: "bad"}) { id } }')
    await api.graphql("{ nope }")
    await api.graphql("{ phJobs { totalCount } }", bearer="garbage")

    metrics = await api.get("/metrics", bearer=None)
    text = await metrics.text()

    assert metrics.status == 200 and metrics.content_type == "text/plain"
    lines = text.splitlines()
    assert 'artifacts_api_graphql_requests_total{operation="query phJob",outcome="ok"} 3.0' in lines
    assert (
        'artifacts_api_graphql_requests_total{operation="query phJob",outcome="error"} 1.0' in lines
    )
    assert 'artifacts_api_graphql_requests_total{operation="invalid",outcome="error"} 1.0' in lines
    assert (
        'artifacts_api_graphql_requests_total{operation="unknown",outcome="rejected"} 1.0' in lines
    )
    assert 'artifacts_api_graphql_request_seconds_count{operation="query phJob"} 4.0' in lines
    assert 'artifacts_api_graphql_errors_total{code="UNAUTHENTICATED"} 1.0' in lines
    assert 'artifacts_api_graphql_errors_total{code="BAD_USER_INPUT"} 2.0' in lines
    # Each seed query: one page of files (and a look for the manifest, which is absent here).
    assert (
        'artifacts_api_s3_call_seconds_count{operation="ListObjectsV2",outcome="ok"} 3.0' in lines
    )
    assert any(
        line.startswith(
            'artifacts_api_http_requests_total{method="POST",route="/graphql",status="200"}'
        )
        for line in lines
    )


async def test_the_explorer_and_the_ui_folder_are_served(api: Api) -> None:
    explorer = await api.get("/graphql", bearer=None, accept="text/html")
    index = await api.get("/", bearer=None)
    same = await api.get("/index.html", bearer=None)
    escape = await api.get("/../pyproject.toml", bearer=None)

    assert explorer.status == 200 and explorer.content_type == "text/html"
    assert "graphiql" in (await explorer.text()).lower()
    assert index.status == 200 and "Job artifacts" in await index.text()
    assert same.status == 200
    assert escape.status == 404


async def test_the_explorer_loads_only_files_the_api_package_ships(api: Api) -> None:
    page = await api.get("/graphql", bearer=None, accept="text/html,application/xhtml+xml")
    html = await page.text()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)

    assert "connect-src 'self'" in page.headers["Content-Security-Policy"]
    assert sources and all(source.startswith("/") for source in sources), sources
    for source in sources:
        served = await api.get(source, bearer=None)
        assert served.status == 200, source
    script = await api.get("/explorer/vendor/graphiql.min.js", bearer=None)
    assert int(script.headers["Content-Length"]) > 100_000  # GraphiQL itself, not a stub


async def test_the_explorers_introspection_query_fits_within_the_limits(api: Api) -> None:
    result = await api.graphql(get_introspection_query(descriptions=True))

    assert result.status == 200 and result.errors == []
    types = {t["name"] for t in result.data["__schema"]["types"]}
    assert {"PhJob", "PhJobArtifact", "PhJobArtifactItem", "PhJobArtifactCleanup"} <= types
