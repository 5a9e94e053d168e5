"""Presigned download links: the file's bytes, an attachment header, one key, the TTL."""

from __future__ import annotations

import asyncio
import calendar
import time
import urllib.parse
from collections.abc import AsyncIterator

import pytest
from support.api import Api, add_job, api_settings, put_files, serve
from support.servers import S3Server

from artifacts_api.presign import content_disposition
from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.s3 import S3Client
from artifacts_shared.settings import RedisSettings, S3Settings

JOB = "job-202101020304-abcdef"
LINKS = """query ($id: ID!) { phJob(where: {id: $id}) {
  artifact { items { name size downloadUrl } } } }"""


@pytest.fixture
async def public_api(
    s3_server: S3Server,
    s3_settings: S3Settings,
    redis_settings: RedisSettings,
    store: LocalJobStore,
) -> AsyncIterator[Api]:
    """The api with a public S3 address that differs from the one it uses itself."""
    public = s3_server.url.replace("127.0.0.1", "localhost")
    settings = api_settings(
        s3_settings,
        redis_settings.redis_url,
        store.root,
        s3_public_endpoint_url=public,
        download_url_ttl_seconds=123,
    )
    async with serve(settings) as running:
        yield running


async def test_each_download_url_returns_the_files_bytes_as_an_attachment(
    public_api: Api, s3: S3Client, store: LocalJobStore
) -> None:
    add_job(store, JOB)
    files = {"test.txt": b"hello\n", "sub/test.txt": b"hello\n", "data.bin": bytes(range(256))}
    await put_files(s3, public_api.settings.phfs_bucket, "team-a", JOB, files)

    result = await public_api.graphql(LINKS, {"id": JOB})

    items = result.data["phJob"]["artifact"]["items"]
    assert len(items) == 3
    for item in items:
        async with public_api.session.get(item["downloadUrl"]) as response:
            assert response.status == 200
            assert await response.read() == files[item["name"]]
            basename = item["name"].rsplit("/", 1)[-1]
            assert response.headers["Content-Disposition"] == (
                f"attachment; filename=\"{basename}\"; filename*=UTF-8''{basename}"
            )


def _altered(url: str, *, path: str | None = None, **params: str) -> str:
    """``url`` with its path or some query parameters changed, the rest as signed."""
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True)) | params
    return urllib.parse.urlunsplit(
        parts._replace(path=path or parts.path, query=urllib.parse.urlencode(query))
    )


async def test_the_server_honours_a_link_only_as_signed_for_that_key_host_and_ttl(
    public_api: Api, s3: S3Client, s3_server: S3Server, store: LocalJobStore
) -> None:
    add_job(store, JOB)
    prefix = await put_files(
        s3,
        public_api.settings.phfs_bucket,
        "team-a",
        JOB,
        {"sub/test.txt": b"hello\n", "other.txt": b"secret"},
    )

    before = time.time()
    result = await public_api.graphql(LINKS, {"id": JOB})
    url = next(
        item["downloadUrl"]
        for item in result.data["phJob"]["artifact"]["items"]
        if item["name"] == "sub/test.txt"
    )
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))

    public = urllib.parse.urlsplit(s3_server.url.replace("127.0.0.1", "localhost"))
    assert (parts.scheme, parts.netloc) == (public.scheme, public.netloc)
    assert urllib.parse.unquote(parts.path) == (
        f"/{public_api.settings.phfs_bucket}/{prefix}sub/test.txt"
    )
    assert query["X-Amz-Expires"] == "123"
    signed_at = calendar.timegm(time.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ"))
    assert before - 2 <= signed_at <= time.time() + 1
    signature = query["X-Amz-Signature"]
    forged = "0" if signature[0] != "0" else "1"
    tampered = {
        "signature": _altered(url, **{"X-Amz-Signature": forged + signature[1:]}),
        "key": _altered(url, path=parts.path.replace("sub/test.txt", "other.txt")),
        "expiry": _altered(url, **{"X-Amz-Expires": "604800"}),
        "header": _altered(url, **{"response-content-disposition": "inline"}),
    }

    async with public_api.session.get(url) as response:
        assert (response.status, await response.read()) == (200, b"hello\n")
    for what, link in tampered.items():
        async with public_api.session.get(link) as response:
            body = await response.text()
            assert response.status == 403, f"{what}: {response.status} {body}"
            assert "secret" not in body


async def test_the_server_refuses_a_link_once_its_ttl_has_passed(
    s3_server: S3Server,
    s3_settings: S3Settings,
    redis_settings: RedisSettings,
    store: LocalJobStore,
    s3: S3Client,
) -> None:
    settings = api_settings(
        s3_settings, redis_settings.redis_url, store.root, download_url_ttl_seconds=1
    )
    add_job(store, JOB)
    await put_files(s3, settings.phfs_bucket, "team-a", JOB, {"test.txt": b"hello\n"})
    async with serve(settings) as api:
        result = await api.graphql(LINKS, {"id": JOB})
        (item,) = result.data["phJob"]["artifact"]["items"]
        async with api.session.get(item["downloadUrl"]) as fresh:
            assert fresh.status == 200
        await asyncio.sleep(2.1)
        async with api.session.get(item["downloadUrl"]) as stale:
            assert stale.status == 403
            assert "expired" in (await stale.text()).lower()


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("sub/report.csv", "attachment; filename=\"report.csv\"; filename*=UTF-8''report.csv"),
        (
            'we"ird\\name.txt',
            'attachment; filename="we\\"ird\\\\name.txt"; filename*=UTF-8\'\'we%22ird%5Cname.txt',
        ),
        (
            "résumé final.pdf",
            'attachment; filename="r_sum_ final.pdf"; '
            "filename*=UTF-8''r%C3%A9sum%C3%A9%20final.pdf",
        ),
        ("line\nbreak", "attachment; filename=\"line_break\"; filename*=UTF-8''line%0Abreak"),
    ],
)
def test_content_disposition_escapes_quotes_backslashes_and_non_ascii(
    name: str, header: str
) -> None:
    assert content_disposition(name) == header


async def test_s3_answers_a_download_of_an_awkward_name_with_the_escaped_header(
    public_api: Api, s3: S3Client, store: LocalJobStore
) -> None:
    add_job(store, JOB)
    name = 'dir/we"ird é.txt'
    await put_files(s3, public_api.settings.phfs_bucket, "team-a", JOB, {name: b"x"})

    result = await public_api.graphql(LINKS, {"id": JOB})
    (item,) = result.data["phJob"]["artifact"]["items"]
    async with public_api.session.get(item["downloadUrl"]) as response:
        assert await response.read() == b"x"
        assert response.headers["Content-Disposition"] == content_disposition(name)
