"""Collect, list, download, zip and expire a job's artifacts on each real S3 server.

The product's own paths end to end — the uploader (multipart, odd names), the api
(listings across pages, presigned links the server checks, the zip), the janitor
(``DeleteObjects``, and the empty folder a file-system-backed server keeps) — once per
implementation of ``conftest.SERVERS``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import urllib.parse
import zipfile
from pathlib import Path

from redis.asyncio import Redis
from support.api import add_job, api_settings, serve
from support.buckets import put_objects, snapshot
from support.folders import NOW, FixedClock, folder
from support.jobs import GROUP, JOB, JobHome

from artifacts_janitor.cleanup import CleanupOptions, run_cleanup
from artifacts_janitor.listing import list_due, plan_runs
from artifacts_janitor.rescan import RESCAN_RECORD_KEY
from artifacts_shared.cleanup_result import CleanupResult
from artifacts_shared.expiry_index import ExpiryIndex
from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.layout import JobPrefix, job_prefix, manifest_key
from artifacts_shared.manifest import Manifest
from artifacts_shared.s3 import S3Client, iter_objects, iter_prefixes
from artifacts_shared.settings import RedisSettings, S3Settings

MIB = 1024 * 1024
ODD_NAMES = [
    "new\nline ünï.txt",
    "with space.txt",
    "100% done.txt",
    "a%2Fb",
    "plus+and&equals=.txt",
    "ünïcødé 日本語 🎉/inner.txt",
    'q"uote',
    "-dash",
]
# Every name across two listing pages; the links come one item at a time, since a
# request may sign at most API_MAX_SIGNED_LINKS (1,000) of them.
LIST = """query ($id: ID!) { phJob(where: {id: $id}) {
  artifact { fileCount items { name size } zipUrl } } }"""
LINK = """query ($id: ID!, $name: String!) { phJob(where: {id: $id}) {
  artifact { item(name: $name) { downloadUrl } } } }"""


async def test_the_uploader_delivers_odd_names_and_a_multipart_file(
    tmp_path: Path, matrix_settings: S3Settings, matrix_s3: S3Client
) -> None:
    job = JobHome(tmp_path)
    job.use_s3_delivery()
    files = {name: name.encode() for name in ODD_NAMES}
    files["model.bin"] = os.urandom(17 * MIB)  # above the 16 MiB multipart threshold
    for name, body in files.items():
        (job.artifacts / name).parent.mkdir(parents=True, exist_ok=True)
        (job.artifacts / name).write_bytes(body)
    job.run("true", env={"PHJOB_ARTIFACT_LIMIT_SIZE_MB": "100"})

    uploaded = subprocess.run(
        [sys.executable, "-m", "artifacts_controller.uploader", "--wait-timeout", "0"],
        env=job.uploader_env(matrix_settings),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert uploaded.returncode == 0, uploaded.stderr
    prefix = job_prefix(GROUP, JOB)
    stored = {
        item.key[len(prefix) :]: item.size
        async for item in iter_objects(matrix_s3, matrix_settings.phfs_bucket, prefix)
    }
    assert {name: stored[name] for name in files} == {n: len(b) for n, b in files.items()}
    response = await matrix_s3.get_object(
        Bucket=matrix_settings.phfs_bucket, Key=manifest_key(prefix)
    )
    async with response["Body"] as body:
        manifest = Manifest.from_json(await body.read())
    digests = {entry.name: entry.sha256 for entry in manifest.files}
    assert digests == {name: hashlib.sha256(body).hexdigest() for name, body in files.items()}
    big = await matrix_s3.get_object(Bucket=matrix_settings.phfs_bucket, Key=f"{prefix}model.bin")
    async with big["Body"] as body:
        assert await body.read() == files["model.bin"]


async def test_the_api_lists_across_pages_and_its_links_and_zip_hold_odd_names(
    matrix_settings: S3Settings,
    matrix_s3: S3Client,
    redis_settings: RedisSettings,
    tmp_path: Path,
) -> None:
    store = LocalJobStore(tmp_path / "jobs")
    add_job(store, JOB, group="team-a")
    prefix = job_prefix("team-a", JOB)
    many = {f"pages/file-{i:04d}.txt": b"x" * (i % 3) for i in range(1100)}  # two pages
    odd = {name: f"body of {name}".encode() for name in ODD_NAMES}
    await put_objects(
        matrix_s3,
        matrix_settings.phfs_bucket,
        {f"{prefix}{name}": body for name, body in (many | odd).items()},
    )
    settings = api_settings(matrix_settings, redis_settings.redis_url, store.root)

    async with serve(settings) as api:
        result = await api.graphql(LIST, {"id": JOB})
        assert result.errors == [], result.errors
        artifact = result.data["phJob"]["artifact"]
        links = {}
        for name in ODD_NAMES:
            linked = await api.graphql(LINK, {"id": JOB, "name": name})
            assert linked.errors == [], linked.errors
            links[name] = linked.data["phJob"]["artifact"]["item"]["downloadUrl"]
        downloads = {}
        for name in ODD_NAMES:
            async with api.session.get(links[name]) as response:
                downloads[name] = (response.status, await response.read())
        url = links[ODD_NAMES[0]]
        parts = urllib.parse.urlsplit(url)
        forged = urllib.parse.urlunsplit(parts._replace(path=parts.path.replace("line", "lime", 1)))
        async with api.session.get(forged) as refused:
            forged_status = refused.status
        zipped = await api.get(artifact["zipUrl"])
        archive = zipfile.ZipFile(io.BytesIO(await zipped.read()))

    assert artifact["fileCount"] == len(many) + len(odd)
    assert sorted(item["name"] for item in artifact["items"]) == sorted(many | odd)
    assert downloads == {name: (200, body) for name, body in odd.items()}
    assert forged_status == 403
    assert archive.testzip() is None
    assert sorted(archive.namelist()) == sorted(many | odd)
    assert archive.read(ODD_NAMES[0]) == odd[ODD_NAMES[0]]


async def test_the_janitor_deletes_an_expired_folder_and_the_next_run_finds_nothing_to_report(
    matrix_settings: S3Settings, matrix_s3: S3Client, redis: Redis
) -> None:
    bucket = matrix_settings.phfs_bucket
    files = {"a.txt": b"1", "sub/deeper/b.txt": b"2", ODD_NAMES[0]: b"3"}
    files |= {f"bulk/{i:04d}": b"." for i in range(1001)}  # two DeleteObjects requests
    expired, doomed = folder("g", "job-expired", files, expired_at=b"1000")
    _, kept = folder("g", "job-kept", {"keep.txt": b"k"}, expired_at=b"4000000000")
    await put_objects(matrix_s3, bucket, doomed | kept)
    options = CleanupOptions(concurrency=4)

    # The first run from the index, as the uploader fed it. The daily run leaves the
    # emptied directories to the server (SeaweedFS removes them minutes later, JuiceFS
    # never): a later daily run handed the deleted folder again (a late estimate of the
    # controller's) and the rescan must find nothing to report, and leave no directory.
    index = ExpiryIndex(redis)
    await index.add(expired, 1000)
    await redis.set(RESCAN_RECORD_KEY, json.dumps({"finishedAt": NOW, "scanned": 0, "found": 0}))

    async def run(run_id: str, *, rescan: bool = False) -> CleanupResult:
        return await run_cleanup(
            s3=matrix_s3,
            bucket=bucket,
            redis=redis,
            clock=FixedClock(),
            run_id=run_id,
            options=options,
            rescan_now=rescan,
        )

    first = await run("one")
    await index.add(expired, 1000)
    late = await run("late")
    second = await run("two", rescan=True)

    assert (first.folders_deleted, first.objects_deleted, first.folders_failed) == (
        1,
        len(doomed),
        0,
    ), first.errors
    assert set(await snapshot(matrix_s3, bucket)) == set(kept)  # no directory left behind
    assert (second.folders_scanned, second.folders_skipped, second.skipped) == (1, 0, [])
    assert second.folders_unexpired == 1
    assert (first.index_checked, first.index_stale, second.rescan_found) == (1, 0, 1)
    assert (late.index_checked, late.index_stale, late.folders_deleted) == (1, 1, 0)
    assert (late.skipped, late.errors, await index.size()) == ([], [], 1)
    folders = [name async for name in iter_prefixes(matrix_s3, bucket, "groups/g/jobArtifacts/")]
    assert folders == [job_prefix("g", "job-kept")]


async def test_due_folders_listed_together_each_come_once_with_exactly_their_objects(
    matrix_settings: S3Settings, matrix_s3: S3Client
) -> None:
    # SeaweedFS lists in the order it walks its directories, MinIO's layer in byte order:
    # names that extend one another ("-1") or sort between ('.', '-') come out differently.
    bucket = matrix_settings.phfs_bucket
    root = "groups/g/jobArtifacts/"
    files = {
        "job-202501011200-aaaaaa": ["a.txt", "sub/b.txt", ".primehub/metadata/expiredAt"],
        "job-202501011200-aaaaaa-1": ["c.txt"],
        "job-202501011200-aaaaab": ["not-due.txt", "x/y"],
        "job-202501011202-dddddd": [f"part-{i:04d}" for i in range(1001)],
        "job-202501011203-eeeeee": ["e.txt"],
        "job-202501011205-wwwwww": [f"w-{i:04d}" for i in range(2100)],
        "job-202501011206-zzzzzz": ["z.txt"],
    }
    objects = {f"{root}{job}/{name}": b"1" for job, names in files.items() for name in names}
    objects[f"{root}job-2025010112-loose"] = b"a loose file, in no folder"
    objects[f"{root}job-202501011200-aaaaaa.txt"] = b"another"
    await put_objects(matrix_s3, bucket, objects)
    due = [
        JobPrefix(f"{root}{job}/")
        for job in (
            "job-202501011200-aaaaaa",
            "job-202501011200-aaaaaa-1",
            "job-202501011201-cccccc",  # gone: holds nothing
            "job-202501011202-dddddd",  # larger than a page
            "job-202501011203-eeeeee",
            "job-202501011206-zzzzzz",  # behind 2,100 objects of a folder not due
        )
    ]
    (run,) = plan_runs(due)

    listed = [(prefix, page) async for prefix, page in list_due(matrix_s3, bucket, run)]

    assert sorted(prefix for prefix, _ in listed) == sorted(due)
    for prefix, page in listed:
        keys = {item.key for item in page.objects}
        expected = {key for key in objects if key.startswith(prefix)}
        if page.complete:
            assert keys == expected, prefix
        else:
            assert prefix.endswith("dddddd/") and keys < expected and len(keys) >= 1000
