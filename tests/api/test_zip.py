"""``GET /jobs/<id>/artifacts.zip``: exactly the artifact files, streamed with flat memory."""

from __future__ import annotations

import hashlib
import io
import os
import uuid
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from support.api import Api, ApiProcess, add_job, api_settings, put_files, serve
from support.servers import S3Server, free_port

from artifacts_api.links import LinkSigner
from artifacts_api.settings import ApiSettings
from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.layout import job_prefix
from artifacts_shared.s3 import S3Client
from artifacts_shared.settings import RedisSettings

JOB = "job-202102030405-zipzip"
WARM_UP = "job-202102030405-warmup"
MiB = 1024 * 1024


async def test_the_zip_holds_exactly_the_artifact_files_with_their_bytes(
    api: Api, s3: S3Client, store: LocalJobStore
) -> None:
    add_job(store, JOB)
    files = {
        "test.txt": b"hello\n",
        "sub/test.txt": b"hello\n",
        ".hidden": b"dot",
        "deep/er/ré sumé.bin": os.urandom(70_000),
        "empty": b"",
    }
    await put_files(
        s3,
        api.settings.phfs_bucket,
        "team-a",
        JOB,
        {**files, ".primehub/metadata/expiredAt": b"1", ".metadata/expiredAt": b"1"},
    )

    response = await api.get(f"/jobs/{JOB}/artifacts.zip")

    assert response.status == 200
    assert response.headers["Content-Type"] == "application/zip"
    assert response.headers["Content-Disposition"] == f'attachment; filename="{JOB}-artifacts.zip"'
    archive = zipfile.ZipFile(io.BytesIO(await response.read()))
    assert archive.testzip() is None  # every CRC checks out
    assert sorted(archive.namelist()) == sorted(files)
    for name, body in files.items():
        assert archive.read(name) == body
        info = archive.getinfo(name)
        assert info.external_attr >> 16 == 0o100644
        assert datetime(*info.date_time, tzinfo=UTC).year == datetime.now(UTC).year


async def test_a_zip_without_artifacts_or_job_is_not_found_and_a_bad_id_is_refused(
    api: Api, store: LocalJobStore
) -> None:
    add_job(store, JOB)

    empty = await api.get(f"/jobs/{JOB}/artifacts.zip")
    unknown = await api.get("/jobs/job-209901010000-nnnnnn/artifacts.zip")
    malformed = await api.get("/jobs/job-..%2F..%2Fx/artifacts.zip")

    assert (empty.status, unknown.status, malformed.status) == (404, 404, 400)
    for response, code in (
        (empty, "NOT_FOUND"),
        (unknown, "NOT_FOUND"),
        (malformed, "BAD_USER_INPUT"),
    ):
        assert (await response.json())["errors"][0]["extensions"]["code"] == code


async def test_the_zip_url_works_without_a_token_for_that_job_only(
    api: Api, s3: S3Client, store: LocalJobStore
) -> None:
    add_job(store, JOB)
    other = "job-202102030405-other1"
    add_job(store, other)
    await put_files(s3, api.settings.phfs_bucket, "team-a", JOB, {"a.txt": b"a"})
    await put_files(s3, api.settings.phfs_bucket, "team-a", other, {"b.txt": b"b"})
    result = await api.graphql(
        "query ($id: ID!) { phJob(where: {id: $id}) { artifact { zipUrl } } }", {"id": JOB}
    )
    url = result.data["phJob"]["artifact"]["zipUrl"]

    linked = await api.get(url, bearer=None)
    moved = await api.get(url.replace(JOB, other), bearer=None)
    tampered = await api.get(url[:-4] + "0000", bearer=None)

    assert url.startswith(f"/jobs/{JOB}/artifacts.zip?expires=")
    assert linked.status == 200
    assert zipfile.ZipFile(io.BytesIO(await linked.read())).namelist() == ["a.txt"]
    assert moved.status == 401 and tampered.status == 401


def test_a_zip_link_expires_after_the_ttl() -> None:
    signer = LinkSigner(b"k" * 32, ttl_seconds=300)
    url = signer.zip_url(JOB, now=1_000_000)
    query = dict(part.split("=") for part in url.split("?")[1].split("&"))

    assert query["expires"] == "1000300"
    assert signer.valid(JOB, query["expires"], query["signature"], now=1_000_299)
    assert not signer.valid(JOB, query["expires"], query["signature"], now=1_000_301)
    assert not LinkSigner(b"x" * 32, ttl_seconds=300).valid(
        JOB, query["expires"], query["signature"], now=1_000_000
    )


@pytest.fixture
async def api_process(
    settings: ApiSettings, s3_server: S3Server, tmp_path: Path
) -> AsyncIterator[ApiProcess]:
    """``python -m artifacts_api`` in its own process, so its memory can be measured alone."""
    secret = settings.s3_secret_access_key
    process = ApiProcess(
        {
            "API_HOST": "127.0.0.1",
            "API_PORT": str(free_port()),
            "API_AUTH_MODE": "none",
            "CONTROLLER_RUNTIME": "local",
            "LOCAL_JOBS_DIR": str(settings.local_jobs_dir),
            "S3_ENDPOINT_URL": settings.s3_endpoint_url or "",
            "S3_ACCESS_KEY_ID": settings.s3_access_key_id or "",
            "S3_SECRET_ACCESS_KEY": secret.get_secret_value() if secret else "",
            "PHFS_BUCKET": settings.phfs_bucket,
            "REDIS_URL": settings.redis_url,
        }
    )
    add_job(LocalJobStore(settings.local_jobs_dir), WARM_UP)
    s3_server.seed(settings.phfs_bucket, {f"{job_prefix('team-a', WARM_UP)}a.txt": b"a" * 1000})
    try:
        yield await process.start()
    finally:
        process.stop()


async def stream_to_file(api: Api, process: ApiProcess, path: Path) -> int:
    """Download the zip to ``path`` while sampling the api's RSS; returns its peak growth."""
    async with api.session.get(f"{process.url}/jobs/{WARM_UP}/artifacts.zip") as warm:
        assert warm.status == 200  # lazy imports and pools settle before the baseline
        await warm.read()
    baseline = process.rss()
    process.start_sampling()
    try:
        async with api.session.get(f"{process.url}/jobs/{JOB}/artifacts.zip") as response:
            assert response.status == 200, await response.text()
            with path.open("wb") as sink:
                async for chunk in response.content.iter_chunked(MiB):
                    sink.write(chunk)
    finally:
        peak = process.stop_sampling()
    return peak - baseline


@pytest.mark.slow
async def test_a_zip_of_2000_files_streams_with_flat_memory(
    api: Api, api_process: ApiProcess, s3_server: S3Server, store: LocalJobStore, tmp_path: Path
) -> None:
    add_job(store, JOB)
    prefix = job_prefix("team-a", JOB)
    files = {f"part-{i // 100:02d}/file-{i:04d}.txt": f"{i}\n".encode() * 50 for i in range(2000)}
    s3_server.seed(
        api.settings.phfs_bucket,
        {f"{prefix}{name}": body for name, body in files.items()}
        | {f"{prefix}.primehub/metadata/manifest.json": b"{}"},
    )

    growth = await stream_to_file(api, api_process, tmp_path / "out.zip")

    with zipfile.ZipFile(tmp_path / "out.zip") as archive:
        assert archive.testzip() is None
        assert sorted(archive.namelist()) == sorted(files)
        assert all(archive.read(name) == body for name, body in files.items())
    assert growth < 20 * MiB, f"RSS grew by {growth / MiB:.1f} MiB"


@pytest.mark.slow
async def test_a_zip_of_one_300_mb_file_streams_with_flat_memory(
    api: Api, api_process: ApiProcess, s3_server: S3Server, store: LocalJobStore, tmp_path: Path
) -> None:
    add_job(store, JOB)
    block = os.urandom(MiB)
    body = b"".join(block[i:] + block[:i] for i in range(300))  # 300 distinct MiB
    digest = hashlib.sha256(body).hexdigest()
    s3_server.seed(api.settings.phfs_bucket, {f"{job_prefix('team-a', JOB)}model.bin": body})
    del body

    growth = await stream_to_file(api, api_process, tmp_path / "out.zip")

    with zipfile.ZipFile(tmp_path / "out.zip") as archive:
        assert archive.namelist() == ["model.bin"]
        assert archive.getinfo("model.bin").file_size == 300 * MiB
        hasher = hashlib.sha256()
        with archive.open("model.bin") as entry:  # zipfile checks the CRC at the end
            while chunk := entry.read(4 * MiB):
                hasher.update(chunk)
        assert hasher.hexdigest() == digest
    assert growth < 20 * MiB, f"RSS grew by {growth / MiB:.1f} MiB"


async def test_an_s3_failure_mid_zip_cuts_the_download_short(
    redis_settings: RedisSettings, tmp_path: Path
) -> None:
    server = S3Server().start()
    bucket = f"cut-{uuid.uuid4().hex[:8]}"
    server.create_bucket(bucket)
    prefix = job_prefix("team-a", JOB)
    server.seed(bucket, {f"{prefix}part-{i:02d}.bin": os.urandom(MiB) for i in range(30)})
    store = LocalJobStore(tmp_path / "jobs")
    add_job(store, JOB)
    settings = api_settings(
        server.settings(bucket), redis_settings.redis_url, store.root, api_s3_timeout_seconds=2
    )
    received = 0
    try:
        async with serve(settings) as api:
            async with api.session.get(
                f"{api.url}/jobs/{JOB}/artifacts.zip", headers=api.headers(api.default_token)
            ) as response:
                assert response.status == 200
                with pytest.raises(aiohttp.ClientPayloadError):
                    async for chunk in response.content.iter_chunked(64 * 1024):
                        if not received:
                            server.stop()  # requests already in flight still finish
                        received += len(chunk)
    finally:
        server.close()

    # Cut before the end: a client never takes a truncated archive for a whole one.
    assert 0 < received < 30 * MiB
