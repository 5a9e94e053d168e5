"""The local job store: PhJobs as JSON documents in a folder, for the dev stack.

With ``CONTROLLER_RUNTIME=local`` there is no Kubernetes; the api and the controller meet
here instead. Like a Kubernetes object, a job has two owners, so it is two files:
``<id>/spec.json`` (metadata and spec, written by the api: create, cancel) and
``<id>/status.json`` (written by the controller). Each writer replaces only its own file,
atomically (write a temporary file, then rename), so a reader never sees half a document
and the api's cancel cannot be lost under the controller's status update.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from artifacts_shared.phjob import JobId, PhJob, PhJobStatus, is_job_id

__all__ = ["JobExistsError", "JobNotFoundError", "LocalJobStore"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class JobNotFoundError(LookupError):
    pass


class JobExistsError(FileExistsError):
    pass


def _write_atomically(path: Path, document: dict[str, Any]) -> None:
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            json.dump(document, stream, indent=1)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _read(path: Path) -> dict[str, Any] | None:
    try:
        document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return document


class LocalJobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _folder(self, job_id: str) -> Path:
        if not is_job_id(job_id):
            # The id becomes a path: only well-formed ids may touch the file system.
            raise JobNotFoundError(job_id)
        return self.root / job_id

    def create(self, job: PhJob) -> PhJob:
        folder = self._folder(job.id)
        try:
            folder.mkdir()
        except FileExistsError:
            raise JobExistsError(job.id) from None
        if job.metadata.creation_timestamp is None:
            metadata = job.metadata.model_copy(update={"creation_timestamp": datetime.now(UTC)})
            job = job.model_copy(update={"metadata": metadata})
        document = job.to_k8s()
        document.pop("status", None)
        _write_atomically(folder / "spec.json", document)
        return job.model_copy(update={"status": PhJobStatus()})

    def get(self, job_id: str) -> PhJob:
        folder = self._folder(job_id)
        document = _read(folder / "spec.json")
        if document is None:
            raise JobNotFoundError(job_id)
        status = _read(folder / "status.json")
        if status is not None:
            document["status"] = status
        return PhJob.from_k8s(document)

    def ids(self) -> Iterator[JobId]:
        for entry in self.root.iterdir():
            if is_job_id(entry.name) and (entry / "spec.json").exists():
                yield JobId(entry.name)

    def list(self) -> list[PhJob]:
        """Every job, newest first (ids start with their creation minute)."""
        jobs = []
        for job_id in self.ids():
            try:
                jobs.append(self.get(job_id))
            except JobNotFoundError:
                continue  # deleted while we listed
        return sorted(
            jobs, key=lambda job: (job.metadata.creation_timestamp or _EPOCH, job.id), reverse=True
        )

    def request_cancel(self, job_id: str) -> PhJob:
        job = self.get(job_id)
        document = job.to_k8s()
        document.pop("status", None)
        document["spec"]["cancel"] = True
        _write_atomically(self._folder(job_id) / "spec.json", document)
        return self.get(job_id)

    def write_status(self, job_id: str, status: PhJobStatus) -> None:
        folder = self._folder(job_id)
        if not (folder / "spec.json").exists():
            raise JobNotFoundError(job_id)
        _write_atomically(
            folder / "status.json", status.model_dump(mode="json", by_alias=True, exclude_none=True)
        )
