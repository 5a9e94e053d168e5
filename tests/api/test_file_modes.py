"""File modes: ``PhJobArtifactItem.mode`` and the zip's entries, from the manifest only.

The manifest is data (in ``phfs`` mode the job writes it), so every test here also plants
what a hostile job would: a setuid mode, a mode that is not octal, a forged manifest.
"""

from __future__ import annotations

import hashlib
import io
import json
import stat
import zipfile

import pytest
from support.api import Api, add_job, put_files

from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.layout import job_prefix, manifest_key
from artifacts_shared.s3 import S3Client

JOB = "job-202102030405-modes0"
BODY = b"#!/bin/sh\necho hi\n"
SHA = hashlib.sha256(BODY).hexdigest()
QUERY = """query ($id: ID!) { phJob(where: {id: $id}) { artifact {
  items { name mode sha256 }
  item(name: "run.sh") { mode }
  entries { nodes { ... on PhJobArtifactItem { name mode } } }
} } }"""


def _manifest(files: list[dict[str, object]]) -> bytes:
    return json.dumps(
        {
            "version": 1,
            "job": JOB,
            "group": "team-a",
            "collectedAt": "2021-02-03T04:05:00Z",
            "expiredAt": None,
            "fileCount": len(files),
            "totalSize": sum(int(str(entry["size"])) for entry in files),
            "limits": {"sizeMb": 100, "files": 1000},
            "files": files,
        }
    ).encode()


async def _folder(api: Api, s3: S3Client, store: LocalJobStore, manifest: bytes | None) -> None:
    add_job(store, JOB)
    names = ("run.sh", "suid.sh", "plain.txt")
    await put_files(s3, api.settings.phfs_bucket, "team-a", JOB, dict.fromkeys(names, BODY))
    if manifest is not None:
        key = manifest_key(job_prefix("team-a", JOB))
        await s3.put_object(Bucket=api.settings.phfs_bucket, Key=key, Body=manifest)


def _entry(name: str, mode: str | None = None) -> dict[str, object]:
    entry: dict[str, object] = {"name": name, "size": len(BODY), "sha256": SHA}
    if mode is not None:
        entry["mode"] = mode
    return entry


async def _zip_modes(api: Api) -> dict[str, int]:
    response = await api.get(f"/jobs/{JOB}/artifacts.zip")
    assert response.status == 200
    archive = zipfile.ZipFile(io.BytesIO(await response.read()))
    assert archive.testzip() is None
    return {info.filename: info.external_attr >> 16 for info in archive.infolist()}


async def test_the_mode_comes_from_the_manifest_in_items_item_and_entries(
    api: Api, s3: S3Client, store: LocalJobStore
) -> None:
    manifest = _manifest([_entry("run.sh", "755"), _entry("suid.sh", "600"), _entry("plain.txt")])
    await _folder(api, s3, store, manifest)

    result = await api.graphql(QUERY, {"id": JOB})

    assert not result.errors, result.body
    artifact = result.data["phJob"]["artifact"]
    modes = {"plain.txt": None, "run.sh": "755", "suid.sh": "600"}
    assert {item["name"]: item["mode"] for item in artifact["items"]} == modes
    assert artifact["item"] == {"mode": "755"}
    assert {node["name"]: node["mode"] for node in artifact["entries"]["nodes"]} == modes


async def test_the_zip_sets_each_entrys_mode_from_the_manifest(
    api: Api, s3: S3Client, store: LocalJobStore
) -> None:
    manifest = _manifest([_entry("run.sh", "755"), _entry("suid.sh", "600"), _entry("plain.txt")])
    await _folder(api, s3, store, manifest)

    modes = await _zip_modes(api)

    assert modes == {
        "plain.txt": stat.S_IFREG | 0o644,  # no recorded mode: the default
        "run.sh": stat.S_IFREG | 0o755,
        "suid.sh": stat.S_IFREG | 0o600,
    }
    assert all(mode & 0o777 == mode & 0o7777 for mode in modes.values())


async def test_a_forged_setuid_or_sticky_mode_is_shown_and_zipped_without_those_bits(
    api: Api, s3: S3Client, store: LocalJobStore
) -> None:
    manifest = _manifest([_entry("run.sh", "4755"), _entry("suid.sh", "7777"), _entry("plain.txt")])
    await _folder(api, s3, store, manifest)

    result = await api.graphql(QUERY, {"id": JOB})
    modes = await _zip_modes(api)

    items = result.data["phJob"]["artifact"]["items"]
    assert {item["name"]: item["mode"] for item in items} == {
        "plain.txt": None,
        "run.sh": "755",
        "suid.sh": "777",
    }
    assert modes["run.sh"] == stat.S_IFREG | 0o755
    assert modes["suid.sh"] == stat.S_IFREG | 0o777
    assert not any(mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX) for mode in modes.values())


@pytest.mark.parametrize("bad", ["8", "755\n", 493, "-1", "12345", ""])
async def test_a_mode_that_is_not_octal_digits_makes_the_manifest_ignored_as_garbled(
    api: Api, s3: S3Client, store: LocalJobStore, bad: object
) -> None:
    document = json.loads(_manifest([_entry("run.sh"), _entry("suid.sh"), _entry("plain.txt")]))
    document["files"][0]["mode"] = bad
    await _folder(api, s3, store, json.dumps(document).encode())

    result = await api.graphql(QUERY, {"id": JOB})
    modes = await _zip_modes(api)

    items = result.data["phJob"]["artifact"]["items"]
    assert [(item["mode"], item["sha256"]) for item in items] == [(None, None)] * 3
    assert set(modes.values()) == {stat.S_IFREG | 0o644}


async def test_a_legacy_folder_without_a_manifest_has_no_mode(
    api: Api, s3: S3Client, store: LocalJobStore
) -> None:
    await _folder(api, s3, store, None)

    result = await api.graphql(QUERY, {"id": JOB})

    items = result.data["phJob"]["artifact"]["items"]
    assert {item["mode"] for item in items} == {None}
    assert set((await _zip_modes(api)).values()) == {stat.S_IFREG | 0o644}
