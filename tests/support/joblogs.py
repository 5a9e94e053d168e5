"""Job logs where the api reads them: the local runtime's file, and the copy in the bucket.

``runtime_log`` writes ``LOCAL_RUNTIME_DIR/<job>/job.log`` as the local runtime does;
``archive_log`` puts ``.primehub/metadata/job.log`` (and, like every delivery, ``expiredAt``
last) where the job's collection delivers it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from artifacts_shared.expiry import format_expired_at
from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.layout import expired_at_key, job_log_key, job_prefix
from artifacts_shared.phjob import PhJobPhase, PhJobStatus
from artifacts_shared.s3 import S3Client
from artifacts_shared.settings import LocalRuntimeSettings


def runtime_log(runtime: LocalRuntimeSettings, job_id: str, data: bytes = b"") -> Path:
    path = runtime.local_job_log(job_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as log:
        log.write(data)


def finish(
    store: LocalJobStore,
    job_id: str,
    *,
    phase: PhJobPhase = PhJobPhase.SUCCEEDED,
    ago: timedelta = timedelta(0),
) -> None:
    """Write the job's end, as the controller does once its artifacts are delivered."""
    ended = datetime.now(UTC) - ago
    store.write_status(
        job_id,
        PhJobStatus(phase=phase, start_time=ended - timedelta(seconds=1), finish_time=ended),
    )


async def archive_log(
    s3: S3Client,
    bucket: str,
    job_id: str,
    data: bytes,
    *,
    group: str = "team-a",
    expired_at: float | None,
) -> None:
    prefix = job_prefix(group, job_id)
    await s3.put_object(Bucket=bucket, Key=job_log_key(prefix), Body=data)
    if expired_at is not None:
        await s3.put_object(
            Bucket=bucket,
            Key=expired_at_key(prefix),
            Body=format_expired_at(int(expired_at)).encode(),
        )
