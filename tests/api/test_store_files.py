"""PrimeHub's store API for job artifacts: the ``files`` listing and ``GET /api/files/...``.

What PrimeHub's SDK calls to download a job's artifacts; served for job-artifact paths of
the caller's groups only. The hostile cases: another group's job, a path that climbs out
of the job's folder, the metadata folders, a general store path.
"""

from __future__ import annotations

from typing import Any

import pytest
from support.api import Api, add_job, put_files, token

from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.s3 import S3Client

JOB = "job-202009250153-files0"
OTHER = "job-202009250153-files1"
FILES = """query ($where: StoreFileWhereInput!, $options: StoreFileListOptionInput) {
  files(where: $where, options: $options) { phfsPrefix prefix items { name size lastModified } }
}"""


@pytest.fixture
async def folder(api: Api, s3: S3Client, store: LocalJobStore) -> str:
    add_job(store, JOB, group="team-a")
    add_job(store, OTHER, group="team-b")
    bucket = api.settings.phfs_bucket
    await put_files(s3, bucket, "team-b", OTHER, {"secret.txt": b"theirs\n"})
    return await put_files(
        s3,
        bucket,
        "team-a",
        JOB,
        {
            "test.txt": b"hello\n",
            "sub/test.txt": b"hello\n",
            "sub/deeper/x.bin": b"\0" * 10,
            ".primehub/metadata/manifest.json": b"{}",
            ".metadata/expiredAt": b"1",
        },
    )


async def _files(api: Api, path: str, **options: Any) -> dict[str, Any]:
    result = await api.graphql(
        FILES, {"where": {"groupName": "team-a", "phfsPrefix": path}, "options": options}
    )
    assert result.errors == [], result.body
    listing: dict[str, Any] = result.data["files"]
    return listing


async def test_files_lists_one_level_or_everything_as_primehub_does(api: Api, folder: str) -> None:
    top = await _files(api, f"/jobArtifacts/{JOB}")
    everything = await _files(api, f"/jobArtifacts/{JOB}/", recursive=True)
    one_file = await _files(api, f"/jobArtifacts/{JOB}/test.txt", recursive=True, limit=1)
    limited = await _files(api, f"/jobArtifacts/{JOB}/", recursive=True, limit=2)

    assert top["phfsPrefix"] == f"/jobArtifacts/{JOB}/" and top["prefix"] == folder
    assert [(i["name"], i["size"]) for i in top["items"]] == [("sub/", None), ("test.txt", 6)]
    assert [i["name"] for i in everything["items"]] == [
        "sub/deeper/x.bin",
        "sub/test.txt",
        "test.txt",
    ]  # the metadata folders are never listed
    assert [i["size"] for i in everything["items"]] == [10, 6, 6]
    assert everything["items"][0]["lastModified"].endswith("Z")
    # The SDK's test for "is this a file": its own path lists it with an empty name.
    assert one_file["items"] == [
        {"name": "", "size": 6, "lastModified": one_file["items"][0]["lastModified"]}
    ]
    assert len(limited["items"]) == 2


@pytest.mark.parametrize(
    ("group", "path", "code", "says"),
    [
        ("team-b", f"/jobArtifacts/{OTHER}/", "FORBIDDEN", "team-b"),
        ("team-a", f"/jobArtifacts/{OTHER}/", "FORBIDDEN", "team-b"),
        ("team-a", f"/jobArtifacts/{JOB}/../{OTHER}/", "BAD_USER_INPUT", "'..' step"),
        ("team-a", "/datasets/", "BAD_USER_INPUT", "only job artifacts"),
        ("team-a", "/", "BAD_USER_INPUT", "only job artifacts"),
        ("team-a", "/jobArtifacts/not-a-job/", "BAD_USER_INPUT", "is not a job id"),
    ],
    ids=["other-group", "other-groups-job", "dot-dot", "dataset", "root", "bad-id"],
)
async def test_files_refuses_what_is_not_the_callers_job_artifacts(
    api: Api, folder: str, group: str, path: str, code: str, says: str
) -> None:
    result = await api.graphql(
        FILES,
        {"where": {"groupName": group, "phfsPrefix": path}, "options": {"recursive": True}},
    )

    assert result.codes == [code], result.body
    assert says in result.errors[0]["message"]


async def test_a_job_under_another_groups_folder_name_is_not_found(
    api: Api, folder: str, store: LocalJobStore
) -> None:
    caller = token("alice", groups=["team-a", "team-c"])

    result = await api.graphql(
        FILES,
        {"where": {"groupName": "team-c", "phfsPrefix": f"/jobArtifacts/{JOB}/"}},
        bearer=caller,
    )

    assert result.codes == ["NOT_FOUND"]


async def test_api_files_redirects_to_a_presigned_link_of_that_file(api: Api, folder: str) -> None:
    async with api.session.get(
        f"{api.url}/api/files/groups/team-a/jobArtifacts/{JOB}/sub/test.txt",
        headers=api.headers(api.default_token),
        allow_redirects=False,
    ) as response:
        location = response.headers.get("Location", "")

    assert response.status == 302 and response.headers["Cache-Control"] == "no-store"
    assert f"/{api.settings.phfs_bucket}/{folder}sub/test.txt?" in location
    assert "X-Amz-Signature=" in location
    async with api.session.get(location) as fetched:
        assert fetched.status == 200 and await fetched.read() == b"hello\n"


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        (f"groups/team-b/jobArtifacts/{OTHER}/secret.txt", 403, "FORBIDDEN"),
        (f"groups/team-b/jobArtifacts/{JOB}/test.txt", 404, "NOT_FOUND"),
        (f"groups/team-a/jobArtifacts/{JOB}/missing.txt", 404, "NOT_FOUND"),
        (f"groups/team-a/jobArtifacts/{JOB}/.primehub/metadata/manifest.json", 400, None),
        (f"groups/team-a/jobArtifacts/{JOB}/sub//test.txt", 400, None),
        ("groups/team-a/datasets/x.csv", 404, "NOT_FOUND"),
    ],
    ids=["other-group", "wrong-folder", "missing", "metadata", "empty-step", "dataset"],
)
async def test_api_files_refuses_before_signing_anything(
    api: Api, folder: str, path: str, status: int, code: str | None
) -> None:
    async with api.session.get(
        f"{api.url}/api/files/{path}",
        headers=api.headers(api.default_token),
        allow_redirects=False,
    ) as response:
        body = await response.json()

    assert response.status == status and "Location" not in response.headers
    assert body["errors"][0]["extensions"]["code"] == (code or "BAD_USER_INPUT")


async def test_api_files_needs_the_bearer_token(api: Api, folder: str) -> None:
    async with api.session.get(
        f"{api.url}/api/files/groups/team-a/jobArtifacts/{JOB}/test.txt", allow_redirects=False
    ) as response:
        body = await response.json()

    assert response.status == 401 and body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
