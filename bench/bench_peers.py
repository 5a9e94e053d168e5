"""Ours against the tools users would pick instead, side by side on one S3 server.

The peers are the AWS CLI (``aws s3 rm --recursive`` to expire a folder; ``aws s3 sync``
against the uploader is ``bench_collect.py``, with this script's peers and meters) and
MLflow's tracking server proxying artifacts from S3
(``mlflow server --serve-artifacts --artifacts-destination s3://...``). This script
installs them on first use into ``bench/.peers/venv`` (git-ignored) from the pins in
``bench/peers-constraints.txt``, so they never touch our virtualenv.

Every side runs as its own process through its real entry point, against the same S3
server, SeaweedFS (``servers.SeaweedServer``: ``weed mini``, a separate process on loopback),
holding the same data:

- list: GraphQL ``phJob { artifact { items } }`` from ``python -m artifacts_api`` vs MLflow's
  ``GET /api/2.0/mlflow/artifacts/list?run_id=`` (what its UI calls), for 10, 1,000 and
  10,000 files, one at a time and with 50 concurrent clients;
- download: one 500 MiB file through our presigned link vs MLflow's proxied
  ``GET /api/2.0/mlflow-artifacts/artifacts/<path>``, with the CPU seconds and RSS of the
  serving processes while it runs;
- expire: ``python -m artifacts_janitor --once`` over 1,000 expired folders vs
  ``aws s3 rm --recursive`` once per expired folder.

Runs alternate (ours, peer, ours, ...) after a warm-up, so load from elsewhere on this
shared machine falls on both alike; figures are medians with their spread.
``BENCH_QUICK=1``: small sizes and fewer repetitions, for development.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import psutil
import yarl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from common import QUICK, Figures, write_section  # noqa: E402
from servers import LOOPBACK, SeaweedServer, free_port, wait_for_http  # noqa: E402
from support.servers import RedisServer  # noqa: E402

from artifacts_shared.jobstore import LocalJobStore  # noqa: E402
from artifacts_shared.layout import job_prefix  # noqa: E402
from artifacts_shared.phjob import PhJob, PhJobMetadata, PhJobSpec  # noqa: E402

PEERS = HERE / ".peers"
PEER_VENV = PEERS / "venv"
PEER_BIN = PEER_VENV / "bin"
CONSTRAINTS = HERE / "peers-constraints.txt"
PEER_PACKAGES = ("awscli", "mlflow", "boto3")

KIB, MIB = 1024, 1 << 20
GROUP = "bench"
OURS_BUCKET = "phfs"
MLFLOW_BUCKET = "mlflow"
WARMUP = 1
REPEAT = 2 if QUICK else 3
CLIENTS = 50
MLFLOW_HEALTHCHECK = 60

LIST_SIZES = (10, 100, 1_000) if QUICK else (10, 1_000, 10_000)
LIST_REPEATS = {10: 20, 100: 10, 1_000: 10, 10_000: 5}
if QUICK:
    LIST_REPEATS = {size: max(3, n // 3) for size, n in LIST_REPEATS.items()}
LOAD_REQUESTS = {10: 100, 100: 50, 1_000: CLIENTS} if QUICK else {10: 250, 1_000: CLIENTS}
DOWNLOAD_SIZE = (64 if QUICK else 500) * MIB
EXPIRED_FOLDERS = 100 if QUICK else 1000
"""Issue 10 had 2,000 on moto, whose store the benchmark filled directly; every object now
goes in by PUT, and a round of 2,000 folders (20,000 PUTs) did not fit `make bench`."""
OBJECTS_PER_FOLDER = 10
RM_SAMPLE = 5 if QUICK else 10
"""Folders ``aws s3 rm`` deletes per round: each costs a whole CLI process, so 1,000 of
them would take over 10 minutes; every folder is alike, so a sample gives its cost."""


# --- the peers' virtualenv -----------------------------------------------------------


def ensure_peers() -> dict[str, str]:
    """Create or refresh ``bench/.peers/venv`` from the pins; return the peers' versions."""
    stamp = PEER_VENV / ".constraints"
    pins = CONSTRAINTS.read_text(encoding="utf-8")
    if not (stamp.exists() and stamp.read_text(encoding="utf-8") == pins):
        print("bench_peers: installing the peers into bench/.peers/venv ...", flush=True)
        started = time.perf_counter()
        if not (PEER_BIN / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run(
            [
                str(PEER_BIN / "python"),
                *("-m", "pip", "install", "--quiet", "--disable-pip-version-check"),
                *("-c", str(CONSTRAINTS), *PEER_PACKAGES),
            ],
            check=True,
        )
        stamp.write_text(pins, encoding="utf-8")
        print(f"bench_peers: installed in {time.perf_counter() - started:.0f} s", flush=True)
    wanted = ("awscli", "botocore", "mlflow", "uvicorn")
    found = {}
    for line in pins.splitlines():
        name, _, version = line.partition("==")
        if name.lower() in wanted:
            found[name.lower()] = version
    return found


# --- measuring processes ----------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    """What one process cost: wall seconds, CPU seconds (user + system), peak RSS bytes."""

    seconds: float
    cpu: float
    peak_rss: int


def run_measured(argv: list[str], env: dict[str, str]) -> tuple[Usage, str]:
    """Run ``argv`` to its end; its cost from the kernel's own accounting, and its stdout.

    CPU comes from ``wait4``, peak RSS from the child's ``VmHWM``: ``wait4``'s ``ru_maxrss``
    starts from this process's RSS at the fork (the kernel carries the old memory's high
    water mark over ``exec``), so every child of a 100 MiB benchmark "peaked" at 100 MiB.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        child = subprocess.Popen(argv, env=env, stdout=out, stderr=err)
        with HighWater(child.pid) as memory:
            # Wait for the end without reaping: until wait4, the pid stays this child's.
            os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
        _, status, rusage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if child.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv[:4])} exited {child.returncode}: {err.read()[-3000:]}"
            )
        return Usage(seconds, rusage.ru_utime + rusage.ru_stime, memory.peak), out.read()


class HighWater:
    """A process's own peak RSS (``VmHWM``, bytes), polled until the block ends.

    The kernel keeps the high water mark itself, so polling misses only what the process
    grows in its last ``interval`` before it exits.
    """

    def __init__(self, pid: int, *, interval: float = 0.01) -> None:
        self._status = Path(f"/proc/{pid}/status")
        self._interval = interval
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self.peak = 0

    def _poll(self) -> None:
        while True:
            try:
                text = self._status.read_text()
            except OSError:
                return
            for line in text.splitlines():
                if line.startswith("VmHWM:"):  # "VmHWM:   123456 kB"; gone once a zombie
                    self.peak = max(self.peak, int(line.split()[1]) * 1024)
            if self._done.wait(self._interval):
                return

    def __enter__(self) -> HighWater:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._done.set()
        self._thread.join()


class Cpu:
    """CPU seconds (user + system) a process and its descendants have used so far.

    The descendants are those alive when the meter is made: the servers here keep theirs.
    """

    def __init__(self, pid: int) -> None:
        root = psutil.Process(pid)
        self.processes = [root, *root.children(recursive=True)]

    def read(self) -> float:
        total = 0.0
        for process in self.processes:
            try:
                times = process.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
        return total


class Watch:
    """CPU seconds and peak RSS of a running process and its descendants during a block.

    RSS is sampled every ``interval`` seconds in a thread and summed over the processes,
    so a short spike between samples can be missed; CPU comes from the kernel's counters.
    """

    def __init__(self, pid: int, *, interval: float = 0.02) -> None:
        self._meter = Cpu(pid)
        self._processes = self._meter.processes
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.idle_rss = 0
        self.peak_rss = 0
        self.peak_one = 0
        """The largest RSS of any one of the processes."""
        self.cpu = 0.0

    def _rss(self) -> int:
        total = 0
        for process in self._processes:
            try:
                rss = process.memory_info().rss
            except psutil.Error:
                continue
            total += rss
            self.peak_one = max(self.peak_one, rss)
        return total

    def _cpu(self) -> float:
        return self._meter.read()

    def _sample(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak_rss = max(self.peak_rss, self._rss())

    def __enter__(self) -> Watch:
        self.idle_rss = self.peak_rss = self._rss()
        self._cpu_before = self._cpu()
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_rss = max(self.peak_rss, self._rss())
        self.cpu = self._cpu() - self._cpu_before


# --- environments -------------------------------------------------------------------------


def aws_env(s3: SeaweedServer, work: Path) -> dict[str, str]:
    """The AWS CLI's and MLflow's environment: the server's endpoint, no profile files."""
    empty = work / "aws-empty-config"
    empty.touch()
    return {
        **os.environ,
        "AWS_ACCESS_KEY_ID": s3.ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": s3.SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(empty),
        "AWS_SHARED_CREDENTIALS_FILE": str(empty),
        "AWS_EC2_METADATA_DISABLED": "true",
        "MLFLOW_S3_ENDPOINT_URL": s3.url,
    }


def our_env(s3: SeaweedServer, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "S3_ENDPOINT_URL": s3.url,
        "S3_PUBLIC_ENDPOINT_URL": s3.url,
        "S3_REGION": "us-east-1",
        "S3_ACCESS_KEY_ID": s3.ACCESS_KEY,
        "S3_SECRET_ACCESS_KEY": s3.SECRET_KEY,
        "PHFS_BUCKET": OURS_BUCKET,
        **extra,
    }


def aws(*args: str, s3_url: str) -> list[str]:
    return [str(PEER_BIN / "aws"), "--endpoint-url", s3_url, "--only-show-errors", *args]


def fresh_buckets(s3: SeaweedServer, *buckets: str) -> None:
    s3.reset()
    for bucket in buckets:
        s3.create_bucket(bucket)


# --- the results ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of the summary: our figure, the peer's, and which is better by how much."""

    what: str
    ours: str
    peer: str
    advantage: float
    """Above 1 ours is better by that factor; below 1 the peer is."""
    why: str = ""
    """Why the loser loses, told when this row is the largest loss."""
    at_least: bool = False
    """Ours was below what can be measured, floored: the advantage is a lower bound."""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    details: list[str] = field(default_factory=list)


def mib(n: float) -> str:
    return f"{n / MIB:,.0f} MiB"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def spread(figures: Figures) -> str:
    return f"±{figures.spread:.0%}"


# --- the api and MLflow, serving the same files ------------------------------------------------


@dataclass(frozen=True)
class Servers:
    api: str
    api_pid: int
    mlflow: str
    mlflow_pid: int
    s3_pid: int


def job_id(tag: str) -> str:
    return f"job-202601010000-{tag}"


@contextmanager
def running(argv: list[str], env: dict[str, str], log: Path, health: str) -> Iterator[int]:
    """A server as a child in a process group of its own, stopped with all its children."""
    with log.open("w") as output:
        child = subprocess.Popen(
            argv, env=env, stdout=output, stderr=output, start_new_session=True
        )
    try:
        try:
            wait_for_http(health, timeout=300, process=child)
        except RuntimeError:
            print(log.read_text()[-3000:], file=sys.stderr)
            raise
        yield child.pid
    finally:
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            try:
                os.killpg(child.pid, sig)
            except ProcessLookupError:
                break
            try:
                child.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue


@contextmanager
def api_and_mlflow(s3: SeaweedServer, work: Path, store: LocalJobStore) -> Iterator[Servers]:
    api_port, mlflow_port = free_port(), free_port()
    api_url = f"http://{LOOPBACK}:{api_port}"
    mlflow_url = f"http://{LOOPBACK}:{mlflow_port}"
    api_env = our_env(
        s3,
        API_HOST=LOOPBACK,
        API_PORT=str(api_port),
        API_AUTH_MODE="none",
        CONTROLLER_RUNTIME="local",
        LOCAL_JOBS_DIR=str(store.root),
        REDIS_URL="redis://127.0.0.1:1/0",  # listing and links never touch Redis
    )
    mlflow_tmp = work / "mlflow-tmp"
    mlflow_tmp.mkdir()
    mlflow_env = {**aws_env(s3, work), "TMPDIR": str(mlflow_tmp)}
    mlflow_argv = [
        str(PEER_BIN / "mlflow"),
        *("server", "--host", LOOPBACK, "--port", str(mlflow_port)),
        *("--backend-store-uri", f"sqlite:///{work / 'mlflow.db'}"),
        *("--artifacts-destination", f"s3://{MLFLOW_BUCKET}/mlflow", "--serve-artifacts"),
        # uvicorn's supervisor kills a worker that misses a 5 s health ping; on this shared
        # machine workers importing MLflow miss it, and were killed and restarted in a loop.
        *("--uvicorn-opts", f"--timeout-worker-healthcheck {MLFLOW_HEALTHCHECK}"),
    ]
    print("bench_peers: starting mlflow server (its first start migrates the database) ...")
    started = time.perf_counter()
    with running(mlflow_argv, mlflow_env, work / "mlflow.log", f"{mlflow_url}/health") as mlflow:
        print(f"bench_peers: mlflow server up in {time.perf_counter() - started:.0f} s", flush=True)
        api_argv = [sys.executable, "-m", "artifacts_api"]
        with running(api_argv, api_env, work / "api.log", f"{api_url}/healthz") as api:
            yield Servers(api_url, api, mlflow_url, mlflow, s3.pid)


def mlflow_post(url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{url}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


@dataclass(frozen=True)
class Pair:
    """One data set stored twice: as our job's folder and as an MLflow run's artifacts."""

    job: str
    run_id: str
    mlflow_path: str
    """The run's artifact folder as MLflow's proxy names it: ``<experiment>/<run>/artifacts``."""


def make_pair(servers: Servers, store: LocalJobStore, experiment: str, tag: str) -> Pair:
    name = job_id(tag)
    store.create(
        PhJob(
            metadata=PhJobMetadata(name=name, creation_timestamp=datetime.now(UTC)),
            spec=PhJobSpec(display_name=name, group_name=GROUP, command="true"),
        )
    )
    run = mlflow_post(
        servers.mlflow,
        "/api/2.0/mlflow/runs/create",
        {"experiment_id": experiment, "run_name": tag},
    )["run"]["info"]
    # mlflow-artifacts:/<experiment>/<run>/artifacts, under --artifacts-destination.
    path = run["artifact_uri"].removeprefix("mlflow-artifacts:").lstrip("/")
    return Pair(name, run["run_id"], path)


def seed_pair(s3: SeaweedServer, pair: Pair, names: list[str], *, size: int) -> None:
    ours = job_prefix(GROUP, pair.job)
    s3.seed(OURS_BUCKET, [f"{ours}{name}" for name in names], size=size)
    s3.seed(
        OURS_BUCKET, [f"{ours}.primehub/metadata/expiredAt"], text=str(int(time.time()) + 86400)
    )
    s3.seed(MLFLOW_BUCKET, [f"mlflow/{pair.mlflow_path}/{name}" for name in names], size=size)


# --- list: GraphQL items vs MLflow's artifact listing -----------------------------------------


def pages(files: int) -> tuple[int, int]:
    """ListObjectsV2 pages per listing: ours lists the folder's expiredAt with its files."""
    return -(-(files + 1) // 1000), -(-files // 1000)


def list_why(files: int, ours: Side, peer: Side) -> str:
    pages_ours, pages_peer = pages(files)
    return (
        "both wait on the same SeaweedFS for the same keys; per listing SeaweedFS spent "
        f"{ms(ours.per_request(ours.s3_cpu))} of CPU for ours ({pages_ours} ListObjectsV2 "
        f"page(s): our folder also holds the job's `.primehub/metadata/expiredAt`, listed "
        f"with the files and left out) and {ms(peer.per_request(peer.s3_cpu))} for MLflow "
        f"({pages_peer} page(s)); the servers "
        f"themselves spent {ms(ours.per_request(ours.server_cpu))} (our api: GraphQL parse, "
        f"validation, one result per item) and {ms(peer.per_request(peer.server_cpu))} "
        "(MLflow: a sqlite read of the run, one JSON entry per file)"
    )


def load_why(files: int, per: dict[str, float]) -> str:
    pages_ours, pages_peer = pages(files)
    return (
        f"per request our api spent {ms(per['ours'])} of CPU in its one process and SeaweedFS "
        f"{ms(per['s3_ours'])} ({pages_ours} page(s): the folder's metadata is listed "
        f"with its files), MLflow {ms(per['peer'])} spread over its 4 worker processes and "
        f"SeaweedFS {ms(per['s3_peer'])} ({pages_peer} page(s)). The machine's 2 cores are "
        f"shared with SeaweedFS and with other work (load average {os.getloadavg()[0]:.1f} "
        "then), and the kernel shares CPU out per runnable process: MLflow's 4 workers "
        "get up to 4 shares where our one asyncio process gets one (the api scales out "
        "as replicas instead)"
    )


ITEMS = """query ($id: ID!) {
  phJob(where: {id: $id}) { id artifact { prefix items { name size lastModified } } }
}"""
LINK = """query ($id: ID!, $name: String!) {
  phJob(where: {id: $id}) { artifact { item(name: $name) { downloadUrl } } }
}"""


async def our_listing(session: aiohttp.ClientSession, servers: Servers, pair: Pair, n: int) -> None:
    body = {"query": ITEMS, "variables": {"id": pair.job}}
    async with session.post(f"{servers.api}/graphql", json=body) as response:
        answer = await response.json()
    items = answer["data"]["phJob"]["artifact"]["items"]
    assert len(items) == n, answer.get("errors")


async def mlflow_listing(
    session: aiohttp.ClientSession, servers: Servers, pair: Pair, n: int
) -> None:
    url = f"{servers.mlflow}/api/2.0/mlflow/artifacts/list"
    async with session.get(url, params={"run_id": pair.run_id}) as response:
        answer = await response.json()
    assert len(answer.get("files", ())) == n, answer


@dataclass
class Side:
    """One side's latencies, and the CPU its requests cost its server and the S3 server."""

    latency: list[float] = field(default_factory=list)
    server_cpu: float = 0.0
    s3_cpu: float = 0.0

    def per_request(self, cpu: float) -> float:
        return cpu / len(self.latency)


async def alternate(
    ours: Callable[[], Awaitable[None]],
    peer: Callable[[], Awaitable[None]],
    repeat: int,
    *,
    servers: Servers,
) -> tuple[Side, Side]:
    """Ours then the peer, ``repeat`` times after a warm-up, metering CPU around each."""
    await ours()
    await peer()  # warm-up: connections, caches, imports on first use
    storage = Cpu(servers.s3_pid)
    sides = (
        (ours, Cpu(servers.api_pid), Side()),
        (peer, Cpu(servers.mlflow_pid), Side()),
    )
    for _ in range(repeat):
        for run, server, side in sides:
            cpu_server, cpu_s3 = server.read(), storage.read()
            started = time.perf_counter()
            await run()
            side.latency.append(time.perf_counter() - started)
            side.server_cpu += server.read() - cpu_server
            side.s3_cpu += storage.read() - cpu_s3
    return sides[0][2], sides[1][2]


async def load(run: Callable[[], Awaitable[None]], requests: int) -> tuple[float, Figures]:
    """``requests`` requests from ``CLIENTS`` clients at once: requests/s and latencies."""
    latencies: list[float] = []
    tickets = iter(range(requests))

    async def client() -> None:
        for _ in tickets:
            started = time.perf_counter()
            await run()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return requests / (time.perf_counter() - started), Figures(latencies)


@dataclass
class Memory:
    """Peak RSS of the serving processes over the listing of the largest job."""

    api: int = 0
    mlflow: int = 0
    mlflow_one: int = 0


async def listing(
    session: aiohttp.ClientSession, servers: Servers, pairs: dict[int, Pair], report: Report
) -> Memory:
    memory = Memory()
    latency = [
        "| files | ours p50 | ours p95 | MLflow p50 | MLflow p95 "
        "| advantage p50 (MLflow / ours) | runs | server CPU a listing, ours / MLflow "
        "| SeaweedFS CPU a listing, ours / MLflow |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    throughput = [
        "| files | requests | ours req/s | ours p50 / p95 | MLflow req/s | MLflow p50 / p95 "
        "| advantage (ours / MLflow req/s) | server CPU a request, ours / MLflow "
        "| SeaweedFS CPU a request, ours / MLflow |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    smallest = LIST_SIZES[0]
    # MLflow's 4 workers each do costly work on their first request (imports, the S3
    # client): a burst from every client warms them all before anything is timed.
    await load(lambda: mlflow_listing(session, servers, pairs[smallest], smallest), CLIENTS)
    await load(lambda: our_listing(session, servers, pairs[smallest], smallest), CLIENTS)
    for n in LIST_SIZES:
        pair = pairs[n]
        print(f"bench_peers: list {n:,} files ...", flush=True)

        async def ours(pair: Pair = pair, n: int = n) -> None:
            await our_listing(session, servers, pair, n)

        async def peer(pair: Pair = pair, n: int = n) -> None:
            await mlflow_listing(session, servers, pair, n)

        requests = LOAD_REQUESTS.get(n)
        with Watch(servers.api_pid) as api, Watch(servers.mlflow_pid) as mlflow:
            our_side, their_side = await alternate(ours, peer, LIST_REPEATS[n], servers=servers)
            mine, theirs = Figures(our_side.latency), Figures(their_side.latency)
            cpu_a_listing = [
                our_side.per_request(our_side.server_cpu),
                their_side.per_request(their_side.server_cpu),
                our_side.per_request(our_side.s3_cpu) + their_side.per_request(their_side.s3_cpu),
            ]
            if requests:
                # CPU per request, of the server and of SeaweedFS, says where the time goes.
                with Watch(servers.api_pid) as cpu_ours, Watch(servers.s3_pid) as s3_ours:
                    rps_ours, lat_ours = await load(ours, requests)
                with (
                    Watch(servers.mlflow_pid) as cpu_peer,
                    Watch(servers.s3_pid) as s3_peer,
                ):
                    rps_peer, lat_peer = await load(peer, requests)
        # The last, largest job wins.
        memory = Memory(api.peak_rss, mlflow.peak_rss, mlflow.peak_one)
        latency.append(
            f"| {n:,} | {ms(mine.median)} | {ms(mine.percentile(95))} | {ms(theirs.median)} "
            f"| {ms(theirs.percentile(95))} | **{theirs.median / mine.median:.2f}x** "
            f"| {len(mine.samples)} "
            f"| {ms(our_side.per_request(our_side.server_cpu))} / "
            f"{ms(their_side.per_request(their_side.server_cpu))} "
            f"| {ms(our_side.per_request(our_side.s3_cpu))} / "
            f"{ms(their_side.per_request(their_side.s3_cpu))} |"
        )
        report.rows.append(
            Row(
                f"List {n:,} files, p50 latency",
                f"{ms(mine.median)} ({spread(mine)})",
                f"{ms(theirs.median)} ({spread(theirs)})",
                theirs.median / mine.median,
                why=list_why(n, our_side, their_side),
            )
        )
        if not requests:
            throughput.append(f"| {n:,} | not run | | | | | (see below) | | |")
            continue
        per = {
            "ours": cpu_ours.cpu / requests,
            "s3_ours": s3_ours.cpu / requests,
            "peer": cpu_peer.cpu / requests,
            "s3_peer": s3_peer.cpu / requests,
        }
        throughput.append(
            f"| {n:,} | {requests} | {rps_ours:.1f} | {ms(lat_ours.median)} / "
            f"{ms(lat_ours.percentile(95))} | {rps_peer:.1f} | {ms(lat_peer.median)} / "
            f"{ms(lat_peer.percentile(95))} | **{rps_ours / rps_peer:.2f}x** "
            f"| {ms(per['ours'])} / {ms(per['peer'])} "
            f"| {ms(per['s3_ours'])} / {ms(per['s3_peer'])} |"
        )
        report.rows.append(
            Row(
                f"List {n:,} files, {CLIENTS} clients (requests/s)",
                f"{rps_ours:.1f}",
                f"{rps_peer:.1f}",
                rps_ours / rps_peer,
                why=load_why(n, per),
            )
        )
    report.details += [
        "## List: GraphQL `artifact { items }` vs MLflow's artifact listing",
        "",
        "The same flat folder of N files of 1 KiB, stored once under our job's prefix "
        f"(bucket `{OURS_BUCKET}`) and once under an MLflow run's artifact root (bucket "
        f"`{MLFLOW_BUCKET}`, holding the same number of keys). Ours: `python -m "
        "artifacts_api` (one process, auth mode none), query "
        "`phJob { artifact { prefix items { name size lastModified } } }`. MLflow: "
        "`mlflow server --serve-artifacts --artifacts-destination s3://...` with its defaults "
        "(uvicorn, 4 workers, sqlite backend; only uvicorn's worker health-check timeout "
        f"raised from 5 s to {MLFLOW_HEALTHCHECK} s, or the loaded machine's slow worker "
        "starts get them killed), `GET /api/2.0/mlflow/artifacts/list?run_id=`, "
        "which its UI calls. Requests alternate ours/MLflow after a warm-up.",
        "",
        *latency,
        "",
        f"Load: {CLIENTS} concurrent clients share a fixed number of requests; requests/s = "
        "requests / elapsed. Both servers were first warmed by a burst of "
        f"{CLIENTS} concurrent requests (MLflow's 4 workers are each slow on their first).",
        "",
        *throughput,
        "",
        *(
            []
            if LIST_SIZES[-1] in LOAD_REQUESTS
            else [
                f"Not run at {LIST_SIZES[-1]:,} files: one such listing cost our api "
                f"{cpu_a_listing[0]:.1f} s of CPU, MLflow {cpu_a_listing[1]:.1f} s and SeaweedFS "
                f"{cpu_a_listing[2]:.1f} s for the two (see above), so {CLIENTS} requests to "
                f"each side would need about {CLIENTS * sum(cpu_a_listing) / 60:.1f} minutes "
                f"of CPU on this machine's {os.cpu_count()} shared cores, more than this "
                "benchmark's share of `make bench`'s 20 minutes.",
                "",
            ]
        ),
    ]
    return memory


# --- download: a presigned link vs MLflow's proxy ----------------------------------------------


CPU_FLOOR = 0.01
"""CPU seconds below this are read from counters too coarse to divide by."""
DOWNLOAD_WHY = (
    "MLflow's proxy makes every byte pass through its server twice, S3 to a temporary "
    "file and that file to the client, where a presigned link sends the client to S3"
)


@dataclass
class Downloads:
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    peak: list[int] = field(default_factory=list)
    rise: list[int] = field(default_factory=list)

    def add(self, seconds: float, watch: Watch) -> None:
        self.seconds.append(seconds)
        self.cpu.append(watch.cpu)
        self.peak.append(watch.peak_rss)
        self.rise.append(watch.peak_rss - watch.idle_rss)


async def fetch(session: aiohttp.ClientSession, url: str | yarl.URL) -> int:
    received = 0
    async with session.get(url) as response:
        response.raise_for_status()
        async for chunk in response.content.iter_chunked(MIB):
            received += len(chunk)
    return received


async def download(
    session: aiohttp.ClientSession, servers: Servers, pair: Pair, report: Report
) -> None:
    name = "big.bin"

    async def ours() -> None:
        body = {"query": LINK, "variables": {"id": pair.job, "name": name}}
        async with session.post(f"{servers.api}/graphql", json=body) as response:
            answer = await response.json()
        link = answer["data"]["phJob"]["artifact"]["item"]["downloadUrl"]
        # encoded=True: send the signed query string exactly as signed.
        assert await fetch(session, yarl.URL(link, encoded=True)) == DOWNLOAD_SIZE

    async def peer() -> None:
        url = f"{servers.mlflow}/api/2.0/mlflow-artifacts/artifacts/{pair.mlflow_path}/{name}"
        assert await fetch(session, url) == DOWNLOAD_SIZE

    print(f"bench_peers: download {mib(DOWNLOAD_SIZE)} ...", flush=True)
    sides = {"ours": (ours, servers.api_pid), "peer": (peer, servers.mlflow_pid)}
    results = {side: Downloads() for side in sides}
    storage = Cpu(servers.s3_pid)
    stored: dict[str, list[float]] = {side: [] for side in sides}
    for round_ in range(WARMUP + REPEAT):
        for side, (run, pid) in sides.items():
            before = storage.read()
            with Watch(pid) as watch:
                started = time.perf_counter()
                await run()
                seconds = time.perf_counter() - started
            if round_ >= WARMUP:
                results[side].add(seconds, watch)
                stored[side].append(storage.read() - before)
    s3_ours, s3_peer = Figures(stored["ours"]), Figures(stored["peer"])
    mine, theirs = results["ours"], results["peer"]
    t_ours, t_peer = Figures(mine.seconds), Figures(theirs.seconds)
    cpu_ours, cpu_peer = Figures(mine.cpu), Figures(theirs.cpu)
    rise_ours, rise_peer = max(mine.rise), max(theirs.rise)
    speed = DOWNLOAD_SIZE / MIB
    report.rows += [
        Row(
            f"Download {mib(DOWNLOAD_SIZE)} (throughput)",
            f"{speed / t_ours.median:,.0f} MiB/s ({spread(t_ours)})",
            f"{speed / t_peer.median:,.0f} MiB/s ({spread(t_peer)})",
            t_peer.median / t_ours.median,
            why=DOWNLOAD_WHY,
        ),
        Row(
            f"Download {mib(DOWNLOAD_SIZE)}: CPU seconds of the api process(es)",
            f"{cpu_ours.median:.2f} s",
            f"{cpu_peer.median:.2f} s",
            cpu_peer.median / max(cpu_ours.median, CPU_FLOOR),
            why=DOWNLOAD_WHY,
            at_least=cpu_ours.median < CPU_FLOOR,
        ),
        Row(
            f"Download {mib(DOWNLOAD_SIZE)}: RSS growth of the api process(es)",
            mib(max(rise_ours, 0)),
            mib(max(rise_peer, 0)),
            max(rise_peer, MIB) / max(rise_ours, MIB),
            why=DOWNLOAD_WHY,
            at_least=rise_ours < MIB,
        ),
    ]
    report.details += [
        f"## Download: one {mib(DOWNLOAD_SIZE)} file, presigned link vs MLflow's proxy",
        "",
        "Ours: the GraphQL query for the item's `downloadUrl`, then a GET of that presigned "
        "URL, straight from S3. MLflow: `GET /api/2.0/mlflow-artifacts/artifacts/<path>`: "
        "the server downloads the object from S3 into a temporary file (boto3 "
        "`download_file`, ranged GETs in threads) and then streams that file. The client is "
        "the same aiohttp session reading 1 MiB chunks. CPU seconds and RSS are those of the "
        "serving processes (our api; MLflow's `mlflow server` and all its children) during "
        f"the download, {WARMUP} warm-up then {REPEAT} runs each, alternating.",
        "",
        "| | ours | MLflow |",
        "|---|---:|---:|",
        f"| wall time | {t_ours} | {t_peer} |",
        f"| throughput (median) | {speed / t_ours.median:,.0f} MiB/s "
        f"| {speed / t_peer.median:,.0f} MiB/s |",
        f"| CPU seconds of the serving processes | {cpu_ours.median:.2f} ({spread(cpu_ours)}) "
        f"| {cpu_peer.median:.2f} ({spread(cpu_peer)}) |",
        f"| peak RSS of the serving processes | {mib(max(mine.peak))} | {mib(max(theirs.peak))} |",
        f"| RSS growth during the download (largest) | {mib(max(rise_ours, 0))} "
        f"| {mib(max(rise_peer, 0))} |",
        f"| CPU seconds of SeaweedFS | {s3_ours.median:.2f} ({spread(s3_ours)}) "
        f"| {s3_peer.median:.2f} ({spread(s3_peer)}) |",
        "",
        "SeaweedFS serves every byte once for both sides: to the client for ours, to "
        "MLflow's server for MLflow's, which then sends it on a second time.",
        "",
    ]


# --- expire: the janitor vs aws s3 rm --recursive -----------------------------------------------


def expired_folders(count: int) -> list[str]:
    return [job_prefix(GROUP, job_id(f"x{i:05d}")) for i in range(count)]


def seed_expired(s3: SeaweedServer, prefixes: list[str]) -> None:
    """Job folders of ``OBJECTS_PER_FOLDER`` objects at ``prefixes``, all expired."""
    artifacts = OBJECTS_PER_FOLDER - 2  # and manifest.json, and expiredAt
    s3.seed(
        OURS_BUCKET,
        [f"{prefix}dir{j % 2}/file-{j}.bin" for prefix in prefixes for j in range(artifacts)]
        + [f"{prefix}.primehub/metadata/manifest.json" for prefix in prefixes],
        size=4 * KIB,
    )
    expired = str(int(time.time()) - 3600)
    s3.seed(OURS_BUCKET, [f"{p}.primehub/metadata/expiredAt" for p in prefixes], text=expired)


def expire(s3: SeaweedServer, work: Path, report: Report) -> tuple[Usage, int]:
    """Returns the janitor's largest run and the largest ``aws s3 rm``, for memory."""
    print(f"bench_peers: expire {EXPIRED_FOLDERS:,} folders ...", flush=True)
    janitor_runs: list[Usage] = []
    rm_runs: list[Usage] = []
    storage = Cpu(s3.pid)
    stored: dict[str, list[float]] = {"ours": [], "peer": []}
    """SeaweedFS's CPU seconds per folder, for each janitor run and each `aws s3 rm`."""
    env_peer = aws_env(s3, work)
    for round_ in range(WARMUP + REPEAT):
        # A Redis of its own for each round (the janitor's run lock and expiry index): the
        # run then finds the folders by its rescan of the bucket, as a first run does,
        # instead of skipping a rescan that the previous round's run made minutes ago.
        redis = RedisServer().start()
        try:
            env_ours = our_env(s3, REDIS_URL=redis.url, JANITOR_METRICS_PORT="0")
            # The warm-up (imports, page cache, connections) needs no full round.
            folders = EXPIRED_FOLDERS if round_ >= WARMUP else EXPIRED_FOLDERS // 10
            fresh_buckets(s3, OURS_BUCKET)
            prefixes = expired_folders(folders)
            seed_expired(s3, prefixes)
            # The peer first, on a sample of the full bucket; then that sample is loaded
            # again, and the janitor finds the same full bucket.
            picks = RM_SAMPLE if round_ >= WARMUP else 2
            sample = prefixes[:: len(prefixes) // picks][:picks]
            for prefix in sample:
                argv = aws("s3", "rm", "--recursive", f"s3://{OURS_BUCKET}/{prefix}", s3_url=s3.url)
                before = storage.read()
                used, _ = run_measured(argv, env_peer)
                if round_ >= WARMUP:
                    rm_runs.append(used)
                    stored["peer"].append(storage.read() - before)
            seed_expired(s3, sample)
            before = storage.read()
            used, out = run_measured(
                [sys.executable, "-m", "artifacts_janitor", "--once"], env_ours
            )
            deleted = json.loads(out)["foldersDeleted"]
            assert deleted == folders, out[-2000:]
            if round_ >= WARMUP:
                janitor_runs.append(used)
                stored["ours"].append((storage.read() - before) / folders)
        finally:
            redis.stop()
    ours = Figures([u.seconds / EXPIRED_FOLDERS for u in janitor_runs])
    whole = Figures([u.seconds for u in janitor_runs])
    peer = Figures([u.seconds for u in rm_runs])
    report.rows.append(
        Row(
            f"Expire {EXPIRED_FOLDERS:,} folders x {OBJECTS_PER_FOLDER} objects (per folder)",
            ms(ours.median),
            ms(peer.median),
            peer.median / ours.median,
            why=(
                "each `aws s3 rm` is a new Python process (about a second to start) that "
                "lists the folder and sends one DeleteObject per key; the janitor is one "
                "process that reads each folder's expiredAt, lists it and deletes up to "
                "1,000 keys per DeleteObjects request"
            ),
        )
    )
    largest = max(janitor_runs, key=lambda u: u.peak_rss)
    rm_peak = max(u.peak_rss for u in rm_runs)
    cpu_ours = Figures([u.cpu for u in janitor_runs]).median / EXPIRED_FOLDERS
    cpu_peer = Figures([u.cpu for u in rm_runs]).median
    report.details += [
        f"## Expire: the janitor vs `aws s3 rm --recursive`, {EXPIRED_FOLDERS:,} expired "
        f"folders x {OBJECTS_PER_FOLDER} objects",
        "",
        f"Each of {REPEAT} rounds (after a warm-up round on a tenth of the folders) empties "
        f"the bucket and loads {EXPIRED_FOLDERS:,} expired job folders "
        f"({OBJECTS_PER_FOLDER - 2} artifacts of 4 KiB, `manifest.json`, `expiredAt`) over "
        "HTTP. Peer first: `aws s3 rm --recursive s3://bucket/<folder>/`, one process per "
        f"expired folder as a shell loop would run it, on {RM_SAMPLE} folders spread over the "
        "full bucket (every folder is alike; all of them would take "
        f"{peer.median * EXPIRED_FOLDERS / 60:.1f} minutes), handed the list of expired "
        "folders, which the janitor finds itself. Those folders are loaded again, then ours: "
        "`python -m artifacts_janitor --once` over the whole bucket (the whole run, process "
        "start included: it finds the folders, reads each `expiredAt`, deletes artifacts then "
        "metadata in batches, then the directories SeaweedFS keeps). Issue 10 measured 2,000 "
        "folders on moto, whose store the benchmark filled directly; every round is now "
        "loaded through PUTs, which at 2,000 folders did not fit `make bench`'s 20 minutes.",
        "",
        "| | ours: janitor | peer: `aws s3 rm --recursive` |",
        "|---|---:|---:|",
        f"| per expired folder | {ms(ours.median)} ({spread(ours)}) "
        f"| {ms(peer.median)} ({spread(peer)}) |",
        f"| all {EXPIRED_FOLDERS:,} folders | {whole} | {peer.median * EXPIRED_FOLDERS:,.0f} s "
        "(extrapolated) |",
        f"| CPU per folder | {cpu_ours * 1000:.1f} ms | {cpu_peer * 1000:.0f} ms |",
        f"| SeaweedFS CPU per folder | {Figures(stored['ours']).median * 1000:.1f} ms "
        f"| {Figures(stored['peer']).median * 1000:.1f} ms |",
        f"| peak RSS of one process | {mib(largest.peak_rss)} | {mib(rm_peak)} |",
        f"| runs | {len(janitor_runs)} | {len(rm_runs)} folders |",
        "",
    ]
    return largest, rm_peak


# --- the report ----------------------------------------------------------------------------------


def memory_rows(report: Report, memory: Memory, janitor: Usage, rm_peak: int) -> None:
    report.rows += [
        Row(
            f"Peak RSS serving {LIST_SIZES[-1]:,}-file listings (api process / all of "
            "MLflow's server processes)",
            mib(memory.api),
            f"{mib(memory.mlflow)} ({mib(memory.mlflow_one)} the largest one)",
            memory.mlflow / memory.api,
            why=(
                "`mlflow server` runs 4 uvicorn workers and its job consumers, each a "
                "Python process with MLflow's imports; the api is one process"
            ),
        ),
        Row(
            f"Peak RSS expiring {EXPIRED_FOLDERS:,} folders (the janitor's one process / "
            "one `aws s3 rm` process)",
            mib(janitor.peak_rss),
            mib(rm_peak),
            rm_peak / janitor.peak_rss,
            why=(
                "the janitor imports aiobotocore, arq and redis and keeps up to 16 folders "
                "and 256 pending deletions in flight; one `aws s3 rm` process holds one "
                "folder's listing (it is run once per folder, the janitor once for all)"
            ),
        ),
    ]


def summary(
    report: Report, memory: Memory, janitor: Usage, versions: dict[str, str], server: str
) -> str:
    rows = report.rows
    lost = [row for row in rows if row.advantage < 1]
    worst = min(lost, key=lambda row: row.advantage) if lost else None
    lines = [
        "## Against the tools users would pick instead: MLflow, the AWS CLI",
        "",
        f"`bench/bench_peers.py`{' (quick run, BENCH_QUICK=1: small sizes)' if QUICK else ''}. "
        f"Peers from `bench/peers-constraints.txt` in `bench/.peers/venv`: "
        + ", ".join(f"{name} {version}" for name, version in sorted(versions.items()))
        + f". Ours and the peer ran side by side in one run against the same S3 server, "
        f"{server} (`weed mini`), and the same data. **Advantage** = how many times better "
        "ours is (the peer's time, CPU or memory over ours; our rate over the peer's): "
        "above 1 ours wins, below 1 the peer does.",
        "",
        "| comparison | ours | peer | advantage |",
        "|---|---:|---:|---:|",
    ]
    for row in rows:
        bound = ">= " if row.at_least else ""
        mark = (
            f"**{bound}{row.advantage:.2f}x**"
            if row.advantage >= 1
            else f"{row.advantage:.2f}x (loss)"
        )
        lines.append(f"| {row.what} | {row.ours} | {row.peer} | {mark} |")
    lines += [
        "",
        f"Memory in the largest cases: the api peaked at {mib(memory.api)} RSS over the "
        f"{LIST_SIZES[-1]:,}-file listings, the janitor at {mib(janitor.peak_rss)} over "
        f"{EXPIRED_FOLDERS:,} folders ({EXPIRED_FOLDERS * OBJECTS_PER_FOLDER:,} objects). "
        "RSS of several processes is summed: shared library pages count once per process.",
        "",
    ]
    if worst is None:
        lines.append("No loss in this run.")
    else:
        lines.append(
            f"**Largest loss: {worst.what}** ({worst.advantage:.2f}x: ours {worst.ours}, "
            f"peer {worst.peer}). Why: {worst.why}."
        )
        others = [row for row in lost if row is not worst]
        if others:
            lines.append("")
            lines.append(
                "Other losses: "
                + "; ".join(f"{row.what} ({row.advantage:.2f}x)" for row in others)
                + "."
            )
    return "\n".join([*lines, "", *report.details])


def machine_note(started: float, load_before: tuple[float, float, float], s3: SeaweedServer) -> str:
    after = os.getloadavg()
    objects, seconds = s3.loaded
    return (
        f"Machine: {os.cpu_count()} cores shared with other work; load average "
        f"{load_before[0]:.1f} when this script started and {after[0]:.1f} when it ended "
        f"(it took {time.perf_counter() - started:.0f} s, of which {seconds:.0f} s loading "
        f"{objects:,} objects by PUT, not timed). Spreads (±, half the range over the median) "
        "carry that noise."
    )


async def main() -> None:
    started, load_before = time.perf_counter(), os.getloadavg()
    versions = ensure_peers()
    report = Report()
    work = Path(tempfile.mkdtemp(prefix="bench-peers-"))
    try:
        with SeaweedServer() as s3:
            fresh_buckets(s3, OURS_BUCKET, MLFLOW_BUCKET)
            store = LocalJobStore(work / "jobs")
            with api_and_mlflow(s3, work, store) as servers:
                experiment = mlflow_post(
                    servers.mlflow, "/api/2.0/mlflow/experiments/create", {"name": "bench"}
                )["experiment_id"]
                pairs = {}
                for n in LIST_SIZES:
                    pairs[n] = make_pair(servers, store, experiment, f"n{n:05d}")
                    seed_pair(s3, pairs[n], [f"file-{i:05d}.bin" for i in range(n)], size=KIB)
                big = make_pair(servers, store, experiment, f"big{DOWNLOAD_SIZE // MIB:03d}")
                source = work / "big.bin"
                with source.open("wb") as handle:
                    for _ in range(DOWNLOAD_SIZE // MIB):
                        handle.write(os.urandom(MIB))
                s3.seed_file(OURS_BUCKET, f"{job_prefix(GROUP, big.job)}big.bin", source)
                s3.seed_file(MLFLOW_BUCKET, f"mlflow/{big.mlflow_path}/big.bin", source)
                source.unlink()
                connector = aiohttp.TCPConnector(limit=CLIENTS)
                timeout = aiohttp.ClientTimeout(total=600)
                async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
                    memory = await listing(session, servers, pairs, report)
                    await download(session, servers, big, report)
            janitor, rm_peak = expire(s3, work, report)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    memory_rows(report, memory, janitor, rm_peak)
    text = summary(report, memory, janitor, versions, s3.version)
    write_section("peers", text + "\n" + machine_note(started, load_before, s3))


if __name__ == "__main__":
    asyncio.run(main())
