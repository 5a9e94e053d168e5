"""The staging folder: what run-job.sh hands the uploader in ``s3`` delivery mode.

Layout of ``$PHJOB_ARTIFACT_STAGING`` (an ``emptyDir`` shared by the job container and
the uploader sidecar, or a plain folder in the local runtime)::

    files/<relative path>   the collected files, copied (links resolved), readable by all
    done                    JSON, the script's last write (renamed into place)
    uploaded                JSON receipt, the uploader's last write (optional)

run-job.sh removes a stale ``done`` and ``uploaded`` when it starts, and ``files/`` before
it copies. ``done`` exists only once the script has finished with the folder, so its
presence is the signal to upload. Its fields (camelCase, unknown ones ignored):

``version``
    1.
``outcome``
    ``collected`` (``files`` lists what is in ``files/``), ``skipped`` (a limit was
    exceeded: nothing copied, ``skipReason`` says why; the manifest is still written) or
    ``none`` (nothing to deliver and nothing to write: no ``./artifacts``, an empty one,
    collection disabled or impossible).
``message``
    The script's log line for that decision.
``job``, ``group``
    ``PHJOB_NAME`` and ``GROUP_NAME`` as the script saw them.
``exitCode``, ``endedAt``
    The command's exit code and when it ended (UNIX seconds).
``retentionSeconds``
    ``expiredAt`` = ``endedAt`` + this; 0 writes no ``expiredAt``.
``limits``
    ``{"sizeMb", "files"}`` as applied; ``skipReason`` as in ``manifest.json``.
``fileCount``, ``totalSize``, ``files``
    ``[{"name", "size", "mode"}]``: relative path, bytes, octal permission bits of the
    original. The uploader adds sha256 when it reads the copies.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from artifacts_shared.layout import JobPrefix, UnsafeNameError, artifact_key
from artifacts_shared.manifest import ManifestLimits, SkipReason

__all__ = [
    "DONE",
    "FILES",
    "RECEIPT",
    "DoneMarker",
    "Receipt",
    "StagedFile",
    "StagingError",
    "read_done",
    "read_receipt",
    "staged_path",
    "write_receipt",
]

FILES = "files"
DONE = "done"
RECEIPT = "uploaded"


class StagingError(Exception):
    """The staging folder does not hold what the done marker says; ``str()`` is one line."""


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


class StagedFile(_Model):
    name: str = Field(min_length=1)
    size: int = Field(ge=0)
    mode: str = Field("644", pattern=r"^[0-7]{1,4}$")


class DoneMarker(_Model):
    version: Literal[1] = 1
    outcome: Literal["collected", "skipped", "none"]
    message: str = ""
    job: str = ""
    group: str = ""
    exit_code: int | None = None
    ended_at: int = Field(ge=0)
    retention_seconds: int = Field(ge=0)
    limits: ManifestLimits
    skip_reason: SkipReason | None = None
    file_count: int = Field(0, ge=0)
    total_size: int = Field(0, ge=0)
    files: list[StagedFile] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.file_count != len(self.files):
            raise ValueError(f"fileCount is {self.file_count} but {len(self.files)} files")
        if self.total_size != sum(entry.size for entry in self.files):
            raise ValueError("totalSize is not the sum of the files' sizes")
        if self.outcome == "skipped" and self.skip_reason is None:
            raise ValueError("a skipped collection has no skipReason")
        if self.outcome != "collected" and self.files:
            raise ValueError(f"outcome {self.outcome!r} lists files")
        return self


class Receipt(_Model):
    """What the uploader leaves behind, so a restarted sidecar does not upload twice."""

    job: str
    ended_at: int
    file_count: int
    total_size: int


def read_done(staging: Path) -> DoneMarker | None:
    """The done marker, None while there is none; ``StagingError`` when it is garbage."""
    try:
        raw = (staging / DONE).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise StagingError(f"cannot read {staging / DONE}: {err.strerror}") from None
    try:
        return DoneMarker.model_validate_json(raw)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "document"
        raise StagingError(f"{staging / DONE}: {where}: {first['msg']}") from None


def staged_path(staging: Path, name: str) -> Path:
    """Where the copy of artifact ``name`` lies, refusing names that leave ``files/``."""
    try:
        artifact_key(JobPrefix(""), name)  # the key rules are the path rules: no escape
    except UnsafeNameError as err:
        raise StagingError(f"{staging / DONE}: {err}") from None
    return staging / FILES / name


def read_receipt(staging: Path) -> Receipt | None:
    try:
        return Receipt.model_validate_json((staging / RECEIPT).read_bytes())
    except (OSError, ValidationError):
        return None


def write_receipt(staging: Path, receipt: Receipt) -> None:
    """Best effort: a staging folder the uploader may not write to only costs a re-upload."""
    path = staging / RECEIPT
    partial = path.with_name(f".{RECEIPT}.tmp")
    try:
        partial.write_text(json.dumps(receipt.model_dump(by_alias=True)), encoding="utf-8")
        partial.replace(path)
    except OSError:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
