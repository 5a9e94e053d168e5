"""The seed job's artifacts as a delivery leaves them in the bucket, for tests of their readers.

The acceptance story's job (``test.txt`` and ``sub/test.txt``, ``hello\\n`` each) with
its ``manifest.json`` (true sizes and sha256) and ``expiredAt``, written in the
delivery's order: files, manifest, expiry last.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from artifacts_shared.layout import JobPrefix, job_prefix
from artifacts_shared.manifest import Manifest, ManifestFile, ManifestLimits
from artifacts_shared.metadata_store import write_expired_at, write_manifest
from artifacts_shared.s3 import S3Client

HELLO = b"hello\n"
SEED_FILES: Mapping[str, bytes] = {"test.txt": HELLO, "sub/test.txt": HELLO}


async def deliver_seed(
    s3: S3Client,
    bucket: str,
    job_id: str,
    *,
    group: str = "team-a",
    files: Mapping[str, bytes] = SEED_FILES,
    expired_at: int | None = None,
) -> JobPrefix:
    """``files`` delivered for ``job_id``; ``expired_at`` defaults to a day from now."""
    prefix = job_prefix(group, job_id)
    for name, body in files.items():
        await s3.put_object(Bucket=bucket, Key=f"{prefix}{name}", Body=body)
    expiry = int(time.time()) + 86_400 if expired_at is None else expired_at
    manifest = Manifest(
        job=job_id,
        group=group,
        collected_at=datetime.now(UTC),
        expired_at=expiry,
        file_count=len(files),
        total_size=sum(len(body) for body in files.values()),
        limits=ManifestLimits(size_mb=100, files=1000),
        files=[
            ManifestFile(name=name, size=len(body), sha256=hashlib.sha256(body).hexdigest())
            for name, body in sorted(files.items())
        ],
    )
    await write_manifest(s3, bucket, prefix, manifest)
    await write_expired_at(s3, bucket, prefix, expiry)
    return prefix
