"""The janitor's cleanup run against a hand-written DeleteObjects loop, side by side.

Layout (ISSUE 6): 1,000 expired job folders of 10 objects (8 artifacts of 100 bytes,
``manifest.json``, ``expiredAt``) among 1,000 unexpired ones of the same shape, in four
groups, expired and unexpired interleaved. ``BENCH_QUICK=1``: 100 among 100. (Issue 6 had
2,000 among 2,000; every object is now PUT over HTTP to a real server, and the 40,000 PUTs
that the three runs' data would take at that size did not fit `make bench`'s 20 minutes.)

Measured on the same SeaweedFS server (``weed mini``, its own process). The unexpired
folders are loaded once, since no run deletes them; the expired ones are loaded again
before each run, so each starts from the same bucket. The baselines run first and ours
last, so whatever a store's deleted entries cost later runs falls on ours:

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
from servers import SeaweedServer
from support.servers import RedisServer

from artifacts_janitor.cleanup import CleanupOptions, run_cleanup
from artifacts_janitor.clock import SystemClock
from artifacts_shared.cleanup_result import CleanupResult
from artifacts_shared.layout import expired_at_key, job_prefix, manifest_key
from artifacts_shared.s3 import S3Client, open_s3

EXPIRED = 100 if QUICK else 1_000
UNEXPIRED = EXPIRED
GROUPS = 4
FILES = 8  # + manifest.json + expiredAt = 10 objects a folder
REPEAT = 3 if QUICK else 1  # a full repetition loads 30,000 objects over HTTP
CONCURRENCY = 16  # JANITOR_CONCURRENCY's default


@dataclass(frozen=True)
class Layout:
    kept: list[tuple[str, str]]
    """The unexpired folders' objects, ``(key, body)``: no run deletes them."""
    doomed: list[tuple[str, str]]
    """The expired folders' objects: what every run deletes, and what the floor is handed."""

    @property
    def doomed_keys(self) -> list[str]:
        return [key for key, _ in self.doomed]


def make_layout(expired: int, unexpired: int) -> Layout:
    now = int(time.time())
    kept: list[tuple[str, str]] = []
    doomed: list[tuple[str, str]] = []
    for i in range(expired + unexpired):
        is_expired = i % 2 == 0 if i < 2 * min(expired, unexpired) else expired > unexpired
        prefix = job_prefix(f"group-{i % GROUPS}", f"job-{i:06}")
        folder = [(f"{prefix}file-{n}.txt", "x" * 100) for n in range(FILES)]
        folder.append((manifest_key(prefix), '{"version": 1}'))
        expiry = now - 3600 if is_expired else now + 86_400
        folder.append((expired_at_key(prefix), str(expiry)))
        (doomed if is_expired else kept).extend(folder)
    return Layout(kept, doomed)


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


async def loaded_bucket(server: SeaweedServer, s3: S3Client, layout: Layout) -> str:
    """A new bucket holding the whole layout."""
    bucket = f"bench-{uuid.uuid4().hex[:12]}"
    await s3.create_bucket(Bucket=bucket)
    server.seed_objects(bucket, layout.kept + layout.doomed)
    return bucket


async def ours(s3: S3Client, redis: Redis, bucket: str, *, dry_run: bool = False) -> CleanupResult:
    await redis.flushall()  # each run rescans, into an index of its own
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


@contextmanager
def cpu_of(process: psutil.Process, into: list[float]) -> Iterator[None]:
    """Append the CPU seconds ``process`` spends during the block to ``into``."""
    before = sum(process.cpu_times()[:2])
    try:
        yield
    finally:
        into.append(sum(process.cpu_times()[:2]) - before)


RUNS = ("ours", "floor", "bare", "discovery")


async def measure(
    server: SeaweedServer, s3: S3Client, redis: Redis, layout: Layout
) -> dict[str, Any]:
    samples: dict[str, list[float]] = {name: [] for name in RUNS}
    server_cpu: dict[str, list[float]] = {name: [] for name in RUNS}
    weed = psutil.Process(server.pid)
    requests = Requests()
    rss = {"before": 0, "peak": 0}
    bucket = f"bench-{uuid.uuid4().hex[:12]}"
    await s3.create_bucket(Bucket=bucket)
    server.seed_objects(bucket, layout.kept)
    for repetition in range(REPEAT):
        print(f"bench: repetition {repetition + 1} of {REPEAT}", file=sys.stderr, flush=True)
        server.seed_objects(bucket, layout.doomed)
        with cpu_of(weed, server_cpu["bare"]):
            began = time.perf_counter()
            await bare_loop(s3, bucket)
            samples["bare"].append(time.perf_counter() - began)
        server.seed_objects(bucket, layout.doomed)
        with cpu_of(weed, server_cpu["floor"]):
            began = time.perf_counter()
            await floor(s3, bucket, layout.doomed_keys)
            samples["floor"].append(time.perf_counter() - began)
        server.seed_objects(bucket, layout.doomed)
        with cpu_of(weed, server_cpu["discovery"]):
            began = time.perf_counter()
            await ours(s3, redis, bucket, dry_run=True)
            samples["discovery"].append(time.perf_counter() - began)
        with (
            counted_requests(s3) as counts,
            peak_rss() as run_rss,
            cpu_of(weed, server_cpu["ours"]),
        ):
            began = time.perf_counter()
            result = await ours(s3, redis, bucket)
            samples["ours"].append(time.perf_counter() - began)
        requests, rss = counts, run_rss
        assert result.objects_deleted == len(layout.doomed), result
        assert result.folders_failed == 0 and result.folders_unexpired == UNEXPIRED
    return {"samples": samples, "server_cpu": server_cpu, "requests": requests, "rss": rss}


def why(runs: dict[str, Figures], requests: Requests, doomed: int) -> list[str]:
    """Where the time goes, from this run's own figures."""
    ours, discovery, bare = runs["ours"], runs["discovery"], runs["bare"]

    def mean_ms(name: str) -> float:
        return 1000 * requests.seconds[name] / max(requests.count[name], 1)

    return [
        f"Why the floor is out of reach: it is handed the {doomed:,} keys. A janitor has to "
        f"find them, reading every job folder's `expiredAt` ({EXPIRED + UNEXPIRED:,} GETs, "
        f"{mean_ms('GetObject'):.0f} ms each on average with {CONCURRENCY} in flight) and "
        f"listing each expired folder ({EXPIRED:,} LISTs, {mean_ms('ListObjectsV2'):.0f} ms); "
        f"the dry run, which does only that, takes {discovery.median / ours.median:.0%} of our "
        "run. Deleting, with its order (artifacts, metadata, `expiredAt` last) and shared "
        "batches, adds "
        f"{max(ours.median - discovery.median, 0):.2f} s on top; the bare loop, which finds "
        "the same way without ordering or batching, is "
        f"{'slower' if bare.median > ours.median else 'faster'} than ours "
        f"({bare.median / ours.median:.2f}x our time). Getting near the floor needs not "
        "reading what has not expired: the daily run from the expiry index (bench_expiry.py).",
    ]


def mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


async def main() -> None:
    server = SeaweedServer().start()
    redis_server = RedisServer().start()
    try:
        async with (
            open_s3(server.settings("unused"), max_connections=2 * CONCURRENCY + 8) as s3,
            Redis.from_url(redis_server.url) as redis,
        ):
            small = make_layout(EXPIRED // 10, UNEXPIRED // 10)
            warm = await loaded_bucket(server, s3, small)  # warm-up: imports, connections
            with peak_rss() as small_rss:
                await ours(s3, redis, warm)
            layout = make_layout(EXPIRED, UNEXPIRED)
            figures = await measure(server, s3, redis, layout)
    finally:
        redis_server.stop()
        server.stop()
    report(server, figures, small_rss, len(small.doomed), len(layout.doomed))


def report(
    server: SeaweedServer,
    figures: dict[str, Any],
    small_rss: dict[str, int],
    small: int,
    doomed: int,
) -> None:
    runs = {name: Figures(figures["samples"][name]) for name in RUNS}
    ours_f, floor_f, discovery_f, bare_f = (
        runs[name] for name in ("ours", "floor", "discovery", "bare")
    )
    cpu = {name: Figures(figures["server_cpu"][name]).median for name in RUNS}
    rss, requests = figures["rss"], figures["requests"]
    ratio = ours_f.median / floor_f.median
    loaded, seconds = server.loaded
    lines = [
        "## Janitor: cleanup run vs a hand-written DeleteObjects loop",
        "",
        f"S3 server: {server.version} (`weed mini`, its own process). "
        f"{EXPIRED:,} expired job folders x 10 objects among {UNEXPIRED:,} unexpired ones "
        f"({GROUPS} groups, concurrency {CONCURRENCY}), {REPEAT} repetition(s) after a warm-up"
        + (" (BENCH_QUICK: small sizes)" if QUICK else "")
        + ". Issue 6 measured 2,000 among 2,000 on moto, whose store the benchmark could "
        "fill directly; a real server's objects all go through PUTs, so this is half that "
        f"size. The unexpired folders ({UNEXPIRED * 10:,} objects) were loaded once, the "
        f"expired ones ({doomed:,}) again before each run, so every run starts from the same "
        f"bucket: {loaded:,} PUTs with the warm-up's, in {seconds:.0f} s "
        f"({loaded / seconds:,.0f} a second, not timed). Baselines first, ours last.",
        "",
        "| run | time | objects/s | SeaweedFS CPU |",
        "|---|---|---|---:|",
        f"| ours: `run_cleanup` | {ours_f} | {doomed / ours_f.median:,.0f} | {cpu['ours']:.1f} s |",
        f"| floor: keys handed over, DeleteObjects x 1000 | {floor_f} "
        f"| {doomed / floor_f.median:,.0f} | {cpu['floor']:.1f} s |",
        f"| bare loop: same finding, DeleteObjects a folder, no order | {bare_f} "
        f"| {doomed / bare_f.median:,.0f} | {cpu['bare']:.1f} s |",
        f"| discovery alone: our dry run | {discovery_f} | — | {cpu['discovery']:.1f} s |",
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
        *why(runs, requests, doomed),
    ]
    write_section("janitor", "\n".join(lines))


if __name__ == "__main__":
    asyncio.run(main())
