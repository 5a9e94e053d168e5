"""Listing and downloading artifacts with the library: bytes, checks, atomicity, safety."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
import threading
from pathlib import Path

import pytest
from support.api import add_job
from support.client import GROUP, HELLO, JOB, JOURNEY, Bucket, ThreadedApi

from artifacts_client import (
    ArtifactExistsError,
    Client,
    IntegrityError,
    NotFound,
    ProgressBar,
    UnsafeNameError,
)
from artifacts_client.downloads import restored_mode, target_path
from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.layout import job_prefix

SHA_HELLO = hashlib.sha256(HELLO).hexdigest()


@pytest.fixture
def journey(api: ThreadedApi, store: LocalJobStore, bucket: Bucket) -> Client:
    """The acceptance story's finished job, and a client of the api that lists it."""
    add_job(store, JOB)
    bucket.put_artifacts(JOB, JOURNEY)
    return Client(api.url)


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    """An empty folder to download into (the job store lives beside it)."""
    folder = tmp_path / "downloads"
    folder.mkdir()
    return folder


def leftovers(folder: Path) -> list[str]:
    """Every file under ``folder``, temporary ones included, relative and sorted."""
    return sorted(
        path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()
    )


def test_artifacts_lists_the_journeys_files_with_size_time_and_sha256(journey: Client) -> None:
    artifacts = journey.artifacts(JOB)

    assert [(a.name, a.size, a.sha256) for a in artifacts] == [
        ("sub/test.txt", 6, SHA_HELLO),
        ("test.txt", 6, SHA_HELLO),
    ]
    assert all(a.last_modified is not None and a.download_url.startswith("http") for a in artifacts)
    assert "download_url" not in repr(artifacts[0])  # a short-lived credential stays out of logs


def test_download_artifact_writes_the_files_bytes_under_its_relative_name(
    journey: Client, dest: Path
) -> None:
    download = journey.download_artifact(JOB, "sub/test.txt", dest)

    assert (dest / "sub" / "test.txt").read_bytes() == HELLO
    assert download.path == str(dest / "sub" / "test.txt")
    assert (download.size, download.sha256, download.verified) == (6, SHA_HELLO, "sha256")
    assert leftovers(dest) == ["sub/test.txt"]


def test_download_artifact_to_a_file_path_writes_that_file(journey: Client, dest: Path) -> None:
    journey.download_artifact(JOB, "test.txt", dest / "greeting.txt")

    assert leftovers(dest) == ["greeting.txt"]
    assert (dest / "greeting.txt").read_bytes() == HELLO


def test_an_existing_file_is_kept_unless_overwrite_is_asked(journey: Client, dest: Path) -> None:
    (dest / "test.txt").write_bytes(b"mine")

    with pytest.raises(ArtifactExistsError) as refused:
        journey.download_artifact(JOB, "test.txt", dest)
    kept = (dest / "test.txt").read_bytes()
    journey.download_artifact(JOB, "test.txt", dest, overwrite=True)

    assert refused.value.code == "FILE_EXISTS" and isinstance(refused.value, FileExistsError)
    assert kept == b"mine"
    assert (dest / "test.txt").read_bytes() == HELLO
    assert leftovers(dest) == ["test.txt"]


def test_an_object_tampered_after_listing_fails_the_sha256_check_and_leaves_nothing(
    journey: Client, bucket: Bucket, dest: Path
) -> None:
    listed = {artifact.name: artifact for artifact in journey.artifacts(JOB)}
    bucket.put(f"{job_prefix(GROUP, JOB)}test.txt", b"HELLO\n")  # same size, other bytes

    with pytest.raises(IntegrityError) as raised:
        journey.download_artifact(JOB, listed["test.txt"], dest)

    assert raised.value.code == "INTEGRITY_ERROR"
    assert raised.value.expected == SHA_HELLO
    assert raised.value.actual == hashlib.sha256(b"HELLO\n").hexdigest()
    assert "sha256 mismatch" in raised.value.message
    assert leftovers(dest) == []


def test_without_a_manifest_a_changed_size_is_still_caught(
    api: ThreadedApi, store: LocalJobStore, bucket: Bucket, dest: Path
) -> None:
    add_job(store, JOB)
    bucket.put_artifacts(JOB, JOURNEY, manifest=False)
    client = Client(api.url)
    listed = client.artifacts(JOB)
    bucket.put(f"{job_prefix(GROUP, JOB)}sub/test.txt", b"hell")  # truncated

    with pytest.raises(IntegrityError, match="received 4 bytes but the listing says 6"):
        client.download_artifact(JOB, listed[0], dest)

    assert listed[0].name == "sub/test.txt" and listed[0].sha256 is None
    assert leftovers(dest) == []


class ThreadRecordingBar(ProgressBar):
    """A progress bar that also notes which threads reported bytes."""

    def __init__(self, stream: io.StringIO) -> None:
        super().__init__(stream)
        self.threads: set[str] = set()

    def advance(self, size: int) -> None:
        self.threads.add(threading.current_thread().name)
        super().advance(size)


def test_download_artifacts_fetches_every_file_in_parallel_and_shows_progress(
    api: ThreadedApi, store: LocalJobStore, bucket: Bucket, dest: Path
) -> None:
    files = {**JOURNEY, **{f"data/part-{n:02d}.bin": os.urandom(1000 + n) for n in range(12)}}
    add_job(store, JOB)
    bucket.put_artifacts(JOB, files)
    stream = io.StringIO()
    bar = ThreadRecordingBar(stream)

    downloads = Client(api.url).download_artifacts(JOB, dest / "out", workers=4, progress=bar)

    assert sorted(d.name for d in downloads) == sorted(files)
    assert [d.name for d in downloads] == sorted(files)  # in listing order, whatever finished first
    assert {name: (dest / "out" / name).read_bytes() for name in files} == files
    assert leftovers(dest / "out") == sorted(files)
    total = sum(len(body) for body in files.values())
    last = stream.getvalue().split("\r")[-1]
    assert last.startswith("downloading 14/14 files [########################]")
    assert last.rstrip().endswith(f"{total / 1024:.1f} KiB / {total / 1024:.1f} KiB")
    assert stream.getvalue().endswith("\n")
    assert len(bar.threads) > 1 and threading.current_thread().name not in bar.threads


def test_download_artifacts_of_some_names_fetches_only_those(journey: Client, dest: Path) -> None:
    downloads = journey.download_artifacts(JOB, dest, names=["test.txt"], progress=False)

    assert [d.name for d in downloads] == ["test.txt"]
    assert leftovers(dest) == ["test.txt"]


def test_download_artifacts_checks_names_and_existing_files_before_fetching_any(
    journey: Client, dest: Path
) -> None:
    (dest / "test.txt").write_bytes(b"mine")

    with pytest.raises(NotFound, match=r"no artifact 'nope\.txt'") as unknown:
        journey.download_artifacts(JOB, dest, names=["sub/test.txt", "nope.txt"])
    with pytest.raises(ArtifactExistsError):
        journey.download_artifacts(JOB, dest, progress=False)

    assert unknown.value.code == "NOT_FOUND"
    assert leftovers(dest) == ["test.txt"]  # sub/test.txt was not fetched either time
    assert (dest / "test.txt").read_bytes() == b"mine"


@pytest.mark.parametrize(
    "name",
    [
        "../escape.txt",
        "sub/../../escape.txt",
        "/etc/passwd",
        "C:\\evil.txt",
        "a\\..\\b",
        "",
        "a//b",
        "./a",
    ],
)
def test_names_that_would_leave_the_destination_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(UnsafeNameError) as refused:
        target_path(tmp_path, name)

    assert refused.value.code == "UNSAFE_NAME"


def test_a_link_inside_the_destination_cannot_carry_a_file_out(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "sub").symlink_to(outside)

    with pytest.raises(UnsafeNameError, match="leads outside"):
        target_path(dest, "sub/test.txt")

    assert target_path(dest, "deep/er/a.txt") == dest / "deep" / "er" / "a.txt"


def test_a_recorded_mode_is_restored_after_the_checks_and_none_keeps_the_umasks(
    api: ThreadedApi, store: LocalJobStore, bucket: Bucket, dest: Path
) -> None:
    add_job(store, JOB)
    files = {"run.sh": b"#!/bin/sh\n", "secret": b"s", "plain.txt": b"p", "suid": b"#!/bin/sh\n"}
    modes = {"run.sh": "755", "secret": "600", "suid": "4777"}
    bucket.put_artifacts(JOB, files, modes=modes)
    umask = os.umask(0o022)
    try:
        downloads = Client(api.url).download_artifacts(JOB, dest)
    finally:
        os.umask(umask)

    got = {name: stat.S_IMODE((dest / name).stat().st_mode) for name in files}
    assert got == {"run.sh": 0o755, "secret": 0o600, "plain.txt": 0o644, "suid": 0o755}
    assert {download.verified for download in downloads} == {"sha256"}
    assert leftovers(dest) == sorted(files)


def test_a_mode_is_not_restored_onto_a_file_that_failed_its_check(
    api: ThreadedApi, store: LocalJobStore, bucket: Bucket, dest: Path
) -> None:
    add_job(store, JOB)
    prefix = bucket.put_artifacts(JOB, {"run.sh": b"#!/bin/sh\n"}, modes={"run.sh": "755"})
    bucket.put(f"{prefix}run.sh", b"#!/bin/sh\nrm -rf ~\n")  # replaced after collection

    with pytest.raises(IntegrityError):
        Client(api.url).download_artifact(JOB, "run.sh", dest)

    assert leftovers(dest) == []


def test_restored_modes_follow_pythons_tarfile_data_filter_for_every_mode() -> None:
    for mode in range(0o10000):
        member = tarfile.TarInfo("run.sh")
        member.mode = mode
        expected = tarfile.data_filter(member, "/downloads").mode

        assert restored_mode(f"{mode:o}") == expected, oct(mode)
        assert restored_mode(f"{mode:04o}") == expected, oct(mode)


@pytest.mark.parametrize("mode", [None, "", "8", "0o755", "755\n", "12345", "-1", "rwxr-xr-x"])
def test_a_mode_that_is_not_octal_digits_is_not_restored(mode: str | None) -> None:
    assert restored_mode(mode) is None
