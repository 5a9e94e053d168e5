"""``manifest.json``: our record of one job's collection.

Written by whoever delivers the artifacts (run-job.sh in ``phfs`` mode, the uploader in
``s3`` mode) before ``expiredAt``; read by the api for sha256 and the skip reason. The
JSON uses camelCase names like the rest of the product's wire formats.

``fileCount``/``totalSize`` describe what was collected (``files``); when a limit stopped
the collection, ``skipped`` is true, ``files`` is empty, and ``skipReason`` carries the
figures that were found and the limit that refused them. ``log`` describes the job's
output delivered with the folder (the uploader in ``s3`` mode), when there is one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

__all__ = [
    "MANIFEST_VERSION",
    "PERMISSION_BITS",
    "Manifest",
    "ManifestError",
    "ManifestFile",
    "ManifestLimits",
    "ManifestLog",
    "SkipReason",
    "permission_bits",
]

MANIFEST_VERSION = 1


class _Model(BaseModel):
    # Unknown fields are ignored so a reader keeps working when a writer adds one.
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


class ManifestError(ValueError):
    """``manifest.json`` is not valid JSON of a version this code reads."""


PERMISSION_BITS = 0o777
"""The only mode bits any reader takes from a manifest: never setuid, setgid or sticky."""


def permission_bits(mode: str | None) -> int | None:
    """A manifest's ``mode`` as the permission bits a reader may restore (``0o777`` at
    most), None when there is none. The manifest is data (``phfs`` mode: the job's own
    writing), so a ``"4755"`` is read as ``0o755``: the setuid bit is never restored."""
    if mode is None:
        return None
    return int(mode, 8) & PERMISSION_BITS


class ManifestFile(_Model):
    name: str = Field(min_length=1)
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    mode: str | None = Field(
        None,
        pattern=r"^[0-7]{1,4}$",
        description="permission bits, octal, of the file as delivered; None: not recorded",
    )


class ManifestLimits(_Model):
    size_mb: int = Field(ge=1)
    files: int = Field(ge=1)


class SkipReason(_Model):
    limit: Literal["size", "files"]
    found: int = Field(ge=0, description="bytes for 'size', files for 'files'")
    allowed: int = Field(ge=0, description="the limit in the same unit as 'found'")
    message: str


class ManifestLog(_Model):
    """The job's log, delivered beside the files as ``.primehub/metadata/job.log``."""

    size: int = Field(ge=0, description="bytes stored, the truncation line included")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    written: int = Field(ge=0, description="bytes the job's output held when it was read")
    truncated: bool = False
    """``written`` was over the cap: the stored log is its end, after a truncation line."""


class Manifest(_Model):
    version: Literal[1] = 1
    job: str
    group: str
    collected_at: datetime
    expired_at: int | None = Field(None, ge=0)
    exit_code: int | None = None
    file_count: int = Field(ge=0)
    total_size: int = Field(ge=0)
    limits: ManifestLimits
    skipped: bool = False
    skip_reason: SkipReason | None = None
    files: list[ManifestFile] = Field(default_factory=list)
    log: ManifestLog | None = None
    """Not one of ``files``, nor counted in ``fileCount``/``totalSize``: metadata."""

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> Manifest:
        try:
            return cls.model_validate_json(raw)
        except ValidationError as err:
            first = err.errors(include_url=False)[0]
            where = ".".join(str(part) for part in first["loc"]) or "document"
            raise ManifestError(f"manifest.json: {where}: {first['msg']}") from None

    def sha256_by_name(self) -> dict[str, str]:
        return {entry.name: entry.sha256 for entry in self.files}
