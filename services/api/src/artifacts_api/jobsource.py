"""Where PhJobs come from: Kubernetes, or the dev stack's local job store.

Resolvers talk to a ``JobSource`` and never to a client library, so the same GraphQL
code serves both runtimes and kubernetes-asyncio (untyped) stays inside ``kube.py``.
A backend that cannot answer raises ``Unavailable``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Protocol

from artifacts_api.filewatch import FileWatcher
from artifacts_api.jobindex import JobIndex, JobPage, JobQuery
from artifacts_api.logreaders import JobLog, SeekableLog, open_file_log
from artifacts_shared.jobstore import JobExistsError, JobNotFoundError, LocalJobStore
from artifacts_shared.layout import check_job_name
from artifacts_shared.phjob import JobId, PhJob
from artifacts_shared.settings import LocalRuntimeSettings

__all__ = ["JobExistsError", "JobSource", "LocalJobSource"]


class JobSource(Protocol):
    async def get(self, job_id: JobId) -> PhJob | None:
        """The job, or None when there is no such job."""
        ...

    async def page(self, query: JobQuery) -> JobPage:
        """One page of the jobs ``query`` selects, newest first (``JobIndex.page``)."""
        ...

    async def create(self, job: PhJob) -> PhJob:
        """Create ``job``; raises ``JobExistsError`` when its name is taken."""
        ...

    async def request_cancel(self, job_id: JobId) -> PhJob | None:
        """Set ``spec.cancel``; the job as it is now, or None when there is no such job."""
        ...

    async def live_log(self, job: PhJob) -> JobLog | None:
        """The job's output as its runtime keeps it (the pod's log, the local runtime's
        file), or None when the runtime has none (not started, or gone with the pod)."""
        ...


class LocalJobSource:
    """The local job store (``LOCAL_JOBS_DIR``), shared with the controller's local runtime,
    whose job logs it reads under ``LOCAL_RUNTIME_DIR`` (followed through ``watcher``).

    The store does small blocking file operations; they run in a worker thread so a slow
    disk does not stall every other request.
    """

    def __init__(
        self, store: LocalJobStore, runtime: LocalRuntimeSettings, *, watcher: FileWatcher
    ) -> None:
        self._store = store
        self._runtime = runtime
        self._watcher = watcher

    async def get(self, job_id: JobId) -> PhJob | None:
        try:
            return await asyncio.to_thread(self._store.get, job_id)
        except JobNotFoundError:
            return None

    async def page(self, query: JobQuery) -> JobPage:
        # The dev stack's store reads every job's file: fine for a laptop's few hundred.
        jobs = await asyncio.to_thread(self._store.list)
        return JobIndex(jobs).page(query)

    async def create(self, job: PhJob) -> PhJob:
        return await asyncio.to_thread(self._store.create, job)

    async def request_cancel(self, job_id: JobId) -> PhJob | None:
        try:
            return await asyncio.to_thread(self._store.request_cancel, job_id)
        except JobNotFoundError:
            return None

    async def live_log(self, job: PhJob) -> JobLog | None:
        path: Path = self._runtime.local_job_log(check_job_name(job.id))
        log = await asyncio.to_thread(open_file_log, path)
        if log is None:
            return None

        async def ended() -> bool:
            current = await self.get(job.id)
            return current is None or current.status.finished

        return SeekableLog(
            log,
            source="LIVE",
            ended=ended,
            watch=lambda: self._watcher.watch(log.fd),
            close=log.close,
        )
