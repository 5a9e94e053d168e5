from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from artifacts_shared.manifest import (
    Manifest,
    ManifestError,
    ManifestFile,
    ManifestLimits,
    SkipReason,
)

SHA = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"


def _manifest(**changes: object) -> Manifest:
    base = Manifest(
        job="job-1",
        group="ML_Team",
        collected_at=datetime(2026, 11, 23, 1, 2, 3, tzinfo=UTC),
        expired_at=1_800_000_000,
        exit_code=0,
        file_count=2,
        total_size=12,
        limits=ManifestLimits(size_mb=100, files=1000),
        files=[
            ManifestFile(name="test.txt", size=6, sha256=SHA, mode="644"),
            ManifestFile(name="sub/test.txt", size=6, sha256=SHA, mode="600"),
        ],
    )
    return base.model_copy(update=changes)


def test_manifest_round_trips_through_camel_case_json() -> None:
    manifest = _manifest()
    document = json.loads(manifest.to_json())
    assert document["version"] == 1
    assert document["collectedAt"] == "2026-11-23T01:02:03Z"
    assert document["expiredAt"] == 1_800_000_000
    assert document["limits"] == {"sizeMb": 100, "files": 1000}
    assert document["files"][1] == {"name": "sub/test.txt", "size": 6, "sha256": SHA, "mode": "600"}
    assert Manifest.from_json(manifest.to_json()) == manifest
    assert manifest.sha256_by_name() == {"test.txt": SHA, "sub/test.txt": SHA}


def test_skipped_collection_records_the_figures() -> None:
    reason = SkipReason(
        limit="files",
        found=1500,
        allowed=1000,
        message="artifacts: skipped, 1500 files exceed the limit of 1000",
    )
    manifest = _manifest(skipped=True, skip_reason=reason, files=[], file_count=0, total_size=0)
    again = Manifest.from_json(manifest.to_json())
    assert again.skipped and again.skip_reason == reason and again.files == []


def test_a_manifest_written_by_a_shell_script_parses() -> None:
    # What run-job.sh writes: no fractional seconds, expiredAt null for retention 0.
    raw = (
        '{"version":1,"job":"j","group":"g","collectedAt":"2026-11-23T01:02:03Z",'
        '"expiredAt":null,"exitCode":3,"fileCount":0,"totalSize":0,'
        '"limits":{"sizeMb":100,"files":1000},"skipped":false,"files":[],"future":"ignored"}'
    )
    manifest = Manifest.from_json(raw)
    assert manifest.expired_at is None and manifest.exit_code == 3


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        (b"not json", "document"),
        (b'{"version":2}', "version"),
        (_manifest().to_json().replace(SHA.encode(), b"xyz"), "files.0.sha256"),
    ],
)
def test_garbage_and_unknown_versions_are_refused_with_the_place(raw: bytes, where: str) -> None:
    with pytest.raises(ManifestError, match=rf"manifest.json: {where}"):
        Manifest.from_json(raw)
