from __future__ import annotations

import pytest

from artifacts_shared.layout import (
    GroupPath,
    JobPrefix,
    UnsafeNameError,
    artifact_key,
    check_job_name,
    expired_at_key,
    group_path,
    is_metadata,
    job_prefix,
    legacy_expired_at_key,
    manifest_key,
    parse_job_prefix,
    relative_name,
)


def test_group_name_maps_like_primehub() -> None:
    assert group_path("ML_Team") == "ml-team"
    assert group_path("phusers") == "phusers"


def test_job_prefix_and_metadata_keys_follow_the_contract() -> None:
    prefix = job_prefix("ML_Team", "job-202009250153-34s0ti")
    assert prefix == "groups/ml-team/jobArtifacts/job-202009250153-34s0ti/"
    assert expired_at_key(prefix) == prefix + ".primehub/metadata/expiredAt"
    assert manifest_key(prefix) == prefix + ".primehub/metadata/manifest.json"
    assert legacy_expired_at_key(prefix) == prefix + ".metadata/expiredAt"


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "..",
        "a/b",
        "../etc",
        "a\\b",
        "tab\there",
        "new\nline",
        "nul\x00",
        "del\x7f",
        " padded",
        "x" * 254,
    ],
)
def test_escaping_group_and_job_names_are_refused(name: str) -> None:
    with pytest.raises(UnsafeNameError):
        group_path(name)
    with pytest.raises(UnsafeNameError):
        check_job_name(name)
    with pytest.raises(UnsafeNameError):
        job_prefix("group", name)


PREFIX = JobPrefix("groups/g/jobArtifacts/j/")


@pytest.mark.parametrize(
    "relative",
    [
        "test.txt",
        "sub/test.txt",
        ".hidden",
        "with space/ünïcode",
        "new\nline",
        "-leading-dash",
        "..dots-in-name",
        "a/.b/c",
    ],
)
def test_artifact_paths_that_stay_inside_are_accepted(relative: str) -> None:
    key = artifact_key(PREFIX, relative)
    assert key == PREFIX + relative
    assert relative_name(PREFIX, key) == relative


@pytest.mark.parametrize(
    "relative",
    [
        "",
        "/abs",
        "../up",
        "a/../../up",
        "a//b",
        "./a",
        "a/.",
        "trail/",
        "nul\x00",
        ".primehub/metadata/expiredAt",
        ".metadata/expiredAt",
        ".primehub",
    ],
)
def test_artifact_paths_that_escape_or_shadow_metadata_are_refused(relative: str) -> None:
    with pytest.raises(UnsafeNameError):
        artifact_key(PREFIX, relative)


def test_metadata_and_foreign_keys_are_not_artifacts() -> None:
    assert is_metadata(".primehub/metadata/manifest.json")
    assert is_metadata(".metadata/monitoring")
    assert not is_metadata("sub/.metadata/x")
    assert relative_name(PREFIX, PREFIX + ".primehub/metadata/expiredAt") is None
    assert relative_name(PREFIX, PREFIX + ".metadata/expiredAt") is None
    assert relative_name(PREFIX, "groups/g/jobArtifacts/other/x") is None
    assert relative_name(PREFIX, PREFIX + "folder/") is None


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("groups/g/jobArtifacts/job-1/", (GroupPath("g"), "job-1")),
        ("groups/g/jobArtifactsOld/job-1/", None),
        ("groups/g/jobArtifacts/job-1/sub/", None),
        ("groups/g/jobArtifacts/../", None),
        ("groups//jobArtifacts/j/", None),
        ("other/g/jobArtifacts/j/", None),
        ("groups/g/jobArtifacts/j", None),
    ],
)
def test_only_real_job_folders_parse_as_job_prefixes(
    prefix: str, expected: tuple[str, str] | None
) -> None:
    assert parse_job_prefix(prefix) == expected
