"""The janitor's cleanup run against a hand-written DeleteObjects loop, side by side.

Layout (ISSUE 6): 2,000 expired job folders of 10 objects (8 artifacts of 100 bytes,
``manifest.json``, ``expiredAt``) among 2,000 unexpired ones of the same shape, in four
groups, expired and unexpired interleaved. ``BENCH_QUICK=1``: 200 among 200.

Measured on the same moto server (its own process), each on freshly loaded data:

- **ours**: ``run_cleanup`` with the rescan (issue 19: what every run did before the
  expiry index, and the daily run's cost on a Redis that lost its index), in this
  process: enumerate the job folders, read every ``expiredAt`` into the index, list each
  expired folder and delete it in order (artifacts, metadata, ``expiredAt``).
  ``bench_expiry.py`` measures the daily run from the index.
- **floor**: a minimal loop that is *handed* the 20,000 keys and deletes them with
  ``DeleteObjects``, 1,000 a request: the least any janitor could spend deleting them.
- **bare loop**: the same job written plainly, as concurrent as ours: list the folders,
  read each ``expiredAt``, list each expired folder and ``DeleteObjects`` its keys, with
  no ordering, no batching across folders and no report.
- **discovery**: our run as a dry run: the listings and ``expiredAt`` reads alone, which
  the floor is spared.

Reported: the ratio ours/floor, objects deleted a second, requests by kind, and the
benchmark process's peak RSS during our run (and during a run ten times smaller, to
show memory does not grow with the objects).
"""

from __future__ import annotations

import asyncio
import resource
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from common import QUICK, Figures, write_section
from servers import MotoServer
from support.servers import RedisServer

from artifacts_janitor.cleanup import CleanupOptions, run_cleanup
from artifacts_janitor.clock import SystemClock
from artifacts_shared.cleanup_result import CleanupResult
from artifacts_shared.layout import expired_at_key, job_prefix, manifest_key
from artifacts_shared.s3 import S3Client, open_s3
from artifacts_shared.settings import S3Settings

EXPIRED = 200 if QUICK else 2_000
UNEXPIRED = EXPIRED
GROUPS = 4
FILES = 8  # + manifest.json + expiredAt = 10 objects a folder
REPEAT = 3 if QUICK else 1  # a full repetition takes minutes of moto time
CONCURRENCY = 16  # JANITOR_CONCURRENCY's default


@dataclass(frozen=True)
class Layout:
    objects: list[tuple[str, str]]
    doomed: list[str]
    """The keys of the expired folders: what the floor is handed."""


def make_layout(expired: int, unexpired: int) -> Layout:
    now = int(time.time())
    objects: list[tuple[str, str]] = []
    doomed: list[str] = []
    for i in range(expired + unexpired):
        is_expired = i % 2 == 0 if i < 2 * min(expired, unexpired) else expired > unexpired
        prefix = job_prefix(f"group-{i % GROUPS}", f"job-{i:06}")
        folder = [(f"{prefix}file-{n}.txt", "x" * 100) for n in range(FILES)]
        folder.append((manifest_key(prefix), '{"version": 1}'))
        expiry = now - 3600 if is_expired else now + 86_400
        folder.append((expired_at_key(prefix), str(expiry)))
        objects += folder
        if is_expired:
            doomed += [key for key, _ in folder]
    return Layout(objects, doomed)


@contextmanager
def peak_rss() -> Iterator[dict[str, int]]:
    """The process's RSS before the block and its peak during it, sampled every 10 ms."""
    process = psutil.Process()
    figures = {"before": process.memory_info().rss, "peak": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            figures["peak"] = max(figures["peak"], process.memory_info().rss)
            done.wait(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield figures
    finally:
        done.set()
        sampler.join()


@dataclass
class Requests:
    """Requests by operation, with the time each waited for its answer."""

    count: Counter[str] = field(default_factory=Counter)
    seconds: Counter[str] = field(default_factory=Counter)

    def __str__(self) -> str:
        return ", ".join(
            f"{name} {n:,} (mean {1000 * self.seconds[name] / n:.0f} ms)"
            for name, n in sorted(self.count.items())
        )


@contextmanager
def counted_requests(s3: S3Client) -> Iterator[Requests]:
    requests = Requests()

    def before(model: Any, context: dict[str, Any], **_: Any) -> None:
        context["bench_sent"] = time.perf_counter()

    def after(model: Any, context: dict[str, Any], **_: Any) -> None:
        requests.count[model.name] += 1
        requests.seconds[model.name] += time.perf_counter() - context["bench_sent"]

    s3.meta.events.register("before-call.s3", before)
    s3.meta.events.register("after-call.s3", after)
    try:
        yield requests
    finally:
        s3.meta.events.unregister("before-call.s3", before)
        s3.meta.events.unregister("after-call.s3", after)


async def fresh_bucket(server: MotoServer, s3: S3Client, layout: Layout) -> str:
    bucket = f"bench-{uuid.uuid4().hex[:12]}"
    await s3.create_bucket(Bucket=bucket)
    server.seed_objects(bucket, layout.objects)
    return bucket


async def ours(s3: S3Client, redis: Redis, bucket: str, *, dry_run: bool = False) -> CleanupResult:
    await redis.flushall()  # each run on a new bucket, with an index of its own
    return await run_cleanup(
        s3=s3,
        bucket=bucket,
        redis=redis,
        clock=SystemClock(),
        run_id="bench",
        options=CleanupOptions(dry_run=dry_run, concurrency=CONCURRENCY),
        rescan_now=True,
    )


async def bare_loop(s3: S3Client, bucket: str) -> None:
    """The same job written plainly: no ordering, no batching across folders, no report."""
    lister = s3.get_paginator("list_objects_v2")
    folders = [
        item["Prefix"]
        async for group_page in lister.paginate(Bucket=bucket, Prefix="groups/", Delimiter="/")
        for group in group_page.get("CommonPrefixes", [])
        async for page in lister.paginate(
            Bucket=bucket, Prefix=f"{group['Prefix']}jobArtifacts/", Delimiter="/"
        )
        for item in page.get("CommonPrefixes", [])
    ]
    gate = asyncio.Semaphore(CONCURRENCY)
    now = time.time()

    async def clean(prefix: str) -> None:
        async with gate:
            response = await s3.get_object(
                Bucket=bucket, Key=f"{prefix}.primehub/metadata/expiredAt"
            )
            if int(await response["Body"].read()) > now:
                return
            keys = [
                {"Key": item["Key"]}
                async for page in lister.paginate(Bucket=bucket, Prefix=prefix)
                for item in page.get("Contents", [])
            ]
            for start in range(0, len(keys), 1000):
                await s3.delete_objects(
                    Bucket=bucket, Delete={"Objects": keys[start : start + 1000], "Quiet": True}
                )

    await asyncio.gather(*(clean(prefix) for prefix in folders))


async def floor(s3: S3Client, bucket: str, keys: list[str]) -> None:
    for start in range(0, len(keys), 1000):
        batch = [{"Key": key} for key in keys[start : start + 1000]]
        await s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})


async def measure(server: MotoServer, s3: S3Client, redis: Redis, layout: Layout) -> dict[str, Any]:
    samples: dict[str, list[float]] = {"ours": [], "floor": [], "discovery": [], "bare": []}
    requests = Requests()
    rss = {"before": 0, "peak": 0}
    for repetition in range(REPEAT):
        print(f"bench: repetition {repetition + 1} of {REPEAT}", file=sys.stderr, flush=True)
        bucket = await fresh_bucket(server, s3, layout)
        began = time.perf_counter()
        await ours(s3, redis, bucket, dry_run=True)
        samples["discovery"].append(time.perf_counter() - began)
        with counted_requests(s3) as counts, peak_rss() as run_rss:
            began = time.perf_counter()
            result = await ours(s3, redis, bucket)
            samples["ours"].append(time.perf_counter() - began)
        requests, rss = counts, run_rss
        assert result.objects_deleted == len(layout.doomed), result
        assert result.folders_failed == 0 and result.folders_unexpired == UNEXPIRED
        bucket = await fresh_bucket(server, s3, layout)
        began = time.perf_counter()
        await floor(s3, bucket, layout.doomed)
        samples["floor"].append(time.perf_counter() - began)
        bucket = await fresh_bucket(server, s3, layout)
        began = time.perf_counter()
        await bare_loop(s3, bucket)
        samples["bare"].append(time.perf_counter() - began)
    return {"samples": samples, "requests": requests, "rss": rss}


_WHY = """
Why the floor is out of reach: it is handed the 20,000 keys. A janitor has to find them,
reading every job folder's `expiredAt` (4,000 GETs) and listing each expired folder
(2,000 LISTs); the dry run, which does only that, takes nearly the whole run, and moto
answers each listing by scanning its whole bucket (the mean LIST above). Deleting, with
its order and shared batches, adds a few seconds on top; the bare loop, which finds the
same way without ordering or batching, is slower than ours. Getting near the floor needs
not reading what has not expired: the expiry index of ARCHITECTURE section 10.
"""


def mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


async def main() -> None:
    server = MotoServer().start()
    redis_server = RedisServer().start()
    settings = S3Settings(
        s3_endpoint_url=server.url,
        s3_access_key_id="bench",
        s3_secret_access_key="bench",  # type: ignore[arg-type]
        phfs_bucket="unused",
    )
    try:
        # moto's threaded server can fail a listing that runs while another request
        # deletes (a dict changing size under its iteration): retry more than usual.
        async with (
            open_s3(settings, max_connections=2 * CONCURRENCY + 8, max_attempts=10) as s3,
            Redis.from_url(redis_server.url) as redis,
        ):
            small = make_layout(EXPIRED // 10, UNEXPIRED // 10)
            warm = await fresh_bucket(server, s3, small)  # warm-up: imports, connections
            with peak_rss() as small_rss:
                await ours(s3, redis, warm)
            layout = make_layout(EXPIRED, UNEXPIRED)
            figures = await measure(server, s3, redis, layout)
    finally:
        redis_server.stop()
        server.stop()
    report(figures, small_rss, len(small.doomed), len(layout.doomed))


def report(figures: dict[str, Any], small_rss: dict[str, int], small: int, doomed: int) -> None:
    ours_f, floor_f, discovery_f, bare_f = (
        Figures(figures["samples"][name]) for name in ("ours", "floor", "discovery", "bare")
    )
    rss, requests = figures["rss"], figures["requests"]
    ratio = ours_f.median / floor_f.median
    lines = [
        "## Janitor: cleanup run vs a hand-written DeleteObjects loop",
        "",
        f"{EXPIRED:,} expired job folders x 10 objects among {UNEXPIRED:,} unexpired ones "
        f"({GROUPS} groups, moto in its own process, concurrency {CONCURRENCY}), "
        f"{REPEAT} repetitions on freshly loaded data after a warm-up"
        + (" (BENCH_QUICK: small sizes)" if QUICK else "")
        + ".",
        "",
        "| run | time | objects/s |",
        "|---|---|---|",
        f"| ours: `run_cleanup` | {ours_f} | {doomed / ours_f.median:,.0f} |",
        f"| floor: keys handed over, DeleteObjects x 1000 | {floor_f} "
        f"| {doomed / floor_f.median:,.0f} |",
        f"| bare loop: same finding, DeleteObjects a folder, no order | {bare_f} "
        f"| {doomed / bare_f.median:,.0f} |",
        f"| discovery alone: our dry run | {discovery_f} | — |",
        "",
        f"- **ratio ours / floor: {ratio:.2f}x** (goal ≤ 1.25x); "
        f"ours / bare loop: {ours_f.median / bare_f.median:.2f}x; "
        f"ours minus discovery: {ours_f.median - discovery_f.median:.2f} s for the deletes "
        f"against the floor's {floor_f.median:.2f} s.",
        f"- requests in our run: {requests} (the floor: DeleteObjects {-(-doomed // 1000)}).",
        f"- peak RSS of the benchmark process during our run: {mib(rss['peak'])} "
        f"(+{mib(rss['peak'] - rss['before'])} over its {mib(rss['before'])} before); "
        f"a run ten times smaller ({small:,} objects): "
        f"+{mib(small_rss['peak'] - small_rss['before'])}. "
        f"Process maximum RSS: {mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)}.",
        "",
        *_WHY.strip().splitlines(),
    ]
    write_section("janitor", "\n".join(lines))


if __name__ == "__main__":
    asyncio.run(main())
