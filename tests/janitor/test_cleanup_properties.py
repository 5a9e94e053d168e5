"""Property: over random layouts, expiries, clocks and expiry indexes, nothing unexpired goes.

Each example gets a bucket of its own on the real S3 server and an empty Redis, then an
index made at random: entries for some folders, with scores before or after "now" that
need not match their ``expiredAt``, and forged entries naming prefixes outside any job
folder. A run that rescans deletes exactly the expired job folders; a run from the index
alone deletes exactly those expired ones the index had due. Nothing unexpired, unreadable
or outside a job folder is ever deleted, whatever the index says.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from support.buckets import put_objects, snapshot
from support.folders import FixedClock, folder
from support.servers import S3Server

from artifacts_janitor.cleanup import CleanupOptions, run_cleanup
from artifacts_janitor.rescan import RESCAN_RECORD_KEY
from artifacts_shared.expiry_index import EXPIRY_INDEX_KEY
from artifacts_shared.layout import job_prefix
from artifacts_shared.s3 import S3Client


@dataclass(frozen=True)
class Expiry:
    ours: bytes | None
    legacy: bytes | None


@dataclass(frozen=True)
class Folder:
    group: str
    job: str
    files: tuple[str, ...]
    expiry_delta: tuple[int | None, int | None]
    garbage: bytes | None
    indexed_delta: int | None
    """Where the index puts this folder relative to "now"; None: not indexed."""

    def expiry(self, now: int) -> Expiry:
        ours, legacy = (None if d is None else str(now + d).encode() for d in self.expiry_delta)
        return Expiry(self.garbage if self.garbage is not None else ours, legacy)

    def should_go(self, now: int) -> bool:
        expiry = self.expiry(now)
        decisive = expiry.ours if expiry.ours is not None else expiry.legacy
        return decisive is not None and decisive.strip().isdigit() and int(decisive) <= now


deltas = st.one_of(st.sampled_from([-1, 0, 1]), st.integers(-(10**7), 10**7))
folders = st.builds(
    Folder,
    group=st.sampled_from(["g", "ML_Team", "team-b"]),
    job=st.from_regex(r"job-[a-z0-9]{1,4}", fullmatch=True),
    files=st.lists(
        st.sampled_from(["a.txt", "sub/b.txt", ".hidden", "with space", "ünï", "d/e/f"]),
        min_size=1,
        max_size=3,
        unique=True,
    ).map(tuple),
    expiry_delta=st.tuples(st.none() | deltas, st.none() | deltas),
    garbage=st.none() | st.sampled_from([b"", b"soon", b"-1", b"1.5", b"9" * 70]),
    indexed_delta=st.none() | deltas,
)
STRAYS = [
    "groups/g/jobArtifactsOld/job-a/.primehub/metadata/expiredAt",
    "groups/g/jobArtifacts-x/job-a/.primehub/metadata/expiredAt",
    "groups/g/jobArtifacts/loose-file",
    "groups/g/notebooks/job-a/.primehub/metadata/expiredAt",
    "elsewhere/groups/g/jobArtifacts/job-a/.primehub/metadata/expiredAt",
]
FORGED = [
    "groups/",
    "groups/g/",
    "groups/g/jobArtifacts/",
    "groups/g/jobArtifactsOld/job-a/",
    "groups/g/notebooks/job-a/",
    "elsewhere/groups/g/jobArtifacts/job-a/",
    "groups/g/jobArtifacts/../jobArtifactsOld/job-a/",
    "groups/g/jobArtifacts/job-a/.primehub/",
    "",
]


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    layout=st.lists(folders, min_size=1, max_size=5, unique_by=lambda f: (f.group.lower(), f.job)),
    strays=st.lists(st.sampled_from(STRAYS), unique=True),
    forged=st.lists(st.sampled_from(FORGED), unique=True),
    rescan=st.booleans(),
    now=st.integers(1_000_000_000, 4_000_000_000),
)
async def test_nothing_unexpired_is_deleted_whatever_the_index_says(
    s3: S3Client,
    s3_server: S3Server,
    redis: Redis,
    layout: list[Folder],
    strays: list[str],
    forged: list[str],
    rescan: bool,
    now: int,
) -> None:
    bucket = f"prop-{uuid.uuid4().hex[:16]}"
    s3_server.create_bucket(bucket)
    await redis.flushdb()
    try:
        objects = {key: b"1" for key in strays}
        goes: dict[str, bool] = {}
        index: dict[str, int] = {prefix: now - 1 for prefix in forged}
        for spec in layout:
            expiry = spec.expiry(now)
            _, folder_objects = folder(
                spec.group,
                spec.job,
                {name: name.encode() for name in spec.files},
                expired_at=expiry.ours,
                legacy_expired_at=expiry.legacy,
            )
            objects |= folder_objects
            due = spec.indexed_delta is not None and spec.indexed_delta <= 0
            goes |= {key: spec.should_go(now) and (rescan or due) for key in folder_objects}
            if spec.indexed_delta is not None:
                index[job_prefix(spec.group, spec.job)] = now + spec.indexed_delta
        await put_objects(s3, bucket, objects)
        if index:
            await redis.zadd(EXPIRY_INDEX_KEY, index)
        if not rescan:  # one ran a moment ago, so this run works from the index alone
            record = {"finishedAt": now - 60, "scanned": 0, "found": 0}
            await redis.set(RESCAN_RECORD_KEY, json.dumps(record))

        result = await run_cleanup(
            s3=s3,
            bucket=bucket,
            redis=redis,
            clock=FixedClock(now),
            run_id="prop",
            options=CleanupOptions(),
            rescan_now=rescan,
        )

        left = set(await snapshot(s3, bucket))
        assert left == {key for key in objects if not goes.get(key, False)}
        assert result.folders_failed == 0
        for spec in layout:
            entry = await redis.zscore(EXPIRY_INDEX_KEY, job_prefix(spec.group, spec.job))
            if spec.should_go(now) and (rescan or entry is None):
                continue  # deleted, and its entry with it (or it never had one)
            written = spec.expiry(now)
            expiry = written.ours if written.ours is not None else written.legacy
            if entry is not None and entry <= now:
                # Still due after the run: only a folder that goes keeps a due entry away.
                raise AssertionError(f"{spec} left due in the index at {entry}")
            if rescan and expiry is not None and expiry.isdigit() and len(expiry) <= 64:
                assert entry == int(expiry), f"{spec}: the rescan indexed it at {entry}"
        for prefix in forged:
            assert await redis.zscore(EXPIRY_INDEX_KEY, prefix) is None
    finally:
        s3_server.delete_bucket(bucket)
