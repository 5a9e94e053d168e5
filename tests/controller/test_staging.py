"""The staging contract's own rules: the done marker and the staged paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from artifacts_controller.staging import (
    DoneMarker,
    Receipt,
    StagingError,
    read_done,
    read_receipt,
    staged_path,
    write_receipt,
)
from artifacts_controller.transfer import MIB, Tuning

DONE = {
    "version": 1,
    "outcome": "collected",
    "exitCode": 0,
    "endedAt": 1_800_000_000,
    "retentionSeconds": 60,
    "limits": {"sizeMb": 100, "files": 1000},
    "fileCount": 1,
    "totalSize": 6,
    "files": [{"name": "test.txt", "size": 6, "mode": "644"}],
}


def test_a_done_marker_parses_and_ignores_unknown_fields(tmp_path: Path) -> None:
    (tmp_path / "done").write_text(DoneMarker.model_validate(DONE).model_dump_json(by_alias=True))
    assert read_done(tmp_path) == DoneMarker.model_validate({**DONE, "future": 1})
    assert read_done(tmp_path / "elsewhere") is None


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"fileCount": 2}, "fileCount is 2 but 1 files"),
        ({"totalSize": 7}, "totalSize is not the sum"),
        ({"outcome": "skipped"}, "a skipped collection has no skipReason"),
        ({"outcome": "none"}, "outcome 'none' lists files"),
        ({"endedAt": -1}, "endedAt"),
    ],
)
def test_an_inconsistent_done_marker_is_refused_with_the_reason(
    tmp_path: Path, change: dict[str, object], complaint: str
) -> None:

    (tmp_path / "done").write_text(json.dumps({**DONE, **change}))
    with pytest.raises(StagingError, match="done: ") as raised:
        read_done(tmp_path)
    assert complaint in str(raised.value)


@pytest.mark.parametrize("name", ["../escape", "/etc/passwd", "a//b", ".primehub/x", "a/./b"])
def test_staged_paths_never_leave_the_files_folder(tmp_path: Path, name: str) -> None:
    with pytest.raises(StagingError):
        staged_path(tmp_path, name)


def test_staged_paths_keep_odd_names(tmp_path: Path) -> None:
    assert staged_path(tmp_path, "a\nb/-c d") == tmp_path / "files" / "a\nb" / "-c d"


def test_the_receipt_round_trips_and_a_missing_one_is_none(tmp_path: Path) -> None:
    assert read_receipt(tmp_path) is None
    receipt = Receipt(job="j", ended_at=1, file_count=2, total_size=3)
    write_receipt(tmp_path, receipt)
    assert read_receipt(tmp_path) == receipt
    write_receipt(tmp_path / "missing-folder", receipt)  # best effort: no error


def test_parts_grow_for_files_beyond_ten_thousand_parts() -> None:
    tuning = Tuning(part_size=8 * MIB)
    assert tuning.part_size_for(200 * MIB) == 8 * MIB
    assert Tuning().part_size_for(200 * MIB) == 16 * MIB
    huge = 200 * 1024 * MIB  # 200 GiB
    size = tuning.part_size_for(huge)
    assert size % MIB == 0 and -(-huge // size) <= 10_000
    with pytest.raises(ValueError, match="5 MiB"):
        Tuning(part_size=MIB)
