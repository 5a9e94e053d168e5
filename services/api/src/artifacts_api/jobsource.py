"""Where PhJobs come from: Kubernetes, or the dev stack's local job store.

Resolvers talk to a ``JobSource`` and never to a client library, so the same GraphQL
code serves both runtimes and kubernetes-asyncio (untyped) stays inside ``kube.py``.
A backend that cannot answer raises ``Unavailable``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Protocol

from artifacts_shared.jobstore import JobExistsError, JobNotFoundError, LocalJobStore
from artifacts_shared.phjob import JobId, PhJob

__all__ = ["JobExistsError", "JobSource", "LocalJobSource", "newest_first"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class JobSource(Protocol):
    async def get(self, job_id: JobId) -> PhJob | None:
        """The job, or None when there is no such job."""
        ...

    async def list(self) -> list[PhJob]:
        """Every job, newest first."""
        ...

    async def create(self, job: PhJob) -> PhJob:
        """Create ``job``; raises ``JobExistsError`` when its name is taken."""
        ...

    async def request_cancel(self, job_id: JobId) -> PhJob | None:
        """Set ``spec.cancel``; the job as it is now, or None when there is no such job."""
        ...


def newest_first(jobs: list[PhJob]) -> list[PhJob]:
    return sorted(
        jobs, key=lambda job: (job.metadata.creation_timestamp or _EPOCH, job.id), reverse=True
    )


class LocalJobSource:
    """The local job store (``LOCAL_JOBS_DIR``), shared with the controller's local runtime.

    The store does small blocking file operations; they run in a worker thread so a slow
    disk does not stall every other request.
    """

    def __init__(self, store: LocalJobStore) -> None:
        self._store = store

    async def get(self, job_id: JobId) -> PhJob | None:
        try:
            return await asyncio.to_thread(self._store.get, job_id)
        except JobNotFoundError:
            return None

    async def list(self) -> list[PhJob]:
        return newest_first(await asyncio.to_thread(self._store.list))

    async def create(self, job: PhJob) -> PhJob:
        return await asyncio.to_thread(self._store.create, job)

    async def request_cancel(self, job_id: JobId) -> PhJob | None:
        try:
            return await asyncio.to_thread(self._store.request_cancel, job_id)
        except JobNotFoundError:
            return None
