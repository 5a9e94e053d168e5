"""Browsing a job's artifacts a folder at a time, paging, and the limits on one request."""

from __future__ import annotations

import asyncio
import hashlib
import re
from datetime import UTC, datetime
from typing import Any

from support.api import Api, add_job, api_settings, put_files, serve
from support.servers import S3Server

from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.layout import job_prefix
from artifacts_shared.manifest import Manifest, ManifestFile, ManifestLimits
from artifacts_shared.metadata_store import write_expired_at, write_manifest
from artifacts_shared.s3 import S3Client, open_s3
from artifacts_shared.settings import RedisSettings, S3Settings

JOB = "job-202009250153-entrys"
OTHER = "job-202009250154-others"

ENTRIES = """query ($id: ID!, $path: String, $first: Int, $after: String) {
  phJob(where: {id: $id}) { artifact {
    entries(path: $path, first: $first, after: $after) {
      path fileCount totalSize
      pageInfo { hasNextPage endCursor }
      nodes {
        __typename
        ... on PhJobArtifactFolder { name path fileCount totalSize }
        ... on PhJobArtifactItem { name size sha256 lastModified }
      }
    } } } }"""

FILES = {
    "a.txt": b"a",
    "b.txt": b"bb",
    "sub/x.txt": b"xxx",
    "sub/deep/y.txt": b"yyyy",
    "zeta/z.txt": b"zzzzz",
}


async def collected(s3: S3Client, bucket: str, store: LocalJobStore, job: str = JOB) -> str:
    """FILES as the uploader leaves them: the files, then the manifest, then expiredAt."""
    add_job(store, job)
    prefix = await put_files(s3, bucket, "team-a", job, FILES)
    await write_manifest(
        s3,
        bucket,
        job_prefix("team-a", job),
        Manifest(
            job=job,
            group="team-a",
            collected_at=datetime(2020, 9, 25, 2, 0, tzinfo=UTC),
            file_count=len(FILES),
            total_size=sum(map(len, FILES.values())),
            limits=ManifestLimits(size_mb=100, files=1000),
            files=[
                ManifestFile(name=name, size=len(body), sha256=hashlib.sha256(body).hexdigest())
                for name, body in FILES.items()
            ],
        ),
    )
    await write_expired_at(s3, bucket, job_prefix("team-a", job), 1_601_600_000)
    return prefix


async def entries(api: Api, **variables: Any) -> Any:
    result = await api.graphql(ENTRIES, {"id": JOB, **variables})
    assert result.errors == [], result.body
    return result.data["phJob"]["artifact"]["entries"]


def names(connection: Any) -> list[str]:
    return [node.get("path") or node["name"] for node in connection["nodes"]]


async def test_the_top_folder_lists_its_files_and_folders_with_totals_from_the_manifest(
    api: Api, s3: S3Client, store: LocalJobStore
) -> None:
    await collected(s3, api.settings.phfs_bucket, store)

    top = await entries(api)

    assert top["path"] == "" and (top["fileCount"], top["totalSize"]) == (5, 15)
    assert names(top) == ["a.txt", "b.txt", "sub/", "zeta/"]  # no .primehub/
    sub = top["nodes"][2]
    assert sub == {
        "__typename": "PhJobArtifactFolder",
        "name": "sub",
        "path": "sub/",
        "fileCount": 2,
        "totalSize": 7,
    }
    a = top["nodes"][0]
    assert a["__typename"] == "PhJobArtifactItem" and a["size"] == 1
    assert a["sha256"] == hashlib.sha256(b"a").hexdigest()
    assert top["pageInfo"] == {"hasNextPage": False, "endCursor": None}


async def test_a_folder_is_opened_by_its_path_and_files_keep_their_whole_name(
    api: Api, s3: S3Client, store: LocalJobStore
) -> None:
    await collected(s3, api.settings.phfs_bucket, store)

    sub = await entries(api, path="sub/")
    without_slash = await entries(api, path="sub")
    deep = await entries(api, path="sub/deep/")

    assert names(sub) == ["sub/deep/", "sub/x.txt"] == names(without_slash)
    assert (sub["path"], sub["fileCount"], sub["totalSize"]) == ("sub/", 2, 7)
    assert names(deep) == ["sub/deep/y.txt"]


async def test_pages_follow_each_other_to_the_end_without_repeats(
    api: Api, s3: S3Client, store: LocalJobStore
) -> None:
    await collected(s3, api.settings.phfs_bucket, store)

    seen: list[str] = []
    after = None
    for _ in range(10):
        page = await entries(api, first=2, after=after)
        assert len(page["nodes"]) <= 2
        seen += names(page)
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == ["a.txt", "b.txt", "sub/", "zeta/"]


async def test_a_folder_emptied_after_collection_is_not_shown_as_holding_files(
    api: Api, s3: S3Client, store: LocalJobStore
) -> None:
    # No manifest (a PrimeHub release's folder), and the server keeps emptied directories.
    add_job(store, JOB)
    bucket = api.settings.phfs_bucket
    prefix = await put_files(s3, bucket, "team-a", JOB, {"kept.txt": b"k", "gone/a/b.txt": b"x"})
    await s3.delete_object(Bucket=bucket, Key=f"{prefix}gone/a/b.txt")

    top = await entries(api)
    gone = await entries(api, path="gone/")

    assert names(top) == ["kept.txt"]
    assert (top["fileCount"], top["totalSize"]) == (None, None)
    assert gone["nodes"] == [] and gone["pageInfo"]["hasNextPage"] is False


async def test_a_job_folder_the_janitor_emptied_lists_nothing(
    api: Api, s3: S3Client, store: LocalJobStore
) -> None:
    prefix = await collected(s3, api.settings.phfs_bucket, store)
    listing = await s3.list_objects_v2(Bucket=api.settings.phfs_bucket, Prefix=prefix)
    for item in listing["Contents"]:
        await s3.delete_object(Bucket=api.settings.phfs_bucket, Key=item["Key"])

    result = await api.graphql(ENTRIES, {"id": JOB})

    # Never null (PrimeHub's clients read it unguarded), and the directories SeaweedFS kept
    # are no folders: nothing at all is listed.
    artifact = result.data["phJob"]["artifact"]
    assert result.errors == [] and artifact["entries"]["nodes"] == []
    assert artifact["entries"]["pageInfo"]["hasNextPage"] is False


async def test_hostile_paths_and_cursors_are_refused_with_a_reason(
    api: Api, s3: S3Client, store: LocalJobStore
) -> None:
    await collected(s3, api.settings.phfs_bucket, store)
    page = await entries(api, first=1)
    cursor = page["pageInfo"]["endCursor"]

    cases = {
        "../": {"path": "../"},
        "escape": {"path": f"../{OTHER}/"},
        "empty step": {"path": "sub//deep"},
        "absolute": {"path": "/etc/"},
        "metadata": {"path": ".primehub/metadata/"},
        "nul": {"path": "sub\x00/"},
        "another folder's cursor": {"path": "sub/", "after": cursor},
        "garbage cursor": {"after": "not-a-cursor"},
        "huge cursor": {"after": "A" * 10_000},
        "first too big": {"first": 5000},
        "first negative": {"first": -1},
    }
    for what, variables in cases.items():
        result = await api.graphql(ENTRIES, {"id": JOB, **variables})
        assert result.codes == ["BAD_USER_INPUT"], (what, result.body)
        # Refused whole (a cost limit: no data) or in that field alone, never answered.
        listed = (result.data or {}).get("phJob") or {}
        assert listed.get("artifact") is None, (what, result.body)


async def test_another_groups_job_cannot_be_browsed(
    api: Api, s3: S3Client, store: LocalJobStore
) -> None:
    add_job(store, OTHER, group="team-b")
    await put_files(s3, api.settings.phfs_bucket, "team-b", OTHER, {"secret.txt": b"s"})

    result = await api.graphql(ENTRIES, {"id": OTHER})

    assert result.codes == ["FORBIDDEN"] and "secret" not in str(result.body)


async def test_items_can_be_paged_by_the_last_name_of_the_previous_page(
    api: Api, s3: S3Client, store: LocalJobStore
) -> None:
    await collected(s3, api.settings.phfs_bucket, store)
    query = """query ($id: ID!, $first: Int, $after: String) {
        phJob(where: {id: $id}) { artifact { items(first: $first, after: $after) { name } } } }"""

    pages: list[list[str]] = []
    after = None
    while True:
        result = await api.graphql(query, {"id": JOB, "first": 2, "after": after})
        assert result.errors == [], result.body
        page = [item["name"] for item in result.data["phJob"]["artifact"]["items"]]
        if not page:
            break
        pages.append(page)
        after = page[-1]
    escaping = await api.graphql(query, {"id": JOB, "first": 2, "after": "../x"})

    assert pages == [["a.txt", "b.txt"], ["sub/deep/y.txt", "sub/x.txt"], ["zeta/z.txt"]]
    assert escaping.codes == ["BAD_USER_INPUT"]


async def test_entries_download_urls_are_accepted_by_the_server(
    api: Api, s3: S3Client, store: LocalJobStore
) -> None:
    await collected(s3, api.settings.phfs_bucket, store)

    result = await api.graphql(
        """query ($id: ID!) { phJob(where: {id: $id}) { artifact {
             entries(path: "sub/deep/") { nodes { ... on PhJobArtifactItem { downloadUrl } } }
           } } }""",
        {"id": JOB},
    )

    (node,) = result.data["phJob"]["artifact"]["entries"]["nodes"]
    async with api.session.get(node["downloadUrl"]) as response:
        assert (response.status, await response.read()) == (200, b"yyyy")


def _listings(metrics: str) -> float:
    """ListObjectsV2 calls the api made so far, from its own /metrics."""
    pattern = r'artifacts_api_s3_call_seconds_count\{operation="ListObjectsV2",outcome="ok"\} (\S+)'
    return sum(float(value) for value in re.findall(pattern, metrics))


async def test_a_listing_repeated_under_many_aliases_is_refused_before_anything_is_listed(
    s3_server: S3Server,
    s3_settings: S3Settings,
    redis_settings: RedisSettings,
    store: LocalJobStore,
) -> None:
    add_job(store, JOB)
    prefix = job_prefix("team-a", JOB)
    files = {f"f{i:04d}.txt": b"x" for i in range(300)}
    s3_server.seed(
        s3_settings.phfs_bucket, {f"{prefix}{name}": body for name, body in files.items()}
    )
    settings = api_settings(
        s3_settings, redis_settings.redis_url, store.root, api_max_listed_objects=1000
    )
    async with serve(settings) as api:
        async with open_s3(s3_settings) as client:
            await write_manifest(
                client,
                settings.phfs_bucket,
                prefix,
                Manifest(
                    job=JOB,
                    group="team-a",
                    collected_at=datetime.now(UTC),
                    file_count=300,
                    total_size=300,
                    limits=ManifestLimits(size_mb=100, files=1000),
                    files=[
                        ManifestFile(name=n, size=1, sha256=hashlib.sha256(b"x").hexdigest())
                        for n in files
                    ],
                ),
            )
        aliases = " ".join(
            f"a{i}: phJob(where: {{id: $id}}) {{ artifact {{ items {{ name size }} }} }}"
            for i in range(100)
        )
        bomb = f"query ($id: ID!) {{ {aliases} }}"
        before = _listings(await (await api.get("/metrics")).text())
        order: list[str] = []

        async def refused() -> Any:
            result = await api.graphql(bomb, {"id": JOB})
            order.append("bomb")
            return result

        async def viewer() -> Any:
            result = await api.graphql("{ viewer { name } }")
            order.append("viewer")
            return result

        bombed, looked = await asyncio.gather(refused(), viewer())
        after = _listings(await (await api.get("/metrics")).text())
        fine = await api.graphql(
            "query ($id: ID!) { phJob(where: {id: $id}) { artifact { items { name } } } }",
            {"id": JOB},
        )

    assert bombed.status == 400 and bombed.codes == ["BAD_USER_INPUT"]
    (error,) = bombed.errors
    assert error["extensions"]["limit"] == "API_MAX_LISTED_OBJECTS"
    assert error["extensions"]["allowed"] == 1000 and error["extensions"]["requested"] > 1000
    assert "at most 1,000" in error["message"] and "entries(path, first, after)" in error["message"]
    assert bombed.data is None
    # Only the folders were probed (one MaxKeys=1 listing, shared by every alias).
    assert after - before <= 2
    assert looked.data == {"viewer": {"name": "alice"}}
    assert order[0] == "viewer"
    assert len(fine.data["phJob"]["artifact"]["items"]) == 300


async def test_a_job_of_as_many_files_as_a_request_may_sign_lists_with_every_link(
    s3_settings: S3Settings, redis_settings: RedisSettings, store: LocalJobStore, s3: S3Client
) -> None:
    """The manifest and expiredAt are listed (and charged as objects) but never signed: a
    job of 1,000 files, the collector's default limit, lists with links under the default
    1,000 links."""
    settings = api_settings(
        s3_settings, redis_settings.redis_url, store.root, api_max_signed_links=len(FILES)
    )
    await collected(s3, settings.phfs_bucket, store)
    await put_files(s3, settings.phfs_bucket, "team-a", "job-202101010000-nomani", FILES)
    add_job(store, "job-202101010000-nomani")
    async with serve(settings) as api:
        query = """query ($id: ID!) { phJob(where: {id: $id}) {
                     artifact { items { name downloadUrl } } } }"""
        with_manifest = await api.graphql(query, {"id": JOB})
        without = await api.graphql(query, {"id": "job-202101010000-nomani"})
        one_more = await api.graphql(
            """query ($id: ID!) { phJob(where: {id: $id}) { artifact {
                 items { downloadUrl } item(name: "a.txt") { downloadUrl } } } }""",
            {"id": JOB},
        )

    for result in (with_manifest, without):
        assert result.errors == [], result.body
        items = result.data["phJob"]["artifact"]["items"]
        assert sorted(item["name"] for item in items) == sorted(FILES)
        assert all(item["downloadUrl"].split("?")[0].endswith(f"/{item['name']}") for item in items)
    assert one_more.errors[0]["extensions"]["limit"] == "API_MAX_SIGNED_LINKS"


async def test_more_links_than_a_request_may_sign_are_refused_with_the_figure(
    s3_settings: S3Settings, redis_settings: RedisSettings, store: LocalJobStore, s3: S3Client
) -> None:
    settings = api_settings(
        s3_settings, redis_settings.redis_url, store.root, api_max_signed_links=3
    )
    await collected(s3, settings.phfs_bucket, store)
    async with serve(settings) as api:
        too_many = await api.graphql(
            "query ($id: ID!) { phJob(where: {id: $id}) { artifact { items { downloadUrl } } } }",
            {"id": JOB},
        )
        a_page = await api.graphql(
            """query ($id: ID!) { phJob(where: {id: $id}) { artifact {
                 entries(first: 3) { nodes { ... on PhJobArtifactItem { name downloadUrl } } }
               } } }""",
            {"id": JOB},
        )

    assert too_many.status == 400 and too_many.codes == ["BAD_USER_INPUT"]
    assert too_many.errors[0]["extensions"]["limit"] == "API_MAX_SIGNED_LINKS"
    assert (
        "sign download links 5; a request may sign download links at most 3"
        in (too_many.errors[0]["message"])
    )
    # A page of entries signs only its own files (the metadata folder took a place of three).
    nodes = a_page.data["phJob"]["artifact"]["entries"]["nodes"]
    assert a_page.errors == [] and [node["name"] for node in nodes] == ["a.txt", "b.txt"]
