"""The uploader against a plain sequential boto3 upload of the same files, side by side.

Both push the same staged files to the same S3 server: SeaweedFS (``weed mini``) as a
separate process on loopback (``servers.SeaweedServer``).
Ours is ``deliver()``, what ``python -m artifacts_controller.uploader`` runs once the job
has ended: its own walk of the staging folder, bounded parallel requests, multipart from
16 MiB, sha256 of every byte as it is sent, then the manifest and ``expiredAt``. The
baseline is one boto3 client calling ``put_object`` for each file in turn. Runs alternate
(ours, baseline, ours, ...) so that load from elsewhere on the machine falls on both alike.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import psutil
from botocore.config import Config
from common import QUICK, Figures, write_section
from servers import SeaweedServer

from artifacts_controller.delivery import Policy, deliver
from artifacts_controller.staging import DONE, FILES
from artifacts_controller.transfer import MIB, Tuning
from artifacts_shared.s3 import S3Client, open_s3

WORK = Path(__file__).resolve().parent / ".work" / "uploader"
BUCKET = "phfs"
GROUP = "bench"
KIB = 1024
REPEAT = 2  # full mode had 3: two keep `make bench` under 20 minutes (issue 10)
WARMUP = 1


@dataclass(frozen=True)
class Dataset:
    name: str
    label: str
    count: int
    size: int

    @property
    def total(self) -> int:
        return self.count * self.size


DATASETS = (
    [Dataset("small", "200 x 4 KiB", 200, 4 * KIB), Dataset("large", "2 x 24 MiB", 2, 24 * MIB)]
    if QUICK
    else [
        Dataset("small", "2,000 x 4 KiB", 2000, 4 * KIB),
        Dataset("large", "4 x 100 MiB", 4, 100 * MIB),
    ]
)


def stage(dataset: Dataset) -> tuple[Path, Policy]:
    """A staging folder as run-job.sh leaves it (``files/`` and ``done``), and the policy
    our side would deliver it with."""
    staging = WORK / dataset.name
    shutil.rmtree(staging, ignore_errors=True)
    files = staging / FILES
    for index in range(dataset.count):
        path = files / f"part-{index // 500:02}/file-{index:05}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            left = dataset.size
            while left:
                block = os.urandom(min(left, 8 * MIB))
                handle.write(block)
                left -= len(block)
    (staging / DONE).write_text("0\n", encoding="utf-8")
    policy = Policy(
        job=f"bench-{dataset.name}",
        group=GROUP,
        enabled=True,
        retention_seconds=604_800,
        limit_size_mb=1_000_000,
        limit_files=1_000_000,
    )
    return staging, policy


def sequential_boto3(client: Any, staging: Path, policy: Policy) -> None:
    """The baseline: what a short script would do, one ``put_object`` after another."""
    for path in sorted((staging / FILES).rglob("*.bin")):
        name = path.relative_to(staging / FILES).as_posix()
        with path.open("rb") as body:
            client.put_object(Bucket=BUCKET, Key=f"baseline/{policy.job}/{name}", Body=body)


async def ours(s3: S3Client, staging: Path, policy: Policy, tuning: Tuning) -> None:
    await deliver(
        staging,
        policy=policy,
        ended_at=int(time.time()),
        exit_code=0,
        s3=s3,
        bucket=BUCKET,
        tuning=tuning,
    )


def _cpu(process: psutil.Process) -> float:
    return float(sum(process.cpu_times()[:2]))


async def side_by_side(
    runners: dict[str, Callable[[], Awaitable[object]]], server: psutil.Process
) -> tuple[dict[str, Figures], dict[str, tuple[float, float]]]:
    """Time each runner in turn, round after round, so drift falls on all alike.

    Also the median CPU seconds of a run: this process's (the client's) and the server's.
    """
    samples: dict[str, list[float]] = {name: [] for name in runners}
    cpu: dict[str, list[tuple[float, float]]] = {name: [] for name in runners}
    me = psutil.Process()
    for round_ in range(WARMUP + REPEAT):
        for name, run in runners.items():
            client, stored, start = _cpu(me), _cpu(server), time.perf_counter()
            await run()
            if round_ >= WARMUP:
                samples[name].append(time.perf_counter() - start)
                cpu[name].append((_cpu(me) - client, _cpu(server) - stored))
    medians = {
        name: (statistics.median(c for c, _ in runs), statistics.median(s for _, s in runs))
        for name, runs in cpu.items()
    }
    return {name: Figures(values) for name, values in samples.items()}, medians


def _rate(dataset: Dataset, seconds: float) -> str:
    if dataset.size < MIB:
        return f"{dataset.count / seconds:,.0f} files/s"
    return f"{dataset.total / MIB / seconds:,.0f} MiB/s"


async def main() -> None:
    rows = []
    with SeaweedServer() as server:
        settings = server.settings(BUCKET)
        client = boto3.client(
            "s3",
            endpoint_url=server.url,
            region_name="us-east-1",
            aws_access_key_id=server.ACCESS_KEY,
            aws_secret_access_key=server.SECRET_KEY,
            # The same request shape as ours: path style, no extra CRC checksums.
            config=Config(
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                retries={"max_attempts": 3, "mode": "standard"},
            ),
        )
        tuning = Tuning()
        # Diagnostic: ours with one PUT a file, to show what multipart costs on this server.
        single = Tuning(part_size=1 << 40)
        async with open_s3(settings, max_connections=tuning.concurrency, sign_payloads=False) as s3:
            for dataset in DATASETS:
                staging, policy = stage(dataset)
                server.reset()
                client.create_bucket(Bucket=BUCKET)
                print(f"bench_uploader: {dataset.label} ...", flush=True)

                async def baseline(staging: Path = staging, policy: Policy = policy) -> None:
                    sequential_boto3(client, staging, policy)

                runners: dict[str, Callable[[], Awaitable[object]]] = {
                    "ours": lambda staging=staging, policy=policy: ours(
                        s3, staging, policy, tuning
                    ),
                    "baseline": baseline,
                }
                if dataset.size >= tuning.part_size:
                    runners["single"] = lambda staging=staging, policy=policy: ours(
                        s3, staging, policy, single
                    )
                rows.append((dataset, *await side_by_side(runners, psutil.Process(server.pid))))
                shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(WORK, ignore_errors=True)

    lines = [
        "## Uploader (issue 3): ours vs sequential boto3",
        "",
        f"Same staged files, same S3 server ({server.version}, `weed mini` as a separate "
        "process on loopback), "
        f"runs alternating ours/baseline, {REPEAT} repetitions after {WARMUP} warm-up"
        f"{' (quick mode: small sizes)' if QUICK else ''}. Ours is `deliver()` as run by "
        f"`python -m artifacts_controller.uploader`: {tuning.concurrency} requests at once, "
        f"multipart from {tuning.part_size // MIB} MiB in "
        f"{tuning.part_size // MIB} MiB parts, sha256 of every byte, then `manifest.json` and "
        "`expiredAt`. The baseline is one boto3 client calling `put_object` per file in turn "
        "(no hashing, no multipart, no metadata).",
        "",
        "| files | ours | sequential boto3 | speed-up (boto3 time / ours) "
        "| ours: CPU s, client / SeaweedFS | boto3: CPU s, client / SeaweedFS |",
        "|---|---|---|---|---|---|",
    ]
    for dataset, figures, cpu in rows:
        mine, theirs = figures["ours"], figures["baseline"]
        lines.append(
            f"| {dataset.label} | {mine} ({_rate(dataset, mine.median)}) "
            f"| {theirs} ({_rate(dataset, theirs.median)}) "
            f"| **{theirs.median / mine.median:.2f}x** "
            f"| {cpu['ours'][0]:.1f} / {cpu['ours'][1]:.1f} "
            f"| {cpu['baseline'][0]:.1f} / {cpu['baseline'][1]:.1f} |"
        )
        if "single" in figures:
            alone = figures["single"]
            lines.append(
                f"| {dataset.label}, ours with one PUT a file (diagnostic) "
                f"| {alone} ({_rate(dataset, alone.median)}) | | "
                f"{theirs.median / alone.median:.2f}x "
                f"| {cpu['single'][0]:.1f} / {cpu['single'][1]:.1f} | |"
            )
    lines += ["", *_why(rows)]
    write_section("uploader", "\n".join(lines))


def _why(
    rows: list[tuple[Dataset, dict[str, Figures], dict[str, tuple[float, float]]]],
) -> list[str]:
    """What the figures of this run say, in words."""
    said = [
        "SeaweedFS is a Go server on several threads: unlike moto (one Python process, "
        "issue 3's first figures) it does not serialise the requests. Where a run's wall time "
        "is well above the CPU the client and the server spent, the time went waiting on "
        "SeaweedFS's writes to its volume files and on the other work of this shared machine."
    ]
    for dataset, figures, _cpu in rows:
        ratio = figures["baseline"].median / figures["ours"].median
        verdict = "wins" if ratio >= 1 else "loses"
        if dataset.size < MIB:
            said.append(
                f"{dataset.label}: ours {verdict} ({ratio:.2f}x) with {dataset.count:,} "
                "requests overlapped where boto3 sends one at a time, and ours also writes "
                "`manifest.json` and `expiredAt`."
            )
        else:
            single = figures.get("single")
            multipart = (
                f" Multipart on this server costs {figures['ours'].median / single.median:.2f}x "
                "the time of one PUT a file (the diagnostic row)."
                if single is not None
                else ""
            )
            said.append(
                f"{dataset.label}: ours {verdict} ({ratio:.2f}x); it does more work per byte "
                "by design, a sha256 of every byte for the manifest on top of the payload hash "
                "that request signing computes on both sides." + multipart
            )
    return [" ".join(said)]


if __name__ == "__main__":
    asyncio.run(main())
