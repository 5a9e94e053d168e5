"""Artifact listing through the api's GraphQL versus a plain aiobotocore listing.

Both read the same prefix of the same S3 server, SeaweedFS (``weed mini`` in its own process,
``servers.SeaweedServer``); the api runs as ``python -m artifacts_api`` in its own process, as
in production. For jobs
of 10, 1,000 and 10,000 files each repetition times the seed query
(``phJob { artifact { prefix items { name size lastModified } } }``) over HTTP and, right
after it, a paginated ``list_objects_v2`` of the prefix, so noise on this shared machine
hits both alike; the ratio is ours over the baseline at the median. Then 50 concurrent
clients send the 10-file listing for a fixed time: requests per second, beside the same
50 clients listing with aiobotocore directly, with the CPU each request cost SeaweedFS.

``BENCH_QUICK=1``: jobs of 10, 100 and 1,000 files, fewer repetitions, shorter load.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from common import QUICK, Figures, write_section
from servers import SeaweedServer, free_port

from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.layout import job_prefix
from artifacts_shared.phjob import PhJob, PhJobMetadata, PhJobSpec
from artifacts_shared.s3 import open_s3

BUCKET = "bench-api"
GROUP = "bench"
SIZES = (10, 100, 1_000) if QUICK else (10, 1_000, 10_000)
REPEATS = {10: 30, 100: 20, 1_000: 15, 10_000: 7}
if QUICK:
    REPEATS = {size: max(3, n // 3) for size, n in REPEATS.items()}
LOAD_SECONDS = 3.0 if QUICK else 10.0
CLIENTS = 50
QUERY = """query ($id: ID!) {
  phJob(where: {id: $id}) { id artifact { prefix items { name size lastModified } } }
}"""
QUERY_WITH_LINKS = """query ($id: ID!) {
  phJob(where: {id: $id}) { id artifact { prefix items { name size lastModified downloadUrl } } }
}"""


async def wait_for(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url) as response:
                    if response.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def job_id(files: int) -> str:
    return f"job-202601010000-n{files:05d}"


def seed(server: SeaweedServer, store: LocalJobStore) -> None:
    """The jobs, and their objects PUT to the server (not timed)."""
    server.create_bucket(BUCKET)
    for files in SIZES:
        name = job_id(files)
        store.create(
            PhJob(
                metadata=PhJobMetadata(name=name, creation_timestamp=datetime.now(UTC)),
                spec=PhJobSpec(display_name=name, group_name=GROUP, command="true"),
            )
        )
        prefix = job_prefix(GROUP, name)
        keys = [f"{prefix}dir{i % 10}/file-{i:05d}.bin" for i in range(files)]
        server.seed(BUCKET, [*keys, f"{prefix}.primehub/metadata/expiredAt"], text="x" * 100)


async def graphql_listing(session: aiohttp.ClientSession, url: str, files: int, query: str) -> None:
    async with session.post(url, json={"query": query, "variables": {"id": job_id(files)}}) as r:
        body = await r.json()
    items = body["data"]["phJob"]["artifact"]["items"]
    assert len(items) == files, body.get("errors")


async def plain_listing(s3: Any, files: int) -> None:
    count = 0
    prefix = job_prefix(GROUP, job_id(files))
    async for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        count += len(page.get("Contents", ()))
    assert count == files + 1  # the files and expiredAt


async def side_by_side(
    ours: Callable[[], Awaitable[None]], baseline: Callable[[], Awaitable[None]], repeat: int
) -> tuple[Figures, Figures]:
    await ours()
    await baseline()  # warm-up: connections, caches
    a, b = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        await ours()
        a.append(time.perf_counter() - started)
        started = time.perf_counter()
        await baseline()
        b.append(time.perf_counter() - started)
    return Figures(a), Figures(b)


@dataclass(frozen=True)
class Load:
    rate: float
    """Requests per second."""
    latency: Figures
    cpu: dict[str, float]
    """CPU seconds per request of each process metered: SeaweedFS, the api, this one."""


def _cpu(process: psutil.Process) -> float:
    return float(sum(process.cpu_times()[:2]))


async def load(
    run: Callable[[], Awaitable[None]], seconds: float, meters: dict[str, psutil.Process]
) -> Load:
    """``CLIENTS`` clients looping on ``run`` for ``seconds``; what it cost ``meters``."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await run()
            latencies.append(time.perf_counter() - started)

    before = {name: _cpu(process) for name, process in meters.items()}
    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    elapsed = time.perf_counter() - started
    cpu = {
        name: (_cpu(process) - before[name]) / len(latencies) for name, process in meters.items()
    }
    return Load(len(latencies) / elapsed, Figures(latencies), cpu)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


async def main() -> None:
    api_port = free_port()
    server = SeaweedServer().start()
    work = tempfile.TemporaryDirectory(prefix="bench-api-")
    api: subprocess.Popen[bytes] | None = None
    try:
        store = LocalJobStore(Path(work.name) / "jobs")
        seed(server, store)
        async with open_s3(server.settings(BUCKET), max_connections=CLIENTS) as s3:
            env = {
                **os.environ,
                "API_HOST": "127.0.0.1",
                "API_PORT": str(api_port),
                "API_AUTH_MODE": "none",
                "CONTROLLER_RUNTIME": "local",
                "LOCAL_JOBS_DIR": str(store.root),
                "S3_ENDPOINT_URL": server.url,
                "S3_ACCESS_KEY_ID": server.ACCESS_KEY,
                "S3_SECRET_ACCESS_KEY": server.SECRET_KEY,
                "PHFS_BUCKET": BUCKET,
                "REDIS_URL": "redis://127.0.0.1:1/0",  # listing never touches Redis
            }
            api = subprocess.Popen(
                [sys.executable, "-m", "artifacts_api"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            url = f"http://127.0.0.1:{api_port}"
            await wait_for(f"{url}/healthz")
            connector = aiohttp.TCPConnector(limit=CLIENTS)
            async with aiohttp.ClientSession(connector=connector) as session:
                rows = []
                for files in SIZES:
                    ours, base = await side_by_side(
                        lambda f=files: graphql_listing(session, f"{url}/graphql", f, QUERY),
                        lambda f=files: plain_listing(s3, f),
                        REPEATS[files],
                    )
                    rows.append((f"{files:,} files", ours, base))
                    print(f"{files} files: ours {ours} / plain {base}", flush=True)
                links_size = SIZES[1]
                ours, base = await side_by_side(
                    lambda: graphql_listing(
                        session, f"{url}/graphql", links_size, QUERY_WITH_LINKS
                    ),
                    lambda: plain_listing(s3, links_size),
                    REPEATS[links_size],
                )
                rows.append((f"{links_size:,} files + downloadUrl", ours, base))
                meters = {
                    "SeaweedFS": psutil.Process(server.pid),
                    "api": psutil.Process(api.pid),
                    "clients": psutil.Process(),
                }
                load_ours = await load(
                    lambda: graphql_listing(session, f"{url}/graphql", SIZES[0], QUERY),
                    LOAD_SECONDS,
                    meters,
                )
                load_base = await load(lambda: plain_listing(s3, SIZES[0]), LOAD_SECONDS, meters)
    finally:
        if api is not None:
            stop(api)
        server.stop()
        work.cleanup()
    write_section("api", report(server, rows, load_ours, load_base))


def report(
    server: SeaweedServer,
    rows: list[tuple[str, Figures, Figures]],
    load_ours: Load,
    load_base: Load,
) -> str:
    objects, seconds = server.loaded
    lines = [
        "## api: artifact listing (GraphQL) vs plain aiobotocore listing",
        "",
        f"S3 server: {server.version} (`weed mini`), and `python -m artifacts_api`, as "
        f"separate processes on this machine; "
        f"{'quick run (BENCH_QUICK=1)' if QUICK else 'full run'}. Ours: the seed query "
        "over HTTP (auth mode none). Plain: `list_objects_v2` paginated over the same prefix "
        "from the benchmark process. Times in ms, ratio = ours / plain at the median. "
        f"The {objects:,} objects were PUT beforehand in {seconds:.0f} s (not timed).",
        "",
        "| job | ours p50 | ours p95 | plain p50 | plain p95 | ratio p50 | runs |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, ours, base in rows:
        lines.append(
            f"| {label} | {ms(ours.median)} | {ms(ours.percentile(95))} | {ms(base.median)} "
            f"| {ms(base.percentile(95))} | {ours.median / base.median:.2f}x "
            f"| {len(ours.samples)} |"
        )
    lines += [
        "",
        f"Load: {CLIENTS} concurrent clients for {LOAD_SECONDS:.0f} s on the {SIZES[0]}-file job.",
        "",
        "| | requests/s | p50 ms | p95 ms | CPU ms a request: SeaweedFS / api / clients |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, figures in (("ours (GraphQL)", load_ours), ("plain listing", load_base)):
        cpu = " / ".join(ms(figures.cpu[name]) for name in ("SeaweedFS", "api", "clients"))
        lines.append(
            f"| {label} | {figures.rate:.0f} | {ms(figures.latency.median)} | "
            f"{ms(figures.latency.percentile(95))} | {cpu} |"
        )
    lines += ["", _why(load_ours, load_base)]
    return "\n".join(lines)


def _why(ours: Load, plain: Load) -> str:
    """Where the time under load went, from this run's CPU figures."""
    ours_total, plain_total = sum(ours.cpu.values()), sum(plain.cpu.values())
    api_busy = ours.cpu["api"] * ours.rate
    bound = (
        f"the api's one process was busy {api_busy:.0%} of the time, so it bounds ours"
        if api_busy > 0.8
        else (
            f"at these rates the processes used {ours_total * ours.rate:.0%} and "
            f"{plain_total * plain.rate:.0%} of one core, so most of each request's wait was "
            f"for a turn on CPUs held by other work (load average {os.getloadavg()[0]:.1f} "
            f"on {os.cpu_count()} cores)"
        )
    )
    return (
        f"Under load a request cost SeaweedFS {ms(ours.cpu['SeaweedFS'])} ms of CPU for ours "
        f"and {ms(plain.cpu['SeaweedFS'])} ms for the plain listing. Ours adds the api's "
        f"process ({ms(ours.cpu['api'])} ms a request: HTTP, GraphQL parsing, validation and "
        "execution, then the same listing through aiobotocore): in all "
        f"{ms(ours_total)} ms of CPU a request against {ms(plain_total)} ms; {bound}. "
        "`downloadUrl` signs one URL per item (botocore endpoint resolution and SigV4): see "
        "the `+ downloadUrl` row."
    )


if __name__ == "__main__":
    asyncio.run(main())
