"""The janitor's daily run from the expiry index, against the floor, as the bucket grows.

Layout (issue 19): 2,000 expired job folders of 10 objects (8 artifacts of 100 bytes,
``manifest.json``, ``expiredAt``) among 10,000, then 100,000, unexpired ones, in ten
groups, on SeaweedFS (``weed mini``, as `make run`) and a real redis-server.
``BENCH_QUICK=1``: 200 expired among 1,000 then 5,000.

Measured on the same server and bucket, each on freshly loaded expired folders:

- **daily run**: ``run_cleanup`` in this process, as the worker runs it: take what the
  index has due, list each due folder, confirm its ``expiredAt``, delete it in order
  (artifacts, metadata, ``expiredAt``) and drop its entry.
- **floor**: handed the 20,000 keys, the shared batched deleter (``delete_keys``, 1,000 a
  request): the least any janitor could spend deleting them.
- **per folder**: the deletion the issue started from, handed the same folders: each folder
  alone through ``delete_keys``, artifacts, then metadata, then ``expiredAt`` (three
  ``DeleteObjects`` of a few keys), ``CONCURRENCY`` folders at a time. Measured at the
  largest size only: it is what the daily run's grouping of small folders into shared
  requests (``artifacts_janitor.cleanup``) buys, and why that grouping stays.
- **directories**: after the floor, the 6,000 directories SeaweedFS keeps of those
  folders, deleted the same way: what the daily run would add if it deleted them itself
  rather than leave them to SeaweedFS's own cleaner (see ``artifacts_janitor.deletion``).
- **rescan**: ``python -m artifacts_janitor --once --rescan --dry-run`` in a process of its
  own on the largest bucket (the expired folders loaded once more) after ``FLUSHALL``
  (the index lost): every folder's ``expiredAt`` read and indexed again, the due folders
  listed but not deleted; its time, its peak RSS (sampled every 10 ms), and what the
  daily run saves by not doing it.

The layout follows job ids, which begin with their creation time: one job every 12 s, in
ten groups; the 2,222 oldest have all expired but one in ten (kept with a longer
retention), everything created later has not. So the due folders are neighbours by name,
as they are when most jobs keep the default retention, with folders that are not due
among them.

How the data is loaded: over HTTP, but through SeaweedFS's filer (``PUT /buckets/<bucket>/<key>``,
the Filer Server API; the S3 gateway serves the same entries: ``/buckets/<bucket>/`` is where
it keeps a bucket), unsigned, about three times the rate of signed S3 PUTs on this machine.
The objects are the same to S3 (ETag = MD5, sizes, listings). An unexpired folder holds
only its ``expiredAt``: the daily run never touches it, and the rescan reads only that
object and finds the folder through delimiter listings, which do not look inside. The
index is fed as the uploader feeds it (one entry per folder, its ``expiredAt``).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
from redis.asyncio import Redis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from common import QUICK, Figures, write_section  # noqa: E402
from servers import SeaweedServer  # noqa: E402
from support.servers import RedisServer  # noqa: E402

from artifacts_janitor.cleanup import CleanupOptions, run_cleanup  # noqa: E402
from artifacts_janitor.clock import SystemClock  # noqa: E402
from artifacts_janitor.rescan import RESCAN_RECORD_KEY  # noqa: E402
from artifacts_shared.cleanup_result import CleanupResult  # noqa: E402
from artifacts_shared.expiry_index import ExpiryIndex  # noqa: E402
from artifacts_shared.layout import (  # noqa: E402
    JobPrefix,
    expired_at_key,
    is_metadata,
    job_prefix,
    manifest_key,
)
from artifacts_shared.s3 import S3Client, delete_keys, open_s3  # noqa: E402

EXPIRED = 200 if QUICK else 2_000
SIZES = (1_000, 5_000) if QUICK else (10_000, 100_000)
REPEAT = 3
GROUPS = 10
FILES = 8  # + manifest.json + expiredAt = 10 objects a folder
CONCURRENCY = 16  # JANITOR_CONCURRENCY's default
LOAD_THREADS = 32
BUCKET = "bench-expiry"


class FilerLoader:
    """Objects PUT straight into SeaweedFS's filer, ``LOAD_THREADS`` at a time."""

    def __init__(self, server: SeaweedServer, bucket: str) -> None:
        self._port = server.ports.filer
        self._root = f"/buckets/{bucket}/"
        self._local = threading.local()

    def _put(self, key: str, body: bytes) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection("127.0.0.1", self._port, timeout=120)
            self._local.connection = connection
        connection.request(
            "PUT",
            self._root + key,
            body=body,
            headers={"Content-Type": "application/octet-stream"},
        )
        response = connection.getresponse()
        response.read()
        if response.status >= 300:
            raise RuntimeError(f"filer PUT {key}: HTTP {response.status}")

    def load(self, objects: list[tuple[str, bytes]]) -> float:
        """PUT every object; the seconds it took."""
        began = time.perf_counter()
        with ThreadPoolExecutor(LOAD_THREADS) as pool:
            for done in [pool.submit(self._put, key, body) for key, body in objects]:
                done.result()
        return time.perf_counter() - began


START = datetime(2025, 1, 1, tzinfo=UTC)
EVERY = 12
"""Seconds between two jobs' creation (300 a hour, over ten groups)."""
WINDOW = EXPIRED * 10 // 9
"""The oldest jobs: all expired but one in ten, which kept a longer retention."""


def name(k: int) -> tuple[str, str]:
    """The group and the id of the k-th job created: ``job-<YYYYMMDDHHmm>-<6 characters>``."""
    created = START + timedelta(seconds=EVERY * k)
    suffix = "".join("0123456789abcdefghijklmnopqrstuvwxyz"[(k // 36**n) % 36] for n in range(6))
    return f"group-{k % GROUPS}", f"job-{created:%Y%m%d%H%M}-{suffix}"


def kept_longer(k: int) -> bool:
    return k >= WINDOW or k % 10 == 9


def unexpired(
    start: int, stop: int, now: int
) -> tuple[list[tuple[str, bytes]], dict[JobPrefix, int]]:
    """The unexpired folders among the first ``stop`` of them (from the ``start``-th)."""
    objects, entries = [], {}
    kept = [k for k in range(WINDOW + stop) if kept_longer(k)][start:stop]
    for k in kept:
        prefix = job_prefix(*name(k))
        expiry = now + 86_400 * (1 + k % 30)
        objects.append((expired_at_key(prefix), str(expiry).encode()))
        entries[prefix] = expiry
    return objects, entries


def expired(now: int, window: int) -> tuple[list[tuple[str, bytes]], dict[JobPrefix, int]]:
    """The expired folders of the oldest ``window`` jobs, as each round loads them again."""
    objects, entries = [], {}
    for k in range(window):
        if kept_longer(k):
            continue
        prefix = job_prefix(*name(k))
        objects += [(f"{prefix}file-{n}.txt", b"x" * 100) for n in range(FILES)]
        objects.append((manifest_key(prefix), b'{"version": 1}'))
        objects.append((expired_at_key(prefix), str(now - 3600).encode()))
        entries[prefix] = now - 3600
    return objects, entries


def directories(prefixes: list[JobPrefix]) -> list[str]:
    """The directories SeaweedFS keeps of a deleted folder, deepest first."""
    return [
        f"{prefix}{sub}" for prefix in prefixes for sub in (".primehub/metadata/", ".primehub/", "")
    ]


@dataclass
class Requests:
    count: Counter[str] = field(default_factory=Counter)

    def __str__(self) -> str:
        return ", ".join(f"{op} {n:,}" for op, n in sorted(self.count.items()))


@contextmanager
def counted_requests(s3: S3Client) -> Iterator[Requests]:
    requests = Requests()

    def after(model: Any, **_: Any) -> None:
        requests.count[model.name] += 1

    s3.meta.events.register("after-call.s3", after)
    try:
        yield requests
    finally:
        s3.meta.events.unregister("after-call.s3", after)


@dataclass
class Rescan:
    seconds: float
    peak_rss: int
    result: dict[str, Any]


def rescan_in_a_process(server: SeaweedServer, redis_url: str) -> Rescan:
    """``python -m artifacts_janitor --once --rescan --dry-run``: wall time and peak RSS."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "S3_ENDPOINT_URL": server.url,
        "S3_ACCESS_KEY_ID": server.ACCESS_KEY,
        "S3_SECRET_ACCESS_KEY": server.SECRET_KEY,
        "PHFS_BUCKET": BUCKET,
        "REDIS_URL": redis_url,
        "JANITOR_METRICS_PORT": "0",
        "JANITOR_CONCURRENCY": str(CONCURRENCY),
    }
    began = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "artifacts_janitor", "--once", "--rescan", "--dry-run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    watched = psutil.Process(child.pid)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            try:
                peak = max(peak, watched.memory_info().rss)
            except psutil.NoSuchProcess:
                return
            done.wait(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = child.communicate()
    seconds = time.perf_counter() - began
    done.set()
    sampler.join()
    if child.returncode != 0:
        raise RuntimeError(f"the rescan exited with {child.returncode}")
    text = out.decode()
    return Rescan(seconds, peak, json.loads(text[text.index("{") :]))


async def daily_run(s3: S3Client, redis: Redis) -> CleanupResult:
    return await run_cleanup(
        s3=s3,
        bucket=BUCKET,
        redis=redis,
        clock=SystemClock(),
        run_id=f"bench-{uuid.uuid4().hex[:8]}",
        options=CleanupOptions(concurrency=CONCURRENCY),
    )


async def per_folder(s3: S3Client, folders: dict[JobPrefix, list[str]]) -> None:
    """Each folder alone, in three steps, ``CONCURRENCY`` folders at a time."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(prefix: JobPrefix, keys: list[str]) -> None:
        last = expired_at_key(prefix)
        metadata = [key for key in keys if is_metadata(key[len(prefix) :]) and key != last]
        artifacts = [key for key in keys if key not in metadata and key != last]
        async with gate:
            for step in (artifacts, metadata, [last]):
                outcome = await delete_keys(s3, BUCKET, step)
                assert outcome.ok and outcome.deleted == len(step)

    async with asyncio.TaskGroup() as group:
        for prefix, keys in folders.items():
            group.create_task(one(prefix, keys))


@dataclass
class AtSize:
    unexpired: int
    daily: list[float] = field(default_factory=list)
    floor: list[float] = field(default_factory=list)
    per_folder: list[float] = field(default_factory=list)
    dirs: list[float] = field(default_factory=list)
    requests: Requests = field(default_factory=Requests)


class Loads:
    """Everything loaded through the filer, for the rate the results state."""

    def __init__(self, server: SeaweedServer) -> None:
        self._loader = FilerLoader(server, BUCKET)
        self.count = 0
        self.seconds = 0.0

    def __call__(self, objects: list[tuple[str, bytes]]) -> None:
        self.seconds += self._loader.load(objects)
        self.count += len(objects)


async def one_round(
    s3: S3Client, redis: Redis, load: Loads, now: int, window: int = WINDOW
) -> tuple[float, float, float, Requests]:
    """The daily run on freshly loaded expired folders, then the floor on another copy."""
    objects, entries = expired(now, window)
    load(objects)
    await ExpiryIndex(redis).add_many(entries)  # as the uploader adds each folder
    with counted_requests(s3) as requests:
        began = time.perf_counter()
        result = await daily_run(s3, redis)
        daily = time.perf_counter() - began
    assert (result.folders_deleted, result.folders_failed) == (len(entries), 0), result
    assert result.objects_deleted == len(objects) and not result.rescanned, result
    assert result.index_due == len(entries) and result.index_stale == 0, result
    objects, handed = expired(now, window)
    load(objects)
    keys = [key for key, _ in objects]
    began = time.perf_counter()
    outcome = await delete_keys(s3, BUCKET, keys)
    floor = time.perf_counter() - began
    assert outcome.deleted == len(keys) and outcome.ok
    began = time.perf_counter()
    await delete_keys(s3, BUCKET, directories(list(handed)))
    dirs = time.perf_counter() - began
    return daily, floor, dirs, requests


async def measure(
    server: SeaweedServer, s3: S3Client, redis: Redis, redis_url: str
) -> dict[str, Any]:
    load = Loads(server)
    now = int(time.time())
    # As if the last rescan had just run: the daily runs work from the index alone.
    await redis.set(RESCAN_RECORD_KEY, json.dumps({"finishedAt": now, "scanned": 0, "found": 0}))
    await one_round(s3, redis, load, now, window=WINDOW // 10)  # warm-up: imports, pools
    loaded = 0
    figures: list[AtSize] = []
    for size in SIZES:
        print(f"bench_expiry: {size:,} unexpired folders ...", file=sys.stderr, flush=True)
        objects, entries = unexpired(loaded, size, now)
        load(objects)
        await ExpiryIndex(redis).add_many(entries)
        loaded = size
        at = AtSize(size)
        for _ in range(REPEAT):
            daily, floor, dirs, at.requests = await one_round(s3, redis, load, now)
            at.daily.append(daily)
            at.floor.append(floor)
            at.dirs.append(dirs)
        figures.append(at)
    print("bench_expiry: per folder ...", file=sys.stderr, flush=True)
    for _ in range(REPEAT):
        objects, entries = expired(now, WINDOW)
        load(objects)
        doomed: dict[JobPrefix, list[str]] = {prefix: [] for prefix in entries}
        for key, _ in objects:
            doomed[JobPrefix("/".join(key.split("/", 4)[:4]) + "/")].append(key)
        began = time.perf_counter()
        await per_folder(s3, doomed)
        figures[-1].per_folder.append(time.perf_counter() - began)
    # The same bucket, its index lost: the rescan finds every folder again. A dry run, so
    # that its time is the scan's and not deleting the expired ones (the daily run's).
    print("bench_expiry: rescan ...", file=sys.stderr, flush=True)
    load(expired(now, WINDOW)[0])
    await redis.flushall()
    rescan = rescan_in_a_process(server, redis_url)
    folders = SIZES[-1] + EXPIRED
    assert rescan.result["foldersScanned"] == folders, rescan.result
    assert rescan.result["rescanFound"] == folders, rescan.result
    assert rescan.result["foldersDeleted"] == EXPIRED, rescan.result  # would delete
    return {"sizes": figures, "rescan": rescan, "load_rate": load.count / load.seconds}


async def main() -> None:
    redis_server = RedisServer().start()
    try:
        with SeaweedServer() as server:
            server.create_bucket(BUCKET)
            async with (
                open_s3(server.settings(BUCKET), max_connections=2 * CONCURRENCY + 8) as s3,
                Redis.from_url(redis_server.url) as redis,
            ):
                figures = await measure(server, s3, redis, redis_server.url)
            version = server.version
    finally:
        redis_server.stop()
    report(figures, version)


def mib(size: int) -> str:
    return f"{size / 2**20:.0f} MiB"


def report(figures: dict[str, Any], version: str) -> None:
    sizes: list[AtSize] = figures["sizes"]
    keys = EXPIRED * 10
    lines = [
        "## Janitor: the daily run from the expiry index, against the floor",
        "",
        f"{EXPIRED:,} expired job folders x 10 objects among {SIZES[0]:,} and then "
        f"{SIZES[-1]:,} unexpired ones ({GROUPS} groups), {version} (`weed mini`) "
        f"and redis-server, concurrency {CONCURRENCY}; {REPEAT} repetitions at each size on "
        "freshly loaded expired folders, after a warm-up"
        + (" (BENCH_QUICK: small sizes)" if QUICK else "")
        + f". Data loaded through the filer at {figures['load_rate']:,.0f} objects/s "
        "(see the module docstring).",
        "",
        f"| unexpired folders | daily run | floor: {keys:,} keys handed over | daily / floor "
        f"| directories ({EXPIRED * 3:,}) |",
        "|---|---|---|---|---|",
    ]
    for at in sizes:
        daily, floor, dirs = Figures(at.daily), Figures(at.floor), Figures(at.dirs)
        lines.append(
            f"| {at.unexpired:,} | {daily} | {floor} | **{daily.median / floor.median:.2f}x** "
            f"| {dirs} |"
        )
    small, large = Figures(sizes[0].daily), Figures(sizes[-1].daily)
    each, floor_large = Figures(sizes[-1].per_folder), Figures(sizes[-1].floor)
    floor_small = Figures(sizes[0].floor)
    lines += [
        "",
        f"- **per folder** ({EXPIRED:,} folders alone, 3 `DeleteObjects` each, {CONCURRENCY} "
        f"at a time, at {sizes[-1].unexpired:,}): {each}, "
        f"**{each.median / floor_large.median:.2f}x** the floor: what grouping small folders "
        "into shared requests buys.",
        f"- **flat**: at {sizes[-1].unexpired:,} unexpired folders the daily run is "
        f"{large.median / floor_large.median:.2f}x the floor measured beside it, against "
        f"{small.median / floor_small.median:.2f}x at {sizes[0].unexpired:,}; in wall time it "
        f"takes {large.median / small.median:.2f}x its time at {sizes[0].unexpired:,}, as the "
        f"floor itself takes {floor_large.median / floor_small.median:.2f}x (the daily run "
        f"deletes {keys / large.median:,.0f} objects/s at {sizes[-1].unexpired:,}).",
        *(
            f"- requests in one daily run at {at.unexpired:,} unexpired folders: {at.requests} "
            f"(the floor: DeleteObjects {-(-keys // 1000)})."
            for at in sizes
        ),
        "",
        "| bucket | rescan (own process, after FLUSHALL) | peak RSS | folders/s "
        "| daily run / rescan |",
        "|---|---|---|---|---|",
    ]
    rescan: Rescan = figures["rescan"]
    scanned = rescan.result["foldersScanned"]
    lines.append(
        f"| {sizes[-1].unexpired:,} unexpired + {EXPIRED:,} expired folders "
        f"| {rescan.seconds:.1f} s | {mib(rescan.peak_rss)} | {scanned / rescan.seconds:,.0f} "
        f"| {large.median / rescan.seconds:.3f} |"
    )
    write_section("expiry", "\n".join(lines))


if __name__ == "__main__":
    asyncio.run(main())
