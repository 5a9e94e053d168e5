"""A new job's input artifacts: what ``createPhJob``'s ``inputArtifacts`` may name, resolved.

Each ``PhJobArtifactInput {jobId, path}`` names another job's collected artifacts, all of
them or one file or folder, to be placed under ``~/inputs/<jobId>/<path>`` before the new
job's command starts (the controller's ``artifacts_controller.inputs`` does that). Here,
when the job is created, each is checked and resolved:

- the source job goes through ``jobs.visible_job``: a malformed id is ``BAD_USER_INPUT``,
  an unknown one ``NOT_FOUND``, another group's ``FORBIDDEN``, exactly as ``phJob``;
- it has finished, its folder holds a manifest that was not skipped, and its ``expiredAt``
  (if any) lies ahead;
- ``path`` is a relative artifact path (no ``..``, no absolute path, no control
  character, not in a metadata folder) that matches a file or a folder of the manifest;
- no two inputs of one job overlap (both would be placed at the same place), there are at
  most ``API_MAX_INPUT_ARTIFACTS``, and their bytes together fit the new job's artifact
  size limit.

What was found (the source's group, its files and bytes) is recorded in the PhJob's spec
(``ArtifactInput``), which the controller trusts: it came from our side.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from artifacts_api.errors import BadUserInput
from artifacts_api.manifests import ManifestCache, ManifestIndex
from artifacts_api.times import iso_utc
from artifacts_shared.expiry import to_datetime
from artifacts_shared.layout import JobPrefix, UnsafeNameError, artifact_key, job_prefix
from artifacts_shared.metadata_store import ExpiryState, read_expiry
from artifacts_shared.phjob import ArtifactInput, PhJob
from artifacts_shared.s3 import S3Client

__all__ = [
    "InputRequest",
    "check_input_size",
    "input_prefixes",
    "parse_input_requests",
    "resolve_input",
]

_MAX_PATH = 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class InputRequest:
    """One ``PhJobArtifactInput``, its path checked; ``where`` names it in messages."""

    job_id: str
    path: str | None
    where: str


def _path(value: object, where: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadUserInput(f"{where}.path must be a string", field="inputArtifacts")
    shown = repr(value[:80])
    if len(value) > _MAX_PATH:
        raise BadUserInput(
            f"{where}.path is longer than {_MAX_PATH} characters", field="inputArtifacts"
        )
    if _CONTROL.search(value):
        raise BadUserInput(
            f"{where}.path {shown} contains a control character (a newline, NUL, ...)",
            field="inputArtifacts",
        )
    path = value[:-1] if value.endswith("/") and value != "/" else value  # "sub/": the folder
    try:
        artifact_key(JobPrefix(""), path)
    except UnsafeNameError as err:
        raise BadUserInput(
            f"{where}.path {shown} is not a path inside the artifacts: {err}",
            field="inputArtifacts",
        ) from None
    return path


def _overlaps(first: str | None, second: str | None) -> bool:
    if first is None or second is None:
        return True
    return first == second or first.startswith(f"{second}/") or second.startswith(f"{first}/")


def parse_input_requests(
    given: Sequence[Mapping[str, Any]] | None, *, max_inputs: int
) -> list[InputRequest]:
    """``inputArtifacts`` as sent, checked for what needs no look at any job."""
    if not given:
        return []
    if len(given) > max_inputs:
        raise BadUserInput(
            f"inputArtifacts: at most {max_inputs} inputs, got {len(given)}",
            field="inputArtifacts",
        )
    requests: list[InputRequest] = []
    for number, item in enumerate(given):
        where = f"inputArtifacts[{number}]"
        job_id = str(item.get("job_id") or "")
        request = InputRequest(job_id, _path(item.get("path"), where), where)
        for earlier in requests:
            if earlier.job_id == job_id and _overlaps(earlier.path, request.path):
                raise BadUserInput(
                    f"{where} and {earlier.where} both place job {job_id[:80]}'s "
                    f"{_shown(request.path)} and {_shown(earlier.path)} under "
                    f"inputs/{job_id[:80]}/: give each file once",
                    field="inputArtifacts",
                )
        requests.append(request)
    return requests


def _shown(path: str | None) -> str:
    return "artifacts" if path is None else repr(path[:80])


def _selection(manifest: ManifestIndex, path: str | None) -> tuple[int, int]:
    """Files and bytes ``path`` selects: as ``artifacts_controller.inputs.selected`` does."""
    if path is None:
        return len(manifest.sizes), sum(manifest.sizes.values())
    folder = manifest.folder(f"{path}/")
    files, size = (folder.files, folder.size) if folder else (0, 0)
    if path in manifest.sizes:
        files, size = files + 1, size + manifest.sizes[path]
    return files, size


async def resolve_input(
    request: InputRequest,
    source: PhJob,
    *,
    manifests: ManifestCache,
    s3: S3Client,
    bucket: str,
    now: float,
) -> ArtifactInput:
    """``request`` against its ``source`` job, which the caller may read (``visible_job``)."""
    job_id, where = source.id, request.where

    def refused(why: str) -> BadUserInput:
        return BadUserInput(f"{where}: job {job_id} {why}", field="inputArtifacts")

    if not source.status.finished:
        raise refused("has not finished: its artifacts are not collected yet")
    try:
        prefix = job_prefix(source.spec.group_name, job_id)
    except UnsafeNameError:
        raise refused("has no artifact folder") from None
    manifest = await manifests.get(prefix)
    if manifest is None:
        raise refused("has no artifacts to read (it left none, or they were deleted)")
    if manifest.skipped:
        raise refused(f"collected no artifacts: {manifest.skip_reason or 'a limit refused them'}")
    reading = await read_expiry(s3, bucket, prefix)
    if reading.state is ExpiryState.SET and reading.expired_at is not None:
        if reading.expired_at <= now:
            when = iso_utc(to_datetime(reading.expired_at)) or str(reading.expired_at)
            raise refused(f"has artifacts that expired at {when}: the next cleanup deletes them")
    files, size = _selection(manifest, request.path)
    if files == 0:
        if request.path is None:
            raise refused("collected no files")
        raise refused(f"has no file or folder {request.path[:80]!r} in its artifacts")
    return ArtifactInput(
        job_id=job_id,
        path=request.path,
        group_name=source.spec.group_name,
        file_count=files,
        total_size=size,
    )


def check_input_size(resolved: Sequence[ArtifactInput], *, limit_size_mb: int) -> None:
    """The inputs' bytes together must fit the new job's artifact size limit."""
    total = sum(source.total_size for source in resolved)
    if total > limit_size_mb * _MIB:
        raise BadUserInput(
            f"inputArtifacts hold {total} bytes together, over this job's artifact size limit "
            f"of {limit_size_mb} MB",
            field="inputArtifacts",
        )


def input_prefixes(inputs: Sequence[ArtifactInput]) -> list[JobPrefix]:
    """The source folders of ``inputs``: what the new job holds until it starts."""
    return [job_prefix(source.group_name, source.job_id) for source in inputs]
