"""The uploader against a plain sequential boto3 upload of the same files, side by side.

Both push the same staged files to the same S3 server: moto's server as a separate
process on loopback (``servers.MotoServer``), so the benchmark's own GIL does not slow it.
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
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from common import QUICK, Figures, write_section
from servers import MotoServer

from artifacts_controller.delivery import Policy, deliver
from artifacts_controller.staging import DONE, FILES
from artifacts_controller.transfer import MIB, Tuning
from artifacts_shared.s3 import S3Client, open_s3
from artifacts_shared.settings import S3Settings

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


async def side_by_side(runners: dict[str, Callable[[], Awaitable[object]]]) -> dict[str, Figures]:
    """Time each runner in turn, round after round, so drift falls on all alike."""
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for round_ in range(WARMUP + REPEAT):
        for name, run in runners.items():
            start = time.perf_counter()
            await run()
            if round_ >= WARMUP:
                samples[name].append(time.perf_counter() - start)
    return {name: Figures(values) for name, values in samples.items()}


def _rate(dataset: Dataset, seconds: float) -> str:
    if dataset.size < MIB:
        return f"{dataset.count / seconds:,.0f} files/s"
    return f"{dataset.total / MIB / seconds:,.0f} MiB/s"


async def main() -> None:
    rows = []
    with MotoServer() as server:
        url = server.url
        settings = S3Settings(
            s3_endpoint_url=url,
            s3_region="us-east-1",
            s3_access_key_id="bench",
            s3_secret_access_key="bench",  # type: ignore[arg-type]
            phfs_bucket=BUCKET,
        )
        client = boto3.client(
            "s3",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
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
                rows.append((dataset, await side_by_side(runners)))
                shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(WORK, ignore_errors=True)

    lines = [
        "## Uploader (issue 3): ours vs sequential boto3",
        "",
        "Same staged files, same S3 server (`moto_server` as a separate process on loopback), "
        f"runs alternating ours/baseline, {REPEAT} repetitions after {WARMUP} warm-up"
        f"{' (quick mode: small sizes)' if QUICK else ''}. Ours is `deliver()` as run by "
        f"`python -m artifacts_controller.uploader`: {tuning.concurrency} requests at once, "
        f"multipart from {tuning.part_size // MIB} MiB in "
        f"{tuning.part_size // MIB} MiB parts, sha256 of every byte, then `manifest.json` and "
        "`expiredAt`. The baseline is one boto3 client calling `put_object` per file in turn "
        "(no hashing, no multipart, no metadata).",
        "",
        "| files | ours | sequential boto3 | speed-up (boto3 time / ours) |",
        "|---|---|---|---|",
    ]
    for dataset, figures in rows:
        mine, theirs = figures["ours"], figures["baseline"]
        lines.append(
            f"| {dataset.label} | {mine} ({_rate(dataset, mine.median)}) "
            f"| {theirs} ({_rate(dataset, theirs.median)}) "
            f"| **{theirs.median / mine.median:.2f}x** |"
        )
        if "single" in figures:
            alone = figures["single"]
            lines.append(
                f"| {dataset.label}, ours with one PUT a file (diagnostic) "
                f"| {alone} ({_rate(dataset, alone.median)}) | | "
                f"{theirs.median / alone.median:.2f}x |"
            )
    lines += [
        "",
        "moto is one Python process, so every request and every byte costs server CPU, and "
        "on a small machine both sides are bound by CPU rather than by the network. Many "
        "small files: the parallel side wins by overlapping requests. Large files: ours "
        "does more work per byte by design -- a sha256 of every byte for the manifest, on "
        "top of the payload hash that request signing computes on both sides -- and moto's "
        "multipart path stores each part and then copies them all into one object; the "
        "diagnostic row (one PUT a file) separates the multipart cost from the rest. S3 and "
        "MinIO take parts natively and in parallel, where multipart is the usual way to "
        "go faster; that is not measured here.",
    ]
    write_section("uploader", "\n".join(lines))


if __name__ == "__main__":
    asyncio.run(main())
