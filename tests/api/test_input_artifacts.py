"""``createPhJob(data: {inputArtifacts})``: each source checked as ``phJob`` checks access,
resolved against its manifest on the real S3 server, recorded in the PhJob, and held in the
real Redis until the job starts."""

from __future__ import annotations

import time
from typing import Any

import pytest
from redis.asyncio import Redis
from support.api import Api, add_job, serve, token
from support.seeds import deliver_seed

from artifacts_api.settings import ApiSettings
from artifacts_shared.input_holds import INPUT_HOLDS_KEY
from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.phjob import ArtifactInput, PhJobPhase, new_job_id
from artifacts_shared.s3 import S3Client

CREATE = """
mutation ($data: PhJobCreateInput!) {
  createPhJob(data: $data) {
    id inputArtifacts { jobId path groupName fileCount totalSize }
  }
}
"""
READ = "query ($id: ID!) { phJob(where: {id: $id}) { inputArtifacts { jobId path fileCount } } }"
RERUN = "mutation ($id: ID!) { rerunPhJob(where: {id: $id}) { id inputArtifacts { jobId path } } }"


def _data(*inputs: dict[str, Any]) -> dict[str, Any]:
    return {
        "data": {
            "displayName": "reads the seed",
            "groupName": "team-a",
            "command": "cat inputs/*/sub/test.txt",
            "inputArtifacts": list(inputs),
        }
    }


@pytest.fixture
async def seed(s3: S3Client, settings: ApiSettings, store: LocalJobStore) -> str:
    """The seed job of team-a, finished, its two artifacts collected."""
    job_id = new_job_id()
    add_job(store, job_id)
    await deliver_seed(s3, settings.phfs_bucket, job_id)
    return job_id


async def _refused(api: Api, *inputs: dict[str, Any]) -> tuple[str, str]:
    result = await api.graphql(CREATE, _data(*inputs))
    assert result.data is None, result.data
    (error,) = result.errors
    return error["extensions"]["code"], error["message"]


async def test_a_job_with_the_seeds_sub_folder_records_what_it_resolved_and_holds_it(
    api: Api, seed: str, store: LocalJobStore, redis: Redis
) -> None:
    result = await api.graphql(CREATE, _data({"jobId": seed, "path": "sub"}))
    assert result.errors == []
    created = result.data["createPhJob"]
    expected = {"jobId": seed, "path": "sub", "groupName": "team-a", "fileCount": 1}
    assert created["inputArtifacts"] == [expected | {"totalSize": 6}]
    read = await api.graphql(READ, {"id": created["id"]})
    assert read.data["phJob"]["inputArtifacts"] == [{"jobId": seed, "path": "sub", "fileCount": 1}]
    # Recorded in the PhJob itself, for the controller: what the api found, from our side.
    assert store.get(created["id"]).spec.input_artifacts == (
        ArtifactInput(job_id=seed, path="sub", group_name="team-a", file_count=1, total_size=6),
    )
    key = f"{INPUT_HOLDS_KEY}groups/team-a/jobArtifacts/{seed}/"
    ((member, since),) = await redis.zrange(key, 0, -1, withscores=True)
    assert member.decode() == created["id"]
    assert abs(since - time.time()) < 60
    assert 0 < await redis.ttl(key) <= api.settings.artifact_input_hold_seconds


@pytest.mark.parametrize(
    ("path", "files", "size"),
    [(None, 2, 12), ("sub/test.txt", 1, 6), ("sub/", 1, 6), ("test.txt", 1, 6)],
)
async def test_a_path_selects_all_a_file_or_a_folder(
    api: Api, seed: str, path: str | None, files: int, size: int
) -> None:
    result = await api.graphql(CREATE, _data({"jobId": seed, "path": path}))
    assert result.errors == []
    (resolved,) = result.data["createPhJob"]["inputArtifacts"]
    assert (resolved["fileCount"], resolved["totalSize"]) == (files, size)


async def test_another_groups_job_is_forbidden_as_a_source_and_nothing_is_created(
    api: Api, s3: S3Client, store: LocalJobStore, redis: Redis
) -> None:
    theirs = new_job_id()
    add_job(store, theirs, group="team-b", user="bob")
    await deliver_seed(s3, api.settings.phfs_bucket, theirs, group="team-b")
    code, message = await _refused(api, {"jobId": theirs})
    assert code == "FORBIDDEN"
    assert message.startswith("inputArtifacts[0].jobId: ")
    assert [job.id for job in store.list()] == [theirs]  # no job was created
    assert await redis.keys(f"{INPUT_HOLDS_KEY}*") == []  # nor held anything


async def test_an_unknown_or_malformed_source_is_not_found_or_bad_input(api: Api) -> None:
    missing = new_job_id()
    code, message = await _refused(api, {"jobId": missing})
    assert (code, message.startswith("inputArtifacts[0].jobId: there is no job")) == (
        "NOT_FOUND",
        True,
    )
    code, message = await _refused(api, {"jobId": "../../groups"})
    assert code == "BAD_USER_INPUT"
    assert "is not a job id" in message


@pytest.mark.parametrize(
    "path",
    [
        "../x",
        "sub/../test.txt",
        "/etc/passwd",
        "/",
        "sub//test.txt",
        ".",
        "sub\ntest.txt",
        "sub\x00",
        ".primehub/metadata/manifest.json",
        ".metadata/expiredAt",
        "x" * 1025,
    ],
)
async def test_a_hostile_path_is_refused_naming_the_input(
    api: Api, seed: str, store: LocalJobStore, path: str
) -> None:
    code, message = await _refused(
        api, {"jobId": seed, "path": "test.txt"}, {"jobId": seed, "path": path}
    )
    assert code == "BAD_USER_INPUT"
    assert message.startswith("inputArtifacts[1].path"), message
    assert [job.id for job in store.list()] == [seed]


async def test_a_path_matching_nothing_is_refused(api: Api, seed: str) -> None:
    code, message = await _refused(api, {"jobId": seed, "path": "nothing/here"})
    assert code == "BAD_USER_INPUT"
    assert message == (
        f"inputArtifacts[0]: job {seed} has no file or folder 'nothing/here' in its artifacts"
    )


async def test_inputs_of_one_job_that_would_land_in_the_same_place_are_refused(
    api: Api, seed: str
) -> None:
    for first, second in [(None, "sub"), ("sub", "sub/test.txt"), ("sub", "sub/")]:
        code, message = await _refused(
            api, {"jobId": seed, "path": first}, {"jobId": seed, "path": second}
        )
        assert code == "BAD_USER_INPUT"
        assert message.startswith("inputArtifacts[1] and inputArtifacts[0] both place"), message
    # Apart, they are fine.
    result = await api.graphql(
        CREATE, _data({"jobId": seed, "path": "test.txt"}, {"jobId": seed, "path": "sub"})
    )
    assert result.errors == []


async def test_more_inputs_than_the_cap_are_refused(
    settings: ApiSettings, seed: str, store: LocalJobStore
) -> None:
    capped = settings.model_copy(update={"api_max_input_artifacts": 1})
    async with serve(capped) as api:
        code, message = await _refused(
            api, {"jobId": seed, "path": "test.txt"}, {"jobId": seed, "path": "sub"}
        )
    assert (code, message) == ("BAD_USER_INPUT", "inputArtifacts: at most 1 inputs, got 2")


async def test_inputs_over_the_jobs_artifact_size_limit_are_refused(
    settings: ApiSettings, s3: S3Client, store: LocalJobStore
) -> None:
    big = new_job_id()
    add_job(store, big)
    await deliver_seed(s3, settings.phfs_bucket, big, files={"a.bin": b"x" * 700_000})
    limited = settings.model_copy(update={"artifact_limit_size_mb": 1})
    async with serve(limited) as api:
        assert (await api.graphql(CREATE, _data({"jobId": big}))).errors == []  # 0.7 MB fits
        other = new_job_id()
        add_job(store, other)
        await deliver_seed(s3, settings.phfs_bucket, other, files={"b.bin": b"y" * 400_000})
        code, message = await _refused(api, {"jobId": big}, {"jobId": other})
    assert code == "BAD_USER_INPUT"
    assert message == (
        "inputArtifacts hold 1100000 bytes together, over this job's artifact size limit of 1 MB"
    )


async def test_sources_not_collected_or_expired_are_refused(
    api: Api, s3: S3Client, store: LocalJobStore
) -> None:
    running = new_job_id()
    add_job(store, running, phase=PhJobPhase.RUNNING)
    code, message = await _refused(api, {"jobId": running})
    assert (code, message) == (
        "BAD_USER_INPUT",
        f"inputArtifacts[0]: job {running} has not finished: its artifacts are not collected yet",
    )
    empty = new_job_id()
    add_job(store, empty)  # finished, nothing delivered (or deleted since)
    code, message = await _refused(api, {"jobId": empty})
    assert message.endswith("has no artifacts to read (it left none, or they were deleted)")
    expired = new_job_id()
    add_job(store, expired)
    await deliver_seed(s3, api.settings.phfs_bucket, expired, expired_at=int(time.time()) - 60)
    code, message = await _refused(api, {"jobId": expired})
    assert code == "BAD_USER_INPUT"
    assert "has artifacts that expired at" in message


async def test_a_rerun_resolves_the_same_inputs_again(api: Api, seed: str) -> None:
    created = await api.graphql(CREATE, _data({"jobId": seed, "path": "sub"}))
    rerun = await api.graphql(RERUN, {"id": created.data["createPhJob"]["id"]})
    assert rerun.errors == []
    assert rerun.data["rerunPhJob"]["inputArtifacts"] == [{"jobId": seed, "path": "sub"}]


async def test_a_member_of_another_group_cannot_reach_a_source_through_its_own_job(
    settings: ApiSettings, seed: str
) -> None:
    """bob of team-b creates a job in his group naming team-a's seed: refused."""
    async with serve(settings) as api:
        api.default_token = token("bob", groups=["team-b"])
        result = await api.graphql(
            CREATE, {"data": {**_data({"jobId": seed})["data"], "groupName": "team-b"}}
        )
    assert [error["extensions"]["code"] for error in result.errors] == ["FORBIDDEN"]
