"""Following a job's log: how soon a written line arrives, and the api's memory meanwhile.

A stand-in job (a child process) appends lines to a local-runtime log file, each carrying
the moment it was written (``CLOCK_MONOTONIC``, shared by every process on the machine),
at random gaps of 5-50 ms. Two readers follow the same file at the same time: ours,
``GET /jobs/<id>/logs?follow=true`` on ``python -m artifacts_api`` in its own process, and
the baseline, coreutils' ``tail -f`` (inotify, as ours: about as soon as a reader can know). Each
reader notes when every line arrives; the latency is arrival minus write, median and p99
over every line, and the ratio is ours over ``tail -f``'s.

Then the api follows a 50 MiB log as the job writes it, 1 MiB at a time: its RSS is sampled
throughout, beside its RSS idle (the baseline).

``BENCH_QUICK=1``: fewer lines, a 10 MiB log.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import aiohttp
import psutil
from common import QUICK, Figures, write_section
from servers import free_port

from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.phjob import PhJob, PhJobMetadata, PhJobPhase, PhJobSpec, PhJobStatus

WARM_UP = "job-202601010000-warmup"
JOB = "job-202601010000-follow"
BIG = "job-202601010000-bigone"
LINES = 300 if QUICK else 1500
MEGABYTES = 10 if QUICK else 50
MiB = 1024 * 1024

WRITER = r"""
import os, random, sys, time
path, count = sys.argv[1], int(sys.argv[2])
with open(path, "ab", buffering=0) as log:
    for i in range(count):
        log.write(f"{time.monotonic():.6f} line {i}\n".encode())
        time.sleep(random.uniform(0.005, 0.05))
"""


def add_running(store: LocalJobStore, job_id: str) -> None:
    store.create(
        PhJob(
            metadata=PhJobMetadata(name=job_id),
            spec=PhJobSpec(display_name=job_id, group_name="bench", command="true"),
        )
    )
    store.write_status(job_id, PhJobStatus(phase=PhJobPhase.RUNNING))


def finish(store: LocalJobStore, job_id: str) -> None:
    store.write_status(job_id, PhJobStatus(phase=PhJobPhase.SUCCEEDED))


async def start_api(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "API_HOST": "127.0.0.1",
        "API_PORT": str(port),
        "API_AUTH_MODE": "none",
        "CONTROLLER_RUNTIME": "local",
        "LOCAL_JOBS_DIR": str(root / "jobs"),
        "LOCAL_RUNTIME_DIR": str(root / "runtime"),
        # Never contacted while a job runs: its log is the runtime's file. The api signs
        # links, so it needs credentials to start, whatever the machine's environment.
        "S3_ENDPOINT_URL": "http://127.0.0.1:9",
        "S3_ACCESS_KEY_ID": "bench-logs",
        "S3_SECRET_ACCESS_KEY": "bench-logs-unused",
        "REDIS_URL": "redis://127.0.0.1:9/0",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "artifacts_api"], env=env, stdout=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(f"{url}/healthz") as response:
                    if response.status == 200:
                        return process, url
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError("the api did not start")


def note(arrivals: list[float], line: bytes) -> None:
    stamp = line.split(b" ", 1)[0]
    arrivals.append(time.monotonic() - float(stamp))


async def follow_ours(url: str, job_id: str, arrivals: list[float]) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url}/jobs/{job_id}/logs?follow=true") as response,
    ):
        async for line in response.content:
            note(arrivals, line)


def follow_tail(path: Path, count: int, arrivals: list[float]) -> None:
    tail = subprocess.Popen(["tail", "-n", "+1", "-f", str(path)], stdout=subprocess.PIPE)
    assert tail.stdout is not None
    for line in tail.stdout:
        note(arrivals, line)
        if len(arrivals) == count:
            break
    tail.kill()
    tail.wait()


async def latency(
    url: str, store: LocalJobStore, root: Path, job_id: str, lines: int
) -> tuple[Figures, Figures]:
    ours: list[float] = []
    baseline: list[float] = []
    path = root / "runtime" / job_id / "job.log"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    add_running(store, job_id)
    reader = threading.Thread(target=follow_tail, args=(path, lines, baseline))
    reader.start()
    following = asyncio.create_task(follow_ours(url, job_id, ours))
    await asyncio.sleep(0.5)  # both readers are following before the first line
    writer = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRITER, str(path), str(lines)
    )
    await writer.wait()
    reader.join()
    finish(store, job_id)
    await following
    assert len(ours) == len(baseline) == lines, (len(ours), len(baseline))
    return Figures(ours), Figures(baseline)


def sample_rss(pid: int, stop: threading.Event, peak: list[int]) -> None:
    process = psutil.Process(pid)
    while not stop.is_set():
        peak[0] = max(peak[0], process.memory_info().rss)
        time.sleep(0.01)


async def memory(url: str, pid: int, store: LocalJobStore, path: Path) -> tuple[int, int, float]:
    add_running(store, BIG)
    path.write_bytes(b"")
    block = b"".join(f"{i:09d} {'x' * 53}\n".encode() for i in range(MiB // 64))
    idle = psutil.Process(pid).memory_info().rss
    peak = [idle]
    stop = threading.Event()
    sampler = threading.Thread(target=sample_rss, args=(pid, stop, peak))
    sampler.start()

    async def job_writes() -> None:
        with path.open("ab") as log:
            for _ in range(MEGABYTES):
                log.write(block)
                log.flush()
                await asyncio.sleep(0.01)
        finish(store, BIG)

    started = time.perf_counter()
    writing = asyncio.create_task(job_writes())
    received = 0
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url}/jobs/{BIG}/logs?follow=true") as response,
    ):
        async for chunk in response.content.iter_chunked(MiB):
            received += len(chunk)
    await writing
    seconds = time.perf_counter() - started
    stop.set()
    sampler.join()
    assert received == MEGABYTES * MiB, received
    return idle, peak[0], seconds


TAIL_VERSION = subprocess.run(
    ["tail", "--version"], capture_output=True, text=True, check=False
).stdout.splitlines()[0]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-logs-") as folder:
        root = Path(folder)
        store = LocalJobStore(root / "jobs")
        (root / "runtime" / BIG).mkdir(parents=True)
        process, url = await start_api(root)
        try:
            # A warm-up follow: imports and pools settle before anything is measured.
            await latency(url, store, root, WARM_UP, 20)
            ours, baseline = await latency(url, store, root, JOB, LINES)
            idle, peak, seconds = await memory(
                url, process.pid, store, root / "runtime" / BIG / "job.log"
            )
        finally:
            process.terminate()
            process.wait(timeout=10)
    rows = [
        "| reader | median | p99 | max |",
        "|---|---:|---:|---:|",
        f"| ours: `GET /jobs/<id>/logs?follow=true` | {ms(ours.median)} | "
        f"{ms(ours.percentile(99))} | {ms(max(ours.samples))} |",
        f"| baseline: `tail -f` (inotify) | {ms(baseline.median)} | "
        f"{ms(baseline.percentile(99))} | {ms(max(baseline.samples))} |",
    ]
    ratio = ours.median / baseline.median if baseline.median else float("inf")
    markdown = "\n".join(
        [
            "## Job logs: following a running job's log (issue 16)",
            "",
            f"`bench/bench_logs.py`. A stand-in job appends {LINES} lines to its local-runtime "
            "log file at random gaps of 5-50 ms, each stamped with the moment it was written; "
            "the api (its own process) and `tail -f` follow the same file at the same time. "
            "Latency = arrival minus write, over every line.",
            "",
            *rows,
            "",
            f"Ours over the baseline at the median: **{ratio:.1f}x**. Both are woken by "
            "inotify (the api: one instance for the process, a watch per followed file); "
            "ours adds the HTTP hop, a thread for the read, and the chunked encoding.",
            "",
            f"Versions: {TAIL_VERSION}, aiohttp {aiohttp.__version__}, Python "
            f"{sys.version.split()[0]}; no S3 server is involved (a running job's log is its "
            "runtime's file).",
            "",
            f"Memory: following a {MEGABYTES} MiB log while the job writes it (1 MiB every "
            f"10 ms; {seconds:.1f} s, all {MEGABYTES} MiB received) the api's RSS peaked at "
            f"{peak / MiB:.1f} MiB, beside {idle / MiB:.1f} MiB idle just before "
            f"(+{(peak - idle) / MiB:.1f} MiB).",
        ]
    )
    write_section("logs", markdown)


if __name__ == "__main__":
    asyncio.run(main())
