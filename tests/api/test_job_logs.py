"""``GET /jobs/<id>/logs`` and ``PhJob.logs`` with the local runtime: live, archived, refused.

The job's output is where the local runtime writes it (``LOCAL_RUNTIME_DIR/<job>/job.log``)
while it runs, and where its delivery puts it (``.primehub/metadata/job.log`` in the real
S3 server) once it has ended; the api is served over real HTTP.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from support.api import Api, add_job, api_settings, put_files, serve, token
from support.joblogs import append, archive_log, finish, runtime_log

from artifacts_api.settings import ApiSettings
from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.phjob import PhJobPhase, PhJobStatus
from artifacts_shared.s3 import S3Client
from artifacts_shared.settings import RedisSettings, S3Settings

JOB = "job-202101020304-abcdef"
OTHER = "job-202101020304-zzzzzz"
LINES = b"".join(f"line {i}\n".encode() for i in range(1, 11))
PAGE = """query ($id: ID!, $offset: Int, $limit: Int) { phJob(where: {id: $id}) {
  logs(offset: $offset, limit: $limit) {
    offset lines totalLines hasMore live source downloadUrl } } }"""
ENDPOINT = "query ($id: ID!) { phJob(where: {id: $id}) { logEndpoint } }"


@pytest.fixture
def settings(
    s3_settings: S3Settings, redis_settings: RedisSettings, store: LocalJobStore, tmp_path: Path
) -> ApiSettings:
    return api_settings(
        s3_settings,
        redis_settings.redis_url,
        store.root,
        local_runtime_dir=tmp_path / "runtime",
    )


async def read_log(api: Api, path: str, *, bearer: str | bool | None = True) -> tuple[int, bytes]:
    response = await api.get(path, bearer=bearer)
    return response.status, await response.read()


def running(store: LocalJobStore, job_id: str = JOB, *, group: str = "team-a") -> None:
    add_job(store, job_id, group=group, phase=PhJobPhase.RUNNING)


# --- a running job: its runtime's file --------------------------------------------------


async def test_a_running_jobs_whole_log_is_its_runtime_file_as_plain_text(
    api: Api, store: LocalJobStore
) -> None:
    running(store)
    runtime_log(api.settings, JOB, LINES)

    response = await api.get(f"/jobs/{JOB}/logs")

    assert response.status == 200
    assert await response.read() == LINES
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Log-Source"] == "LIVE"
    assert "Content-Disposition" not in response.headers


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        ("3", b"line 8\nline 9\nline 10\n"),
        ("1", b"line 10\n"),
        ("0", b""),
        ("10", LINES),
        ("500", LINES),
    ],
)
async def test_tail_lines_sends_the_last_lines_as_kubernetes_does(
    api: Api, store: LocalJobStore, tail: str, expected: bytes
) -> None:
    running(store)
    runtime_log(api.settings, JOB, LINES)

    assert await read_log(api, f"/jobs/{JOB}/logs?follow=false&tailLines={tail}") == (200, expected)


async def test_tail_lines_counts_a_last_line_without_newline_and_crosses_chunks(
    api: Api, store: LocalJobStore
) -> None:
    running(store)
    body = b"".join(f"{i:07d}\n".encode() for i in range(40_000)) + b"unfinished"
    runtime_log(api.settings, JOB, body)

    status, got = await read_log(api, f"/jobs/{JOB}/logs?tailLines=20001")

    assert status == 200
    assert got == b"".join(f"{i:07d}\n".encode() for i in range(20_000, 40_000)) + b"unfinished"


async def test_follow_sends_lines_as_they_are_written_and_ends_when_the_job_ends(
    api: Api, store: LocalJobStore
) -> None:
    running(store)
    path = runtime_log(api.settings, JOB, b"first\n")
    received: list[bytes] = []

    async with api.session.get(
        f"{api.url}/jobs/{JOB}/logs?follow=true", headers=api.headers(api.default_token)
    ) as response:
        assert response.status == 200
        received.append(await response.content.readline())
        append(path, b"second\n")
        received.append(await asyncio.wait_for(response.content.readline(), 5))
        append(path, b"collected 2 files\n")
        finish(store, JOB)
        rest = await asyncio.wait_for(response.content.read(), 10)

    assert received == [b"first\n", b"second\n"]
    assert rest == b"collected 2 files\n"


async def test_a_job_that_has_not_started_has_an_empty_log_and_a_follow_waits_for_it(
    api: Api, store: LocalJobStore
) -> None:
    add_job(store, JOB, phase=PhJobPhase.PENDING)
    assert await read_log(api, f"/jobs/{JOB}/logs") == (200, b"")

    async with api.session.get(
        f"{api.url}/jobs/{JOB}/logs?follow=true", headers=api.headers(api.default_token)
    ) as response:
        assert response.status == 200
        path = runtime_log(api.settings, JOB, b"started\n")
        store.write_status(JOB, PhJobStatus(phase=PhJobPhase.RUNNING))
        assert await asyncio.wait_for(response.content.readline(), 10) == b"started\n"
        append(path, b"done\n")
        finish(store, JOB)
        assert await asyncio.wait_for(response.content.read(), 10) == b"done\n"


# --- who may read it ----------------------------------------------------------------------


async def test_another_groups_job_log_is_forbidden_on_the_route_and_in_graphql(
    api: Api, store: LocalJobStore
) -> None:
    running(store, OTHER, group="team-b")
    runtime_log(api.settings, OTHER, b"secret of team-b\n")

    response = await api.get(f"/jobs/{OTHER}/logs?follow=true&tailLines=10")
    body = await response.json()
    result = await api.graphql(PAGE, {"id": OTHER})

    assert response.status == 403
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert body["message"] == body["errors"][0]["message"]  # PrimeHub's console reads this
    assert result.codes == ["FORBIDDEN"]
    assert "secret" not in str(result.body)


@pytest.mark.parametrize(
    ("bearer", "status"),
    [(None, 401), ("not-a-jwt", 401), (token("alice", expires_in=-60), 401)],
)
async def test_a_log_needs_a_valid_token(
    api: Api, store: LocalJobStore, bearer: str | None, status: int
) -> None:
    running(store)
    runtime_log(api.settings, JOB, LINES)

    response = await api.get(f"/jobs/{JOB}/logs", bearer=bearer)

    assert response.status == status
    assert (await response.json())["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("follow=maybe", "follow"),
        ("tailLines=-1", "tailLines"),
        ("tailLines=ten", "tailLines"),
        ("tailLines=99999999999", "tailLines"),
        ("download=yes", "download"),
    ],
)
async def test_a_bad_parameter_is_refused_naming_it(
    api: Api, store: LocalJobStore, query: str, field: str
) -> None:
    running(store)

    response = await api.get(f"/jobs/{JOB}/logs?{query}")
    error = (await response.json())["errors"][0]

    assert response.status == 400
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": field}
    assert field in error["message"]


@pytest.mark.parametrize(
    ("job_id", "status", "code"),
    [
        ("job-202101020304-nosuch", 404, "NOT_FOUND"),
        ("..%2F..%2Fetc", 400, "BAD_USER_INPUT"),
        ("job-202101020304-abcdef%0A", 400, "BAD_USER_INPUT"),
    ],
)
async def test_unknown_and_malformed_job_ids_are_refused(
    api: Api, job_id: str, status: int, code: str
) -> None:
    response = await api.get(f"/jobs/{job_id}/logs")

    assert response.status == status
    assert (await response.json())["errors"][0]["extensions"]["code"] == code


# --- what a job writes is data --------------------------------------------------------------


async def test_markup_in_a_log_is_served_as_text_that_no_browser_runs(
    api: Api, store: LocalJobStore
) -> None:
    running(store)
    runtime_log(api.settings, JOB, b"<script>alert(1)</script>\n<img src=x onerror=alert(2)>\n")

    response = await api.get(f"/jobs/{JOB}/logs")

    assert await response.read() == b"<script>alert(1)</script>\n<img src=x onerror=alert(2)>\n"
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response.headers["Content-Security-Policy"]


async def test_a_log_the_job_replaced_by_a_link_is_not_followed(
    api: Api, store: LocalJobStore, tmp_path: Path
) -> None:
    secret = tmp_path / "api-secret.txt"
    secret.write_text("the api's own secret\n")
    running(store)
    path = runtime_log(api.settings, JOB)
    path.unlink()
    path.symlink_to(secret)
    running(store, OTHER)
    other = api.settings.local_runtime_dir / OTHER
    other.mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "job.log").write_text("the api's own secret\n")
    other.rmdir()
    other.symlink_to(tmp_path / "elsewhere")

    for job_id in (JOB, OTHER):
        status, body = await read_log(api, f"/jobs/{job_id}/logs")
        assert status == 200
        assert b"secret" not in body
        finish(store, job_id)
        status, body = await read_log(api, f"/jobs/{job_id}/logs")
        assert status == 404
        assert b"secret" not in body


async def test_a_fifo_in_place_of_the_log_does_not_hang_the_api(
    api: Api, store: LocalJobStore
) -> None:
    running(store)
    path = runtime_log(api.settings, JOB)
    path.unlink()
    os.mkfifo(path)

    status, body = await asyncio.wait_for(read_log(api, f"/jobs/{JOB}/logs"), 10)

    assert (status, body) == (200, b"")


# --- an ended job: the copy kept with its artifacts ------------------------------------------


async def test_an_ended_jobs_log_comes_from_the_bucket_once_its_runtime_folder_is_gone(
    api: Api, store: LocalJobStore, s3: S3Client
) -> None:
    running(store)
    runtime_log(api.settings, JOB, b"live copy\n")
    finish(store, JOB)
    await archive_log(s3, api.settings.phfs_bucket, JOB, LINES, expired_at=time.time() + 3600)

    archived = await api.get(f"/jobs/{JOB}/logs?tailLines=2")
    assert archived.headers["X-Log-Source"] == "ARCHIVE"
    assert await archived.read() == b"line 9\nline 10\n"
    for entry in sorted(api.settings.local_job_log(JOB).parent.rglob("*"), reverse=True):
        entry.unlink()
    api.settings.local_job_log(JOB).parent.rmdir()

    assert await read_log(api, f"/jobs/{JOB}/logs") == (200, LINES)
    assert await read_log(api, f"/jobs/{JOB}/logs?follow=true") == (200, LINES)


async def test_an_ended_jobs_log_is_refused_once_its_artifacts_expired(
    api: Api, store: LocalJobStore, s3: S3Client
) -> None:
    running(store)
    runtime_log(api.settings, JOB, b"still on disk\n")
    finish(store, JOB)
    await archive_log(s3, api.settings.phfs_bucket, JOB, LINES, expired_at=time.time() - 1)

    response = await api.get(f"/jobs/{JOB}/logs")
    error = (await response.json())["errors"][0]
    result = await api.graphql(PAGE, {"id": JOB})

    assert response.status == 404
    assert error["extensions"] == {"code": "NOT_FOUND", "reason": "expired"}
    assert "expired" in error["message"]
    assert result.codes == ["NOT_FOUND"]


async def test_a_log_is_refused_after_the_janitor_deleted_the_folder_even_if_a_copy_remains(
    api: Api, store: LocalJobStore
) -> None:
    running(store)
    runtime_log(api.settings, JOB, b"still on disk\n")
    finish(store, JOB, ago=timedelta(days=8))  # the default retention is 7 days

    response = await api.get(f"/jobs/{JOB}/logs")

    assert response.status == 404
    assert (await response.json())["errors"][0]["extensions"]["reason"] == "expired"


async def test_an_ended_job_without_a_kept_log_is_served_from_its_runtime_within_retention(
    api: Api, store: LocalJobStore
) -> None:
    running(store)
    runtime_log(api.settings, JOB, LINES)
    finish(store, JOB, phase=PhJobPhase.FAILED)

    response = await api.get(f"/jobs/{JOB}/logs?tailLines=1")

    assert (response.status, await response.read()) == (200, b"line 10\n")
    assert response.headers["X-Log-Source"] == "LIVE"


async def test_an_ended_job_with_no_log_anywhere_is_not_found(
    api: Api, store: LocalJobStore
) -> None:
    running(store)
    finish(store, JOB)

    response = await api.get(f"/jobs/{JOB}/logs")

    assert response.status == 404
    assert (await response.json())["errors"][0]["extensions"]["reason"] == "gone"


async def test_a_log_kept_by_hand_has_no_expiry_and_is_served_past_the_retention(
    api: Api, store: LocalJobStore, s3: S3Client
) -> None:
    running(store)
    finish(store, JOB, ago=timedelta(days=30))
    await archive_log(s3, api.settings.phfs_bucket, JOB, LINES, expired_at=None)

    assert await read_log(api, f"/jobs/{JOB}/logs") == (200, LINES)


# --- the signed download link ---------------------------------------------------------------


async def test_the_download_link_saves_the_whole_log_without_a_token_for_that_job_only(
    api: Api, store: LocalJobStore
) -> None:
    running(store)
    running(store, OTHER)
    runtime_log(api.settings, JOB, LINES)
    runtime_log(api.settings, OTHER, b"other\n")
    link = (await api.graphql(PAGE, {"id": JOB, "limit": 0})).data["phJob"]["logs"]["downloadUrl"]

    response = await api.get(link, bearer=None)
    stolen = await api.get(link.replace(JOB, OTHER), bearer=None)
    tampered = await api.get(link[:-1] + ("0" if link[-1] != "0" else "1"), bearer=None)
    zip_link = (await api.get(link.replace("/logs?download=true&", "/logs?"), bearer=None)).status

    assert response.status == 200
    assert await response.read() == LINES
    assert response.headers["Content-Disposition"] == f'attachment; filename="{JOB}.log"'
    assert stolen.status == 401
    assert tampered.status == 401
    assert zip_link == 200  # the same link without download=true shows it instead


async def test_a_link_signed_for_the_zip_does_not_open_the_log_nor_the_other_way(
    api: Api, store: LocalJobStore, s3: S3Client
) -> None:
    running(store)
    runtime_log(api.settings, JOB, LINES)
    await put_files(s3, api.settings.phfs_bucket, "team-a", JOB, {"a.txt": b"a"})
    links = await api.graphql(
        "query ($id: ID!) { phJob(where: {id: $id}) { artifact { zipUrl } logs(limit: 0) "
        "{ downloadUrl } } }",
        {"id": JOB},
    )
    zip_url = links.data["phJob"]["artifact"]["zipUrl"]
    log_url = links.data["phJob"]["logs"]["downloadUrl"]

    as_log = await api.get(zip_url.replace("/artifacts.zip?", "/logs?"), bearer=None)
    as_zip = await api.get(log_url.replace("/logs?", "/artifacts.zip?"), bearer=None)

    assert (as_log.status, as_zip.status) == (401, 401)


# --- streams cost nothing to others ----------------------------------------------------------


@pytest.fixture
async def one_stream_api(settings: ApiSettings) -> AsyncIterator[Api]:
    async with serve(settings.model_copy(update={"api_log_max_streams": 1})) as running_api:
        yield running_api


async def test_a_client_that_leaves_a_silent_follow_frees_its_stream(
    one_stream_api: Api, store: LocalJobStore
) -> None:
    api = one_stream_api
    running(store)
    runtime_log(api.settings, JOB, b"quiet from here\n")
    async with aiohttp.ClientSession() as first:
        response = await first.get(
            f"{api.url}/jobs/{JOB}/logs?follow=true", headers=api.headers(api.default_token)
        )
        assert await response.content.readline() == b"quiet from here\n"
        busy = await api.get(f"/jobs/{JOB}/logs")
        assert busy.status == 503
        assert (await busy.json())["errors"][0]["extensions"]["code"] == "UNAVAILABLE"
    # The first client is gone, mid-follow, while the job writes nothing.

    deadline = time.monotonic() + 10
    while (status := (await api.get(f"/jobs/{JOB}/logs")).status) == 503:
        assert time.monotonic() < deadline, "the left stream was never freed"
        await asyncio.sleep(0.2)
    assert status == 200


async def test_a_client_that_stops_reading_a_big_log_does_not_slow_other_requests(
    api: Api, store: LocalJobStore
) -> None:
    running(store)
    runtime_log(api.settings, JOB, os.urandom(8 * 1024 * 1024))
    reader, writer = await asyncio.open_connection(*api.url.removeprefix("http://").split(":"))
    writer.write(
        f"GET /jobs/{JOB}/logs HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {api.default_token}\r\n\r\n".encode()
    )
    await writer.drain()
    await reader.read(1024)  # the stream has begun; this client now reads no more

    started = time.monotonic()
    for _ in range(20):
        assert (await api.get("/healthz")).status == 200
        result = await api.graphql(ENDPOINT, {"id": JOB})
        assert result.data["phJob"]["logEndpoint"].endswith(f"/jobs/{JOB}/logs")
    elapsed = time.monotonic() - started
    writer.close()

    assert elapsed < 10, f"40 requests took {elapsed:.1f} s beside a stalled stream"


# --- PhJob.logEndpoint and PhJob.logs --------------------------------------------------------


async def test_log_endpoint_is_this_apis_absolute_url_or_api_public_url(
    api: Api, settings: ApiSettings, store: LocalJobStore
) -> None:
    running(store)

    result = await api.graphql(ENDPOINT, {"id": JOB})
    public = settings.model_copy(update={"api_public_url": "https://artifacts.example.com/x"})
    async with serve(public) as behind_a_proxy:
        proxied = await behind_a_proxy.graphql(ENDPOINT, {"id": JOB})

    assert result.data["phJob"]["logEndpoint"] == f"{api.url}/jobs/{JOB}/logs"
    assert proxied.data["phJob"]["logEndpoint"] == (
        f"https://artifacts.example.com/x/jobs/{JOB}/logs"
    )


async def test_logs_pages_through_the_log_by_line(api: Api, store: LocalJobStore) -> None:
    running(store)
    runtime_log(api.settings, JOB, LINES)

    tail = (await api.graphql(PAGE, {"id": JOB, "limit": 3})).data["phJob"]["logs"]
    first = (await api.graphql(PAGE, {"id": JOB, "offset": 0, "limit": 4})).data["phJob"]["logs"]
    last = (await api.graphql(PAGE, {"id": JOB, "offset": 8, "limit": 4})).data["phJob"]["logs"]
    beyond = (await api.graphql(PAGE, {"id": JOB, "offset": 50})).data["phJob"]["logs"]

    assert tail["offset"] == 7
    assert tail["lines"] == ["line 8", "line 9", "line 10"]
    assert (tail["totalLines"], tail["hasMore"], tail["live"], tail["source"]) == (
        10,
        False,
        True,
        "LIVE",
    )
    assert (first["offset"], first["lines"], first["hasMore"]) == (
        0,
        ["line 1", "line 2", "line 3", "line 4"],
        True,
    )
    assert (last["lines"], last["hasMore"]) == (["line 9", "line 10"], False)
    assert (beyond["offset"], beyond["lines"], beyond["totalLines"]) == (50, [], 10)


async def test_logs_decodes_as_utf8_and_cuts_a_huge_line_saying_so(
    api: Api, store: LocalJobStore
) -> None:
    running(store)
    runtime_log(api.settings, JOB, b"caf\xc3\xa9 \xff\r\n" + b"x" * 100_000 + b"\nend")

    page = (await api.graphql(PAGE, {"id": JOB})).data["phJob"]["logs"]

    assert page["totalLines"] == 3
    assert page["lines"][0] == "café \ufffd"
    assert page["lines"][1].startswith("x" * 16384 + "…")
    assert "83616 more bytes" in page["lines"][1]
    assert page["lines"][2] == "end"


@pytest.mark.parametrize(
    ("variables", "field"),
    [({"offset": -1}, "offset"), ({"limit": -1}, "limit"), ({"limit": 5001}, "limit")],
)
async def test_logs_refuses_a_bad_offset_or_limit(
    api: Api, store: LocalJobStore, variables: dict[str, int], field: str
) -> None:
    running(store)

    result = await api.graphql(PAGE, {"id": JOB, **variables})

    assert result.codes == ["BAD_USER_INPUT"]
    assert result.errors[0]["extensions"]["field"] == field


async def test_logs_of_an_ended_job_come_from_the_archive_and_are_not_live(
    api: Api, store: LocalJobStore, s3: S3Client
) -> None:
    running(store)
    finish(store, JOB)
    await archive_log(s3, api.settings.phfs_bucket, JOB, LINES, expired_at=time.time() + 60)

    page = (await api.graphql(PAGE, {"id": JOB, "limit": 2})).data["phJob"]["logs"]

    assert (page["offset"], page["lines"], page["live"], page["source"]) == (
        8,
        ["line 9", "line 10"],
        False,
        "ARCHIVE",
    )
