"""Artifact listing through the api's GraphQL versus a plain aiobotocore listing.

Both read the same prefix of the same moto S3 server (its own process, ``servers.MotoServer``);
the api runs as ``python -m artifacts_api`` in its own process, as in production. For jobs
of 10, 1,000 and 10,000 files each repetition times the seed query
(``phJob { artifact { prefix items { name size lastModified } } }``) over HTTP and, right
after it, a paginated ``list_objects_v2`` of the prefix, so noise on this shared machine
hits both alike; the ratio is ours over the baseline at the median. Then 50 concurrent
clients send the 10-file listing for a fixed time: requests per second, beside the same
50 clients listing with aiobotocore directly.

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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from common import QUICK, Figures, write_section
from servers import MotoServer, free_port

from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.layout import job_prefix
from artifacts_shared.phjob import PhJob, PhJobMetadata, PhJobSpec
from artifacts_shared.s3 import open_s3
from artifacts_shared.settings import S3Settings

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


def seed(server: MotoServer, store: LocalJobStore) -> None:
    """The jobs, and their objects written straight into moto's store (not timed)."""
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


async def load(run: Callable[[], Awaitable[None]], seconds: float) -> tuple[float, Figures]:
    """Requests per second and latencies with ``CLIENTS`` clients looping for ``seconds``."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await run()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return len(latencies) / (time.perf_counter() - started), Figures(latencies)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


async def main() -> None:
    api_port = free_port()
    moto = MotoServer().start()
    s3_url = moto.url
    work = tempfile.TemporaryDirectory(prefix="bench-api-")
    api: subprocess.Popen[bytes] | None = None
    try:
        settings = S3Settings(
            s3_endpoint_url=s3_url,
            s3_access_key_id="bench",
            s3_secret_access_key="bench",  # type: ignore[arg-type]
            phfs_bucket=BUCKET,
        )
        store = LocalJobStore(Path(work.name) / "jobs")
        seed(moto, store)
        async with open_s3(settings, max_connections=CLIENTS) as s3:
            env = {
                **os.environ,
                "API_HOST": "127.0.0.1",
                "API_PORT": str(api_port),
                "API_AUTH_MODE": "none",
                "CONTROLLER_RUNTIME": "local",
                "LOCAL_JOBS_DIR": str(store.root),
                "S3_ENDPOINT_URL": s3_url,
                "S3_ACCESS_KEY_ID": "bench",
                "S3_SECRET_ACCESS_KEY": "bench",
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
                rps_ours, lat_ours = await load(
                    lambda: graphql_listing(session, f"{url}/graphql", SIZES[0], QUERY),
                    LOAD_SECONDS,
                )
                rps_base, lat_base = await load(lambda: plain_listing(s3, SIZES[0]), LOAD_SECONDS)
    finally:
        if api is not None:
            stop(api)
        moto.stop()
        work.cleanup()

    lines = [
        "## api: artifact listing (GraphQL) vs plain aiobotocore listing",
        "",
        f"moto_server and `python -m artifacts_api` as separate processes on this machine; "
        f"{'quick run (BENCH_QUICK=1)' if QUICK else 'full run'}. Ours: the seed query "
        "over HTTP (auth mode none). Plain: `list_objects_v2` paginated over the same prefix "
        "from the benchmark process. Times in ms, ratio = ours / plain at the median.",
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
        "| | requests/s | p50 ms | p95 ms |",
        "|---|---:|---:|---:|",
        f"| ours (GraphQL) | {rps_ours:.0f} | {ms(lat_ours.median)} | "
        f"{ms(lat_ours.percentile(95))} |",
        f"| plain listing | {rps_base:.0f} | {ms(lat_base.median)} | "
        f"{ms(lat_base.percentile(95))} |",
        "",
        "Under load both sides wait on moto_server (one Python process parsing and writing "
        "XML), so requests/s measure moto as much as the api. `downloadUrl` signs one URL per "
        "item (botocore endpoint resolution and SigV4): see the `+ downloadUrl` row.",
    ]
    write_section("api", "\n".join(lines))


if __name__ == "__main__":
    asyncio.run(main())
