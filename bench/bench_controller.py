"""Reconcile throughput: 500 PhJobs created at once, seconds until every one has its pod.

Ours: the elected controller (lease, list + watch, per-PhJob queues, reconcile: read the
PhJob and its pod, ensure the ConfigMap, create the pod, write the status) started on a
backlog of N PhJobs, timed from its start to its N-th pod created.
Baseline: the least a controller could do, a naive sequential loop that POSTs the same N
pod manifests with the same client: no reads, no status, no watches.

Both run against a fresh KubernetesEmulator (tests/support/kube.py) in a child process,
so the API server's CPU is not the controller's, as on a cluster. The ratio says what the
bookkeeping that makes reconciliation safe costs, and what per-object parallelism wins back.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from common import QUICK, Figures, write_section  # noqa: E402
from redis.asyncio import Redis  # noqa: E402
from servers import SeaweedServer  # noqa: E402
from support.kube import api_client_for, serve_kube  # noqa: E402
from support.servers import RedisServer  # noqa: E402

from artifacts_controller.controller import run_elected  # noqa: E402
from artifacts_controller.expiry_feed import ExpiryFeed  # noqa: E402
from artifacts_controller.kube import PHJOBS, PODS, Kube  # noqa: E402
from artifacts_controller.metrics import ControllerMetrics  # noqa: E402
from artifacts_controller.pods import job_pod  # noqa: E402
from artifacts_controller.settings import ControllerSettings  # noqa: E402
from artifacts_shared.expiry_index import ExpiryIndex  # noqa: E402
from artifacts_shared.input_holds import InputHolds  # noqa: E402
from artifacts_shared.phjob import PhJob, PhJobMetadata, PhJobSpec  # noqa: E402
from artifacts_shared.s3 import S3Client, open_s3  # noqa: E402

JOBS = 50 if QUICK else 500
REPEAT = 2 if QUICK else 3
NAMESPACE = "bench"
BUCKET = "bench-controller"
SCRIPT = '#!/usr/bin/env bash\nexec bash -c "$1"\n'


async def _serve_forever(latency: float) -> None:
    """The child process: an emulator on a free port; its URL on stdout; until stdin closes."""
    async with serve_kube(latency=latency) as (_emulator, url):
        print(url, flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)


@asynccontextmanager
async def emulator(latency: float) -> AsyncIterator[str]:
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(latency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        url = await asyncio.get_running_loop().run_in_executor(None, child.stdout.readline)
        yield url.strip()
    finally:
        if child.stdin:
            child.stdin.close()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _job(index: int) -> PhJob:
    return PhJob(
        metadata=PhJobMetadata(name=f"job-202601010000-{index:06d}"),
        spec=PhJobSpec(display_name=f"bench {index}", group_name="bench", command="true"),
    )


async def _create_backlog(kube: Kube, count: int) -> list[PhJob]:
    slots = asyncio.Semaphore(32)

    async def create(index: int) -> PhJob:
        async with slots:
            return PhJob.from_k8s(await kube.create(PHJOBS, _job(index).to_k8s()))

    return list(await asyncio.gather(*(create(i) for i in range(count))))


def _settings() -> ControllerSettings:
    return ControllerSettings(
        kube_namespace=NAMESPACE,
        controller_resync_seconds=3600,
        controller_identity="bench",
    )


PASSES: list[float] = []


@dataclass(frozen=True)
class Stores:
    """What the controller writes besides the Kubernetes API: job logs to S3 and the expiry
    index and input holds in Redis, used only when a job starts or ends, which no job here does."""

    s3: S3Client
    expiry_feed: ExpiryFeed
    input_holds: InputHolds


async def ours(count: int, latency: float, stores: Stores) -> float:
    async with emulator(latency) as url, api_client_for(url) as api:
        kube = Kube(api, namespace=NAMESPACE)
        await _create_backlog(kube, count)
        metrics = ControllerMetrics()
        started = time.perf_counter()
        task = asyncio.create_task(
            run_elected(
                kube=kube,
                settings=_settings(),
                script=SCRIPT,
                metrics=metrics,
                s3=stores.s3,
                expiry_feed=stores.expiry_feed,
                input_holds=stores.input_holds,
            )
        )
        try:
            while (metrics.registry.get_sample_value("phjob_pods_created_total") or 0) < count:
                if task.done():
                    task.result()
                await asyncio.sleep(0.005)
            elapsed = time.perf_counter() - started
            await asyncio.sleep(1.0)  # untimed: let the last passes and echoes finish
            passes = metrics.registry.get_sample_value("phjob_reconciles_total", {"result": "ok"})
            PASSES.append((passes or 0) / count)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        pods = (await kube.list(PODS))["items"]
        assert len(pods) == count, f"{len(pods)} pods for {count} PhJobs"
        return elapsed


async def baseline(count: int, latency: float) -> float:
    async with emulator(latency) as url, api_client_for(url) as api:
        kube = Kube(api, namespace=NAMESPACE)
        jobs = await _create_backlog(kube, count)
        settings = _settings()
        started = time.perf_counter()
        for job in jobs:
            await kube.create(PODS, job_pod(job, settings))
        return time.perf_counter() - started


SCENARIOS = {
    "the emulator as it is (in-memory, one CPU-bound thread)": 0.0,
    "5 ms added to every request (a remote API server's round trip)": 0.005,
}


async def main() -> None:
    redis_server = RedisServer().start()
    try:
        with SeaweedServer() as server:
            server.create_bucket(BUCKET)
            async with (
                open_s3(server.settings(BUCKET)) as s3,
                Redis.from_url(redis_server.url) as redis,
            ):
                feed = ExpiryFeed(ExpiryIndex(redis), policy=_settings())
                await measure(Stores(s3=s3, expiry_feed=feed, input_holds=InputHolds(redis)))
    finally:
        redis_server.stop()


async def measure(stores: Stores) -> None:
    await ours(min(JOBS, 20), 0.0, stores)  # warm-up: imports, first connections
    await baseline(min(JOBS, 20), 0.0)
    workers = _settings().controller_workers
    load_before = os.getloadavg()[0]
    rows = []
    for label, latency in SCENARIOS.items():
        ours_samples: list[float] = []
        base_samples: list[float] = []
        for _ in range(REPEAT):
            ours_samples.append(await ours(JOBS, latency, stores))
            base_samples.append(await baseline(JOBS, latency))
        mine, base = Figures(ours_samples), Figures(base_samples)
        rate, base_rate = JOBS / mine.median, JOBS / base.median
        rows.append(
            f"| {label} | {mine} | {rate:.0f} | {base} | {base_rate:.0f} "
            f"| **{rate / base_rate:.2f}x** |"
        )
    table = "\n".join(rows)
    write_section(
        "controller",
        f"""## Controller: reconcile throughput ({JOBS} PhJobs created at once)

Time from the controller's start (lease, list, watches) to its {JOBS}th job pod, against a
fresh KubernetesEmulator in a child process (`bench/bench_controller.py`), median of
{REPEAT} runs each. Baseline: a naive sequential loop POSTing the same {JOBS} pod manifests
with the same client (no reads, no status, no watches), against the same kind of server.
The controller is given a SeaweedFS server and a Redis for the job logs and the expiry
index it writes when a job ends; no job ends here, so reconciling only talks to the
Kubernetes API.

| API server | controller ({workers} workers) | PhJobs/s | baseline | PhJobs/s | ratio |
|---|---|---|---|---|---|
{table}

Reconcile passes per PhJob: {max(PASSES):.2f} (the most in any run). A pass reads the
PhJob (decisions are made on the current object, never a cached copy), creates the pod and
writes the status: 3 requests where the baseline makes 1; the pod's ADDED and the status's
MODIFIED events that come back cost no pass (the controller knows its own writes by
resourceVersion). Against the bare emulator, whose single thread is the bottleneck, the
ratio follows that request count (between 1/3 and 1/2: the controller's reads are cheaper
than creates). With a round trip to wait for, as on a real cluster, the {workers} workers
overlap the requests and the controller outruns the sequential loop. The machine is shared
(load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end): read the
spreads with that in mind.
""",
    )


if __name__ == "__main__":
    if "--serve" in sys.argv:
        asyncio.run(_serve_forever(float(sys.argv[-1])))
    else:
        os.nice(5)  # a shared machine: let interactive work come first
        asyncio.run(main())
