"""``Client``: what the job page offers, for scripts and notebooks, over the GraphQL API.

Modelled on JuliaHub.jl's jobs functions: ``jobs``, ``job``, ``is_done``, ``wait_job``,
``artifacts``, ``download_artifact(s)``; a job can be passed as a ``Job`` or its id. Calls
are synchronous (notebooks and shell scripts want a plain return value) and use only the
standard library. Every failure is a ``ClientError`` subclass; errors from the API carry
its GraphQL ``extensions.code``.

    client = Client("http://127.0.0.1:8080")            # or JOBARTIFACTS_API_URL/_TOKEN
    job = client.create_job("echo hi > artifacts/a.txt", group="team-a")
    client.wait_job(job, timeout=600)
    client.download_artifacts(job, "out/")
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from artifacts_client import config, queries
from artifacts_client.downloads import download_many, fetch_artifact, target_path
from artifacts_client.errors import (
    ArtifactExistsError,
    ConnectionFailed,
    NotFound,
    ProtocolError,
    Unavailable,
    WaitTimeout,
)
from artifacts_client.models import (
    Artifact,
    ArtifactFolder,
    CleanupRun,
    Download,
    InputArtifact,
    Job,
    JobPhase,
    LogPage,
    Retention,
)
from artifacts_client.progress import NoProgress, Progress, ProgressBar
from artifacts_client.transport import GraphQLTransport, download_opener

__all__ = ["MAX_PAGE", "Client", "JobRef"]

JobRef = Job | str
"""A job, or its id (``job-202009250153-34s0ti``)."""

MAX_PAGE = 200
"""The API's largest ``phJobs`` page; longer listings are read page by page."""

_TRANSIENT = (ConnectionFailed, Unavailable)


def _job_id(job: JobRef) -> str:
    return job.id if isinstance(job, Job) else str(job)


def _display_name(command: str) -> str:
    first = command.strip().splitlines()[0] if command.strip() else "job"
    return first if len(first) <= 60 else f"{first[:59]}…"


class Client:
    """A connection to one API as one caller.

    ``url`` and ``token`` default to ``JOBARTIFACTS_API_URL`` (else ``make run``'s
    http://127.0.0.1:8080) and ``JOBARTIFACTS_TOKEN`` / ``JOBARTIFACTS_TOKEN_FILE`` (else
    no token, which the dev stack accepts). ``timeout`` bounds each HTTP request;
    ``workers`` is how many files ``download_artifacts`` fetches at once.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        workers: int = 4,
    ) -> None:
        self._transport = GraphQLTransport(
            config.api_url(url), token=config.token(token), timeout=timeout
        )
        self._opener = download_opener()
        self.timeout = timeout
        self.workers = workers

    @property
    def url(self) -> str:
        """The GraphQL endpoint this client talks to."""
        return self._transport.url

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def _execute(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._transport.execute(query, variables)

    # Jobs

    def jobs(
        self,
        limit: int = 20,
        group: str | None = None,
        *,
        phase: JobPhase | str | None = None,
        user: str | None = None,
    ) -> list[Job]:
        """The newest ``limit`` jobs the caller may see, newest first, optionally filtered."""
        if limit < 1:
            raise ValueError(f"limit must be a positive integer, got {limit}")
        where: dict[str, Any] = {}
        if group is not None:
            where["groupName"] = group
        if phase is not None:
            where["phase"] = JobPhase(phase).value
        if user is not None:
            where["userName"] = user
        found: list[Job] = []
        after: str | None = None
        while len(found) < limit:
            data = self._execute(
                queries.JOBS,
                {
                    "where": where or None,
                    "first": min(MAX_PAGE, limit - len(found)),
                    "after": after,
                },
            )
            page = data["phJobs"]
            found.extend(Job.from_graphql(node) for node in page["nodes"])
            after = page["pageInfo"]["endCursor"]
            if not page["pageInfo"]["hasNextPage"] or not page["nodes"] or after is None:
                break
        return found[:limit]

    def job(self, job: JobRef) -> Job:
        """The job as it is now (``NotFound``, ``Forbidden`` or ``BadUserInput`` if not)."""
        job_id = _job_id(job)
        data = self._execute(queries.JOB, {"id": job_id})
        if data.get("phJob") is None:
            raise NotFound(f"there is no job {job_id}", code="NOT_FOUND")
        return Job.from_graphql(data["phJob"])

    def is_done(self, job: JobRef) -> bool:
        """Whether the job has ended (Succeeded, Failed or Cancelled).

        A ``Job`` is a snapshot and is judged as it was; an id is looked up first.
        """
        return (job if isinstance(job, Job) else self.job(job)).done

    def wait_job(
        self,
        job: JobRef,
        *,
        interval: float = 5.0,
        timeout: float | None = None,
        on_change: Callable[[Job], None] | None = None,
    ) -> Job:
        """Poll every ``interval`` seconds until the job has ended; return it then.

        Raises ``WaitTimeout`` (its ``last`` is the job as last seen) after ``timeout``
        seconds. Once the job has been seen, a poll that fails because the API or its
        storage is briefly unavailable is skipped, not fatal. ``on_change`` is called
        with the job when it is first seen and whenever its phase changes.
        """
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        deadline = None if timeout is None else time.monotonic() + timeout
        current = self.job(job)
        if on_change is not None:
            on_change(current)
        while not current.done:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise WaitTimeout(
                    f"job {current.id} is still {current.phase} after {timeout:g} s",
                    last=current,
                )
            time.sleep(interval if remaining is None else min(interval, remaining))
            try:
                polled = self.job(current.id)
            except _TRANSIENT:
                continue
            if on_change is not None and polled.phase != current.phase:
                on_change(polled)
            current = polled
        return current

    def create_job(
        self,
        command: str,
        *,
        group: str,
        name: str | None = None,
        image: str | None = None,
        retention_seconds: int | None = None,
        inputs: Sequence[InputArtifact | str] = (),
    ) -> Job:
        """Submit ``command`` (run with bash in the job's home; ``./artifacts`` is collected).

        ``name`` defaults to the command's first line; ``retention_seconds`` to the
        platform's artifact retention (0, keep until deleted by hand, is for admins).
        ``inputs``: other jobs' artifacts to place under ``~/inputs/<job>/`` before the
        command starts, each an ``InputArtifact`` or ``"JOB"`` / ``"JOB:PATH"`` (a file or a
        folder of that job's artifacts); the caller must be allowed to read those jobs.
        """
        data: dict[str, Any] = {
            "displayName": name or _display_name(command),
            "groupName": group,
            "command": command,
        }
        if image is not None:
            data["image"] = image
        if retention_seconds is not None:
            data["artifactRetentionSeconds"] = retention_seconds
        if inputs:
            data["inputArtifacts"] = [
                (InputArtifact.parse(item) if isinstance(item, str) else item).to_graphql()
                for item in inputs
            ]
        return Job.from_graphql(self._execute(queries.CREATE_JOB, {"data": data})["createPhJob"])

    def cancel_job(self, job: JobRef) -> Job:
        """Ask for the job to be stopped; it ends Cancelled once the controller has stopped it."""
        result = self._execute(queries.CANCEL_JOB, {"id": _job_id(job)})
        return Job.from_graphql(result["cancelPhJob"])

    # Logs

    def logs(
        self, job: JobRef, *, follow: bool = False, tail: int | None = None
    ) -> Iterator[bytes]:
        """The job's log as the job wrote it, in chunks: all of it, or its last ``tail``
        lines; with ``follow``, then each line as it is written, until the job has ended.

        The log is read from the job's runtime while it runs and from the copy kept with
        its artifacts afterwards; ``NotFound`` once that has expired. Like PrimeHub's
        ``jobs.logs``, but the token goes to this client's API only.
        """
        if tail is not None and tail < 0:
            raise ValueError(f"tail must be 0 or more, got {tail}")
        params = {"follow": "true" if follow else "false"}
        if tail is not None:
            params["tailLines"] = str(tail)
        # A followed job may be silent for hours: no deadline on each read then.
        return self._transport.stream(
            f"/jobs/{_job_id(job)}/logs", params, timeout=None if follow else self.timeout
        )

    def job_logs(self, job: JobRef, offset: int | None = None, limit: int = 1000) -> LogPage:
        """Lines ``offset`` to ``offset + limit - 1`` of the job's log (0-based), or its last
        ``limit`` lines when ``offset`` is None (JuliaHub.jl's ``job_logs``); at most 5000."""
        job_id = _job_id(job)
        data = self._execute(queries.LOGS, {"id": job_id, "offset": offset, "limit": limit})
        page = (data.get("phJob") or {}).get("logs")
        if page is None:
            raise NotFound(f"there is no job {job_id}", code="NOT_FOUND")
        return LogPage.from_graphql(job_id, page)

    # Artifacts

    def artifact_folder(self, job: JobRef) -> ArtifactFolder:
        """The job's artifact folder: files with fresh download links, expiry, skip reason."""
        job_id = _job_id(job)
        data = self._execute(queries.ARTIFACTS, {"id": job_id})
        if data.get("phJob") is None:
            raise NotFound(f"there is no job {job_id}", code="NOT_FOUND")
        return ArtifactFolder.from_graphql(job_id, data["phJob"]["artifact"])

    def retention(self, job: JobRef) -> Retention:
        """Why the job's artifacts are kept or when they go, and who last changed that."""
        job_id = _job_id(job)
        data = self._execute(queries.RETENTION, {"id": job_id})
        if data.get("phJob") is None:
            raise NotFound(f"there is no job {job_id}", code="NOT_FOUND")
        return Retention.from_graphql(job_id, data["phJob"]["artifact"]["retention"])

    def set_artifact_expiry(self, job: JobRef, expired_at: datetime | None) -> Retention:
        """A new expiry for the job's artifacts; None keeps them until deleted (admins only).

        Members of the job's group may move it anywhere from now to the API's
        ARTIFACT_MAX_RETENTION_SECONDS (90 days by default) after now.
        """
        job_id = _job_id(job)
        if expired_at is not None and expired_at.tzinfo is None:
            raise ValueError("expired_at needs a time zone, e.g. datetime.now(UTC)")
        at = expired_at.isoformat() if expired_at is not None else None
        data = self._execute(queries.SET_EXPIRY, {"id": job_id, "expiredAt": at})
        return Retention.from_graphql(job_id, data["setPhJobArtifactExpiry"]["retention"])

    def keep_artifacts(self, job: JobRef) -> Retention:
        """Keep the job's artifacts until they are deleted by hand (admins only)."""
        return self.set_artifact_expiry(job, None)

    def extend_artifacts(self, job: JobRef, *, days: float = 7) -> Retention:
        """Move the expiry ``days`` later: from the current expiry when it lies ahead, else now."""
        if days <= 0:
            raise ValueError(f"days must be above 0, got {days}")
        current = self.retention(job).expired_at
        now = datetime.now(UTC)
        base = current if current is not None and current > now else now
        return self.set_artifact_expiry(job, base + timedelta(days=days))

    def delete_artifacts(self, job: JobRef) -> bool:
        """Delete the job's artifacts now; False when nothing was stored."""
        data = self._execute(queries.DELETE_ARTIFACTS, {"id": _job_id(job)})
        return bool(data["deletePhJobArtifact"])

    def artifacts(self, job: JobRef) -> list[Artifact]:
        """The job's artifact files in path order; empty when nothing was collected (yet)."""
        return self.artifact_folder(job).items

    def artifact(self, job: JobRef, name: str) -> Artifact:
        """One artifact file by its relative path, with a fresh download link."""
        job_id = _job_id(job)
        data = self._execute(queries.ARTIFACT, {"id": job_id, "name": name})
        folder = (data.get("phJob") or {}).get("artifact") or {}
        item = folder.get("item")
        if item is None:
            raise NotFound(f"job {job_id} has no artifact {name!r}", code="NOT_FOUND")
        return Artifact.from_graphql(job_id, item)

    def download_artifact(
        self,
        job: JobRef,
        name: str | Artifact,
        dest: str | Path = ".",
        *,
        overwrite: bool = False,
    ) -> Download:
        """Download one file, verified (size, and sha256 when known), written atomically.

        ``dest`` is the file to write, or an existing folder (or one written with a
        trailing ``/``) to put the file in under its relative name, e.g. ``dest/sub/a.txt``.
        An existing file is kept unless ``overwrite``: ``ArtifactExistsError``.
        """
        artifact = name if isinstance(name, Artifact) else self.artifact(job, name)
        dest_str = str(dest)
        if Path(dest).is_dir() or dest_str.endswith(("/", "\\")):
            target = target_path(dest, artifact.name)
        else:
            target = Path(dest)
        return fetch_artifact(
            artifact,
            target,
            overwrite=overwrite,
            opener=self._opener,
            timeout=max(self.timeout, 60.0),
            refresh=lambda: self.artifact(job, artifact.name),
        )

    def download_artifacts(
        self,
        job: JobRef,
        dest_dir: str | Path = ".",
        *,
        names: Iterable[str] | None = None,
        overwrite: bool = False,
        workers: int | None = None,
        progress: bool | Progress = True,
    ) -> list[Download]:
        """Download the job's files (or only ``names``) into ``dest_dir``, in parallel.

        Each file goes to ``dest_dir/<its relative name>`` and is verified like
        ``download_artifact``. Everything is checked before the first byte is fetched:
        unknown names (``NotFound``), names that would leave ``dest_dir``
        (``UnsafeNameError``) and, without ``overwrite``, files already there
        (``ArtifactExistsError``). ``progress``: a bar on stderr (True), none (False),
        or any ``Progress``.
        """
        folder = self.artifact_folder(job)
        chosen = self._choose(folder, names)
        plan = [(artifact, target_path(dest_dir, artifact.name)) for artifact in chosen]
        if not overwrite:
            existing = [str(target) for _, target in plan if target.exists() or target.is_symlink()]
            if existing:
                more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
                raise ArtifactExistsError(
                    f"{existing[0]}{more} exist; pass overwrite=True (--overwrite) to replace"
                )
        if progress is True:
            bar: Progress = ProgressBar(sys.stderr)
        elif progress is False:
            bar = NoProgress()
        else:
            bar = progress

        def fetch(
            artifact: Artifact, target: Path, advance: Callable[[int], None], stop: threading.Event
        ) -> Download:
            return fetch_artifact(
                artifact,
                target,
                overwrite=overwrite,
                opener=self._opener,
                timeout=max(self.timeout, 60.0),
                advance=advance,
                refresh=lambda: self.artifact(folder.job_id, artifact.name),
                stop=stop,
            )

        return download_many(plan, fetch, workers=workers or self.workers, progress=bar)

    @staticmethod
    def _choose(folder: ArtifactFolder, names: Iterable[str] | None) -> Sequence[Artifact]:
        if names is None:
            return folder.items
        wanted = list(dict.fromkeys(names))
        by_name = {artifact.name: artifact for artifact in folder.items}
        missing = [name for name in wanted if name not in by_name]
        if missing:
            listed = ", ".join(repr(name) for name in missing)
            raise NotFound(f"job {folder.job_id} has no artifact {listed}", code="NOT_FOUND")
        return [by_name[name] for name in wanted]

    # Cleanup (admins)

    def cleanup_run(self, run_id: str) -> CleanupRun:
        """A cleanup run's state, and its result once it has finished."""
        data = self._execute(queries.CLEANUP_RUN, {"id": run_id})
        if data.get("phJobArtifactCleanup") is None:
            raise NotFound(f"there is no cleanup run {run_id}", code="NOT_FOUND")
        return CleanupRun.from_graphql(data["phJobArtifactCleanup"])

    def cleanup(
        self,
        *,
        rescan: bool = False,
        wait: bool = False,
        interval: float = 1.0,
        timeout: float | None = None,
    ) -> CleanupRun:
        """Run the janitor's expiry cleanup now (admins; others get ``Forbidden``).

        Returns the queued run (or the one already queued or running); with ``wait``,
        polls until it is COMPLETE or FAILED, ``WaitTimeout`` after ``timeout`` seconds.
        ``rescan`` also asks for a scan of every job folder into the expiry index, which
        the next run to start makes (the result's ``rescanned`` says whether this one did).
        """
        data = self._execute(queries.CLEANUP, {"rescan": rescan})
        run_id = data.get("cleanupPhJobArtifact")
        if not isinstance(run_id, str):
            raise ProtocolError("cleanupPhJobArtifact returned no run id")
        run = self.cleanup_run(run_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        while wait and not run.done:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise WaitTimeout(
                    f"cleanup run {run.id} is still {run.state} after {timeout:g} s", last=run
                )
            time.sleep(interval if remaining is None else min(interval, remaining))
            run = self.cleanup_run(run_id)
        return run
