"""Property: over random layouts, expiries and clocks, the run deletes exactly what expired.

Nothing unexpired, unreadable or outside a job folder is ever deleted; everything under
an expired job folder is. Each example gets a bucket of its own on the real S3 server.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.buckets import put_objects, snapshot
from support.folders import FixedClock, folder

from artifacts_janitor.cleanup import CleanupOptions, run_cleanup
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
)
STRAYS = [
    "groups/g/jobArtifactsOld/job-a/.primehub/metadata/expiredAt",
    "groups/g/jobArtifacts-x/job-a/.primehub/metadata/expiredAt",
    "groups/g/jobArtifacts/loose-file",
    "groups/g/notebooks/job-a/.primehub/metadata/expiredAt",
    "elsewhere/groups/g/jobArtifacts/job-a/.primehub/metadata/expiredAt",
]


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    layout=st.lists(folders, min_size=1, max_size=5, unique_by=lambda f: (f.group.lower(), f.job)),
    strays=st.lists(st.sampled_from(STRAYS), unique=True),
    now=st.integers(1_000_000_000, 4_000_000_000),
)
async def test_only_and_all_expired_job_folders_are_deleted(
    s3: S3Client, layout: list[Folder], strays: list[str], now: int
) -> None:
    bucket = f"prop-{uuid.uuid4().hex[:16]}"
    await s3.create_bucket(Bucket=bucket)
    objects = {key: b"1" for key in strays}
    expected: dict[str, bool] = {}
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
        expected |= {key: spec.should_go(now) for key in folder_objects}
    await put_objects(s3, bucket, objects)

    result = await run_cleanup(
        s3=s3, bucket=bucket, clock=FixedClock(now), run_id="prop", options=CleanupOptions()
    )

    left = set(await snapshot(s3, bucket))
    assert left == {key for key in objects if not expected.get(key, False)}
    assert result.folders_deleted == sum(spec.should_go(now) for spec in layout)
    assert result.folders_failed == 0
