"""Placing a job's input artifacts under ``~/inputs/<jobId>/`` before its command runs.

A PhJob created with ``inputArtifacts`` (``PhJobSpec.input_artifacts``, resolved and
recorded by the api) reads other jobs' artifacts. Our side fetches them, never the job:
the job's container gets no S3 credentials (ARCHITECTURE section 4). This module is the
one place that fetches and verifies, for both runtimes:

- Kubernetes: an init container of our own image runs ``python -m
  artifacts_controller.inputs`` with the bucket's keys (the uploader's Secret) and writes
  into an ``emptyDir`` that the job container mounts read-only at ``/home/jovyan/inputs``.
  A failure is its exit code 1 and one line in ``/dev/termination-log``, which the
  controller makes the job's message (``pods.observe_pod``).
- the local runtime: the controller calls ``place_inputs`` itself, into the job's home,
  before it starts run-job.sh, the files owned by the job's uid.

Each input's source manifest is read again from S3 (the api's look at creation may be
hours old) and must still select what the api recorded: the same number of files, the
same bytes. Each object is streamed to a temporary file and hashed on the way; its size
and sha256 must be the manifest's, or the whole placing fails and the command never
runs. Names come from a manifest a job may have written (``phfs`` delivery), so each is
checked as an artifact path (``layout.artifact_key``) before it becomes a file name, and
the total is held to the job's own artifact size limit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import Field

from artifacts_controller.transfer import MIB
from artifacts_shared.layout import UnsafeNameError, artifact_key, job_prefix
from artifacts_shared.manifest import ManifestError, ManifestFile
from artifacts_shared.metadata_store import read_manifest
from artifacts_shared.phjob import ArtifactInput
from artifacts_shared.s3 import S3Client, open_s3
from artifacts_shared.settings import S3Settings, SettingsError, load_settings

__all__ = [
    "INPUTS_COMMAND",
    "InputsError",
    "InputsSettings",
    "Placed",
    "main",
    "place_inputs",
    "selected",
]

INPUTS_COMMAND = ["python", "-m", "artifacts_controller.inputs"]
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_SETTINGS = 2
_CHUNK = 1024 * 1024
_MESSAGE_MAX = 1024
"""Kubernetes keeps at most 4096 bytes of a termination message; one line needs fewer."""


class InputsError(Exception):
    """The inputs could not be placed; ``str()`` says why in one line."""

    @property
    def message(self) -> str:
        """The job's message, the same in both runtimes."""
        return _one_line(f"the input artifacts could not be placed: {self}")


class InputsSettings(S3Settings):
    """The init container's settings, from the environment the controller gives it."""

    phjob_name: str = Field(min_length=1, description="the job's name (PHJOB_NAME)")
    phjob_input_artifacts: tuple[ArtifactInput, ...] = Field(
        description="a JSON list of the job's spec.inputArtifacts"
    )
    phjob_inputs_dir: Path = Field(description="the folder to place the inputs in")
    phjob_artifact_limit_size_mb: int = Field(
        100, ge=1, le=10_000_000, description="a whole number of megabytes, at least 1"
    )
    inputs_concurrency: int = Field(
        4, ge=1, le=64, description="how many objects to fetch at once, from 1 to 64"
    )


@dataclass(frozen=True, slots=True)
class Placed:
    files: int
    bytes: int


def selected(files: Sequence[ManifestFile], path: str | None) -> list[ManifestFile]:
    """The files ``path`` names: that one file, every file under that folder, or all."""
    if path is None:
        return list(files)
    folder = path.rstrip("/") + "/"
    return [entry for entry in files if entry.name == path or entry.name.startswith(folder)]


def _shown(name: str) -> str:
    """A name from a manifest, as one line of a message can carry it."""
    text = repr(name)
    return text if len(text) <= 200 else text[:200] + "..."


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _MESSAGE_MAX else flat[: _MESSAGE_MAX - 3] + "..."


def _clear(target: Path) -> None:
    """Empty ``target`` (an earlier attempt's leftovers), keeping the folder: in a pod it is
    a volume's mount point."""
    target.mkdir(parents=True, exist_ok=True)
    for entry in target.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _make_folders(root: Path, relative: str, owner: int | None) -> Path:
    """``root/relative``'s parent folders, made as needed and owned by ``owner``."""
    folder = root
    for step in relative.split("/")[:-1]:
        folder = folder / step
        try:
            folder.mkdir(mode=0o755)
        except FileExistsError:
            if folder.is_symlink() or not folder.is_dir():
                raise InputsError(f"cannot place a folder at {_shown(str(folder))}") from None
            continue
        if owner is not None:
            os.chown(folder, owner, owner, follow_symlinks=False)
    return folder


@dataclass(frozen=True, slots=True)
class _Wanted:
    source: ArtifactInput
    entry: ManifestFile
    key: str


class _Placer:
    def __init__(
        self, *, s3: S3Client, bucket: str, target: Path, owner: int | None, concurrency: int
    ) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._target = target
        self._owner = owner
        self._slots = asyncio.Semaphore(concurrency)

    async def wanted(self, source: ArtifactInput) -> list[_Wanted]:
        """The files ``source`` selects from its manifest as S3 has it now."""
        label = f"input {source.job_id}"
        try:
            prefix = job_prefix(source.group_name, source.job_id)
            manifest = await read_manifest(self._s3, self._bucket, prefix)
        except UnsafeNameError as err:
            raise InputsError(f"{label}: {err}") from None
        except ManifestError as err:
            raise InputsError(f"{label}: its manifest is unreadable ({err})") from None
        if manifest is None:
            raise InputsError(
                f"{label}: its artifacts are gone (deleted or expired since this job was created)"
            )
        files = selected(manifest.files, source.path)
        size = sum(entry.size for entry in files)
        if (len(files), size) != (source.file_count, source.total_size):
            raise InputsError(
                f"{label}: its artifacts changed since this job was created ({len(files)} files "
                f"of {size} bytes now, {source.file_count} of {source.total_size} then)"
            )
        wanted = []
        for entry in files:
            try:
                key = artifact_key(prefix, entry.name)
            except UnsafeNameError as err:
                raise InputsError(f"{label}: its manifest names an unsafe file: {err}") from None
            wanted.append(_Wanted(source, entry, key))
        return wanted

    async def fetch(self, wanted: _Wanted) -> None:
        entry, job = wanted.entry, wanted.source.job_id
        shown = f"inputs/{job}/{_shown(entry.name)}"
        async with self._slots:
            root = self._target / job
            folder = await asyncio.to_thread(_make_folders, root, entry.name, self._owner)
            final = folder / entry.name.rsplit("/", 1)[-1]
            partial = final.with_name(f".{final.name}.partial")
            try:
                response = await self._s3.get_object(Bucket=self._bucket, Key=wanted.key)
            except ClientError as err:
                code = err.response.get("Error", {}).get("Code", "?")
                if code in ("NoSuchKey", "404", "NotFound"):
                    raise InputsError(
                        f"{shown}: the object is missing from the bucket; the source's "
                        "artifacts were deleted or changed"
                    ) from None
                raise InputsError(f"{shown}: could not be read ({code})") from None
            digest = hashlib.sha256()
            size = 0
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
            handle = os.fdopen(os.open(partial, flags, 0o600), "wb")
            try:
                async with response["Body"] as body:
                    while chunk := await body.read(_CHUNK):
                        size += len(chunk)
                        if size > entry.size:
                            break  # more than the manifest says: no need to read the rest
                        digest.update(chunk)
                        await asyncio.to_thread(handle.write, chunk)
                handle.close()
                if size != entry.size or digest.hexdigest() != entry.sha256:
                    raise InputsError(
                        f"{shown}: its sha256 or size differs from the source manifest's (the "
                        "object was changed after it was collected); the command was not run"
                    )
                executable = entry.mode is not None and int(entry.mode, 8) & 0o111
                mode = 0o755 if executable else 0o644
                os.chmod(partial, mode)
                if self._owner is not None:
                    os.chown(partial, self._owner, self._owner, follow_symlinks=False)
                os.replace(partial, final)
            except BaseException:
                handle.close()
                with contextlib.suppress(FileNotFoundError):
                    partial.unlink()
                raise


async def place_inputs(
    inputs: Sequence[ArtifactInput],
    target: Path,
    *,
    s3: S3Client,
    bucket: str,
    limit_bytes: int,
    owner: int | None = None,
    concurrency: int = 4,
) -> Placed:
    """Fetch and verify every input into ``target/<jobId>/...``; ``InputsError`` on the first
    failure (nothing half-written is left under a file's own name).

    ``owner``: a uid to own the folders and files (the local runtime's per-job user).
    """
    recorded = sum(source.total_size for source in inputs)
    if recorded > limit_bytes:
        raise InputsError(
            f"the inputs hold {recorded} bytes, over the job's artifact size limit of "
            f"{limit_bytes // MIB} MB"
        )
    placer = _Placer(s3=s3, bucket=bucket, target=target, owner=owner, concurrency=concurrency)
    wanted: list[_Wanted] = []
    try:
        await asyncio.to_thread(_clear, target)
        if owner is not None:
            os.chown(target, owner, owner, follow_symlinks=False)
        for source in inputs:
            await asyncio.to_thread(_make_folders, target, f"{source.job_id}/", owner)
            wanted += await placer.wanted(source)
        try:
            async with asyncio.TaskGroup() as group:
                for item in wanted:
                    group.create_task(placer.fetch(item))
        except BaseExceptionGroup as failed:
            raise _first(failed) from None
    except OSError as err:
        raise InputsError(f"could not write the inputs: {err}") from None
    return Placed(len(wanted), sum(item.entry.size for item in wanted))


def _first(failed: BaseExceptionGroup[BaseException]) -> BaseException:
    """The failure to report from a group: ours (one clear line) before any other."""
    leaves: list[BaseException] = []
    pending: list[BaseException] = [failed]
    while pending:
        error = pending.pop(0)
        if isinstance(error, BaseExceptionGroup):
            pending.extend(error.exceptions)
        else:
            leaves.append(error)
    return next((error for error in leaves if isinstance(error, InputsError)), leaves[0])


def _say(line: str) -> None:
    print(f"inputs: {line}", file=sys.stderr, flush=True)


async def _run(settings: InputsSettings) -> Placed:
    async with open_s3(settings, max_connections=settings.inputs_concurrency) as s3:
        return await place_inputs(
            settings.phjob_input_artifacts,
            settings.phjob_inputs_dir,
            s3=s3,
            bucket=settings.phfs_bucket,
            limit_bytes=settings.phjob_artifact_limit_size_mb * MIB,
            concurrency=settings.inputs_concurrency,
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m artifacts_controller.inputs",
        description="Place a job's input artifacts before its command runs. Settings come "
        "from the environment.",
    )
    parser.add_argument(
        "--message-file",
        type=Path,
        help="where to write the one-line failure (a pod's /dev/termination-log)",
    )
    args = parser.parse_args(argv)
    try:
        settings = load_settings(InputsSettings)
    except SettingsError as err:
        _say(str(err))
        return EXIT_SETTINGS
    try:
        placed = asyncio.run(_run(settings))
    except (ClientError, BotoCoreError) as err:
        message = InputsError(f"the bucket could not be read: {err}").message
    except InputsError as err:
        message = err.message
    else:
        _say(
            f"placed {placed.files} files ({placed.bytes} bytes) of "
            f"{len(settings.phjob_input_artifacts)} jobs under {settings.phjob_inputs_dir}"
        )
        return EXIT_OK
    _say(message)
    if args.message_file is not None:
        with contextlib.suppress(OSError):
            args.message_file.write_text(message, encoding="utf-8")
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
