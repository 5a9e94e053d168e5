"""The staging contract's own rules: the done marker, and our walk of what the job staged.

Everything in the staging folder was written by the job's side; these tests plant what a
hostile job would and check that the walk follows no link, opens nothing but the regular
files it listed, and takes nothing from the folder but files, modes and one signal.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from artifacts_controller.staging import (
    Done,
    StagingError,
    open_staged,
    read_done,
    recorded_mode,
    walk,
)
from artifacts_controller.transfer import MIB, Tuning


def _stage(staging: Path, files: dict[str, bytes]) -> None:
    for name, content in files.items():
        path = staging / "files" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


@pytest.mark.parametrize(
    ("own", "reported", "recorded"),
    [
        (0o755, None, "755"),  # no report: the copy's own bits
        (0o755, 0o750, "750"),  # the report narrows what a+rX widened
        (0o644, 0o600, "600"),
        (0o4755, None, "755"),  # a setuid copy: never recorded
        (0o755, 0o4755, "755"),  # a setuid report: never recorded
        (0o644, 0o7777, "644"),  # a report cannot add a bit the copy lacks
        (0o1777, 0o777, "777"),
    ],
)
def test_the_recorded_mode_is_the_copys_narrowed_by_the_report_without_special_bits(
    own: int, reported: int | None, recorded: str
) -> None:
    assert recorded_mode(own, reported) == recorded


def test_a_hostile_modes_file_never_records_a_setuid_bit_or_a_bit_the_copy_lacks(
    tmp_path: Path,
) -> None:
    _stage(tmp_path, {"suid": b"#!/bin/sh\n", "plain": b"p"})
    (tmp_path / "files" / "suid").chmod(0o4755)
    (tmp_path / "files" / "plain").chmod(0o644)
    (tmp_path / "modes").write_bytes(b"7777 suid\0" + b"4777 plain\0")

    listing = walk(tmp_path)

    assert [(f.name, f.mode) for f in listing.files] == [("plain", "644"), ("suid", "755")]


def test_the_done_marker_carries_only_an_exit_code(tmp_path: Path) -> None:
    assert read_done(tmp_path) is None
    (tmp_path / "done").write_text("3\n")
    assert read_done(tmp_path) == Done(exit_code=3)


@pytest.mark.parametrize(
    "content",
    [b"", b"-1", b"256", b"3.0", b'{"exitCode": 0, "retentionSeconds": 0}', b"1" * 100],
)
def test_a_done_marker_with_anything_else_is_a_signal_without_an_exit_code(
    tmp_path: Path, content: bytes
) -> None:
    (tmp_path / "done").write_bytes(content)
    assert read_done(tmp_path) == Done(exit_code=None)


def test_a_done_marker_that_is_not_a_regular_file_is_refused_without_blocking(
    tmp_path: Path,
) -> None:
    os.mkfifo(tmp_path / "done")  # a reader that opened it blindly would hang here
    with pytest.raises(StagingError, match="not a regular file"):
        read_done(tmp_path)
    (tmp_path / "done").unlink()
    (tmp_path / "done").mkdir()
    with pytest.raises(StagingError, match="not a regular file"):
        read_done(tmp_path)
    (tmp_path / "done").rmdir()
    (tmp_path / "done").symlink_to("/dev/zero")
    with pytest.raises(StagingError):
        read_done(tmp_path)


def test_the_walk_lists_regular_files_in_name_order_with_their_reported_modes(
    tmp_path: Path,
) -> None:
    _stage(tmp_path, {"b.txt": b"bb", "a/c.txt": b"c", ".hidden": b"h", "odd\nname": b"o"})
    # As run-job.sh leaves the copies: a+rX, so the uploader can read them.
    for name in ("b.txt", ".hidden", "odd\nname"):
        (tmp_path / "files" / name).chmod(0o644)
    (tmp_path / "files" / "a/c.txt").chmod(0o755)
    (tmp_path / "modes").write_bytes(b"600 b.txt\0" + b"750 a/c.txt\0" + b"12x bad\0" + b"644 cut")

    listing = walk(tmp_path)

    assert [(f.name, f.size, f.mode) for f in listing.files] == [
        (".hidden", 1, "644"),
        ("b.txt", 2, "600"),
        ("odd\nname", 1, "644"),
        ("a/c.txt", 1, "750"),
    ]
    assert listing.skipped == []


def test_the_walk_follows_no_link_even_one_to_our_own_credentials(tmp_path: Path) -> None:
    _stage(tmp_path, {"kept.txt": b"k"})
    files = tmp_path / "files"
    (files / "environ").symlink_to("/proc/self/environ")
    (files / "proc").symlink_to("/proc/self")
    (files / "kept-link").symlink_to("kept.txt")
    os.mkfifo(files / "pipe")

    listing = walk(tmp_path)

    assert [f.name for f in listing.files] == ["kept.txt"]
    assert sorted(listing.skipped) == [
        "skipped 'environ': a link (run-job.sh stages copies, never links)",
        "skipped 'kept-link': a link (run-job.sh stages copies, never links)",
        "skipped 'pipe': not a regular file",
        "skipped 'proc': a link (run-job.sh stages copies, never links)",
    ]


def test_a_files_folder_that_is_a_link_is_refused(tmp_path: Path) -> None:
    (tmp_path / "files").symlink_to("/proc/self")
    with pytest.raises(StagingError, match="not a folder"):
        walk(tmp_path)


def test_metadata_folders_and_names_that_are_no_keys_are_not_delivered(tmp_path: Path) -> None:
    _stage(
        tmp_path,
        {
            ".primehub/metadata/expiredAt": b"0",
            ".metadata/expiredAt": b"0",
            "sub/.primehub/kept": b"x",
        },
    )
    (tmp_path / "files" / os.fsdecode(b"latin1-\xe9")).write_bytes(b"x")

    listing = walk(tmp_path)

    assert [f.name for f in listing.files] == ["sub/.primehub/kept"]
    assert "skipped .primehub: the name is reserved for the job's metadata" in listing.skipped
    assert "skipped .metadata: the name is reserved for the job's metadata" in listing.skipped
    assert any("not UTF-8" in line for line in listing.skipped)


def test_files_of_another_owner_are_not_delivered_when_an_owner_is_given(tmp_path: Path) -> None:
    _stage(tmp_path, {"mine": b"m", "theirs": b"t"})
    os.chown(tmp_path / "files" / "theirs", 12345, 12345)
    me = os.stat(tmp_path / "files" / "mine").st_uid

    listing = walk(tmp_path, owner=me)

    assert [f.name for f in listing.files] == ["mine"]
    assert listing.skipped == [f"skipped 'theirs': owned by uid 12345, not by the job's {me}"]


def test_a_listed_file_swapped_for_a_link_or_another_owners_file_is_not_read(
    tmp_path: Path,
) -> None:
    _stage(tmp_path, {"sub/a.txt": b"original"})
    [listed] = walk(tmp_path).files
    me = os.stat(tmp_path / "files" / "sub" / "a.txt").st_uid
    with open_staged(tmp_path, listed.name, owner=me) as handle:
        assert handle.read() == b"original"

    os.chown(tmp_path / "files" / "sub" / "a.txt", 12345, 12345)
    with pytest.raises(StagingError, match="changed after it was listed"):
        open_staged(tmp_path, listed.name, owner=me)

    (tmp_path / "files" / "sub" / "a.txt").unlink()
    (tmp_path / "files" / "sub" / "a.txt").symlink_to("/etc/hostname")
    with pytest.raises(StagingError, match=r"a\.txt"):
        open_staged(tmp_path, listed.name)

    (tmp_path / "files" / "sub" / "a.txt").unlink()
    (tmp_path / "files" / "sub").rename(tmp_path / "elsewhere")
    (tmp_path / "files" / "sub").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(StagingError, match=r"sub/a\.txt"):
        open_staged(tmp_path, listed.name)


def test_parts_grow_for_files_beyond_ten_thousand_parts() -> None:
    tuning = Tuning(part_size=8 * MIB)
    assert tuning.part_size_for(200 * MIB) == 8 * MIB
    assert Tuning().part_size_for(200 * MIB) == 16 * MIB
    huge = 200 * 1024 * MIB  # 200 GiB
    size = tuning.part_size_for(huge)
    assert size % MIB == 0 and -(-huge // size) <= 10_000
    with pytest.raises(ValueError, match="5 MiB"):
        Tuning(part_size=MIB)
