"""The uploader against ``aws s3 sync``: one staged folder into one bucket, side by side.

Issue 10's first comparison, on its own so that it can be run alone while the uploader is
worked on (``python bench/bench_collect.py``; ``make bench`` runs it with the rest). Both
sides run as whole processes through their real entry points against the same S3 server,
SeaweedFS (``servers.SeaweedServer``), and the same staged files, alternating after a
warm-up: ours is ``python -m artifacts_controller.uploader --wait-timeout 0`` with the
limits of ``bench_uploader.stage``'s policy in its environment, as the controller sets
them; the peer is ``aws s3 sync`` from ``bench/.peers/venv`` (``bench_peers.ensure_peers``).
Every run of ours is checked to have delivered every file (a skipped delivery would be
fast and wrong). ``BENCH_QUICK=1``: small sizes.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from bench_peers import (  # noqa: E402
    GROUP,
    KIB,
    MIB,
    OURS_BUCKET,
    PEER_BIN,
    WARMUP,
    Cpu,
    Report,
    Row,
    Usage,
    aws,
    aws_env,
    ensure_peers,
    fresh_buckets,
    machine_note,
    mib,
    our_env,
    run_measured,
    spread,
)
from bench_uploader import Dataset, stage  # noqa: E402
from common import QUICK, Figures, write_section  # noqa: E402
from servers import SeaweedServer  # noqa: E402

from artifacts_shared.layout import job_prefix  # noqa: E402

REPEAT = 2 if QUICK else 9
"""More than the other peers' sections: on the shared 2-core machine one collect run's
time moves by a quarter or more with the load; the median of 3 followed it, and three
runs of 5 a side gave 1.47x to 2.27x for the small files and 0.94x to 1.07x for the
large ones."""

COLLECT = (
    [Dataset("small", "200 x 4 KiB", 200, 4 * KIB), Dataset("large", "2 x 24 MiB", 2, 24 * MIB)]
    if QUICK
    else [
        Dataset("small", "2,000 x 4 KiB", 2000, 4 * KIB),
        Dataset("large", "4 x 100 MiB", 4, 100 * MIB),
    ]
)


# --- collect: the uploader vs aws s3 sync ---------------------------------------------------


def start_up(s3: SeaweedServer, work: Path) -> tuple[Figures, Figures]:
    """Seconds to start each side's process and import its code, doing nothing else."""
    ours_argv = [sys.executable, "-c", "import artifacts_controller.uploader"]
    peer_argv = [str(PEER_BIN / "aws"), "--version"]
    samples: dict[str, list[float]] = {"ours": [], "peer": []}
    for round_ in range(WARMUP + REPEAT):
        for side, argv, env in (
            ("ours", ours_argv, our_env(s3)),
            ("peer", peer_argv, aws_env(s3, work)),
        ):
            used, _ = run_measured(argv, env)
            if round_ >= WARMUP:
                samples[side].append(used.seconds)
    return Figures(samples["ours"]), Figures(samples["peer"])


def collect_why(
    start: tuple[Figures, Figures],
    usage: dict[str, list[Usage]],
    stored: dict[str, list[float]],
) -> str:
    """Why the slower side is slower, from what each process and the server spent."""
    ours, peer = usage["ours"], usage["peer"]
    cpu = Figures([u.cpu for u in ours]).median, Figures([u.cpu for u in peer]).median
    wall = Figures([u.seconds for u in ours]).median, Figures([u.seconds for u in peer]).median
    server = Figures(stored["ours"]).median, Figures(stored["peer"]).median
    return (
        f"ours used {cpu[0]:.1f} s of CPU in {wall[0]:.1f} s ({cpu[0] / wall[0]:.0%} of a "
        f"core), the CLI {cpu[1]:.1f} s in {wall[1]:.1f} s ({cpu[1] / wall[1]:.0%}), and "
        f"SeaweedFS {server[0]:.1f} s storing ours, {server[1]:.1f} s the CLI's: on 2 cores "
        f"at a load average of {os.getloadavg()[0]:.0f}, the kernel shares CPU out per "
        "runnable thread, and the CLI runs up to 10 transfer threads where ours is one "
        "event loop (and one reader thread per large file in flight); start-up takes ours "
        f"{start[0].median:.2f} s and the CLI {start[1].median:.2f} s"
    )


def delivered(s3: SeaweedServer, prefix: str) -> int:
    """How many of ours' files are under ``prefix``, by the manifest our side wrote."""
    body = s3.client.get_object(Bucket=OURS_BUCKET, Key=f"{prefix}.primehub/metadata/manifest.json")
    manifest = json.loads(body["Body"].read())
    if manifest["skipped"]:
        raise RuntimeError(f"the uploader skipped the delivery: {manifest['skipReason']}")
    return int(manifest["fileCount"])


def collect(s3: SeaweedServer, work: Path, report: Report) -> None:
    start = start_up(s3, work)
    server = Cpu(s3.pid)
    lines = [
        "| files | ours: uploader | peer: `aws s3 sync` | advantage (sync time / ours) "
        "| ours CPU s / peak RSS | sync CPU s / peak RSS | SeaweedFS CPU s, ours / sync |",
        "|---|---|---|---:|---|---|---:|",
    ]
    for dataset in COLLECT:
        staging, policy = stage(dataset)
        job = policy.job
        prefix = job_prefix(GROUP, job)
        ours_argv = [
            sys.executable,
            *("-m", "artifacts_controller.uploader", "--staging", str(staging)),
            *("--job", job, "--group", GROUP, "--wait-timeout", "0"),
        ]
        peer_argv = aws(
            "s3", "sync", str(staging / "files"), f"s3://{OURS_BUCKET}/{prefix}", s3_url=s3.url
        )
        env_ours = our_env(
            s3,
            PHJOB_ARTIFACT_LIMIT_SIZE_MB=str(policy.limit_size_mb),
            PHJOB_ARTIFACT_LIMIT_FILES=str(policy.limit_files),
        )
        env_peer = aws_env(s3, work)
        print(f"bench_collect: collect {dataset.label} ...", flush=True)
        usage: dict[str, list[Usage]] = {"ours": [], "peer": []}
        stored: dict[str, list[float]] = {"ours": [], "peer": []}
        for round_ in range(WARMUP + REPEAT):
            for side, argv, env in (("ours", ours_argv, env_ours), ("peer", peer_argv, env_peer)):
                fresh_buckets(s3, OURS_BUCKET)
                before = server.read()
                used, _ = run_measured(argv, env)
                if side == "ours" and delivered(s3, prefix) != dataset.count:
                    raise RuntimeError(f"the uploader did not deliver all of {dataset.label}")
                if round_ >= WARMUP:
                    usage[side].append(used)
                    stored[side].append(server.read() - before)
        shutil.rmtree(staging, ignore_errors=True)
        ours = Figures([u.seconds for u in usage["ours"]])
        peer = Figures([u.seconds for u in usage["peer"]])
        lines.append(
            f"| {dataset.label} | {ours} ({rate(dataset, ours.median)}) "
            f"| {peer} ({rate(dataset, peer.median)}) | **{peer.median / ours.median:.2f}x** "
            f"| {cost(usage['ours'])} | {cost(usage['peer'])} "
            f"| {Figures(stored['ours']).median:.1f} / {Figures(stored['peer']).median:.1f} |"
        )
        report.rows.append(
            Row(
                f"Collect {dataset.label} (wall time)",
                f"{ours.median:.2f} s ({spread(ours)})",
                f"{peer.median:.2f} s ({spread(peer)})",
                peer.median / ours.median,
                why=collect_why(start, usage, stored),
            )
        )
    report.details += [
        "The same staged folder (`files/` and the `done` marker, as `run-job.sh` leaves it) "
        "into an emptied bucket each run. Ours: `python -m artifacts_controller.uploader "
        "--wait-timeout 0` (8 requests at once, multipart from 16 MiB, every byte read and "
        "hashed once with sha256 as it is sent, payloads unsigned, then `manifest.json` and "
        "`expiredAt`). Peer: `aws s3 sync files/ s3://...` with the "
        "CLI's defaults (10 requests at once, multipart from 8 MiB). Both are timed as whole "
        "processes, interpreter start included; CPU from the kernel (`wait4`), peak RSS from "
        "the process's own high-water mark (`VmHWM`), and the CPU SeaweedFS spent during each.",
        "",
        *lines,
        "",
        f"Start-up alone (`python -c 'import artifacts_controller.uploader'` vs `aws "
        f"--version`): ours {start[0]}, the CLI {start[1]}.",
        "",
    ]


def rate(dataset: Dataset, seconds: float) -> str:
    if dataset.size < MIB:
        return f"{dataset.count / seconds:,.0f} files/s"
    return f"{dataset.total / MIB / seconds:,.0f} MiB/s"


def cost(runs: list[Usage]) -> str:
    cpu = Figures([u.cpu for u in runs]).median
    return f"{cpu:.1f} / {mib(max(u.peak_rss for u in runs))}"


def summary(report: Report, versions: dict[str, str], server: str) -> str:
    lines = [
        "| comparison | ours | peer | advantage |",
        "|---|---:|---:|---:|",
        *(
            f"| {row.what} | {row.ours} | {row.peer} | "
            + (
                f"**{row.advantage:.2f}x** |"
                if row.advantage >= 1
                else f"{row.advantage:.2f}x (loss) |"
            )
            for row in report.rows
        ),
        "",
        *(f"Why {row.what} loses: {row.why}." for row in report.rows if row.advantage < 1),
    ]
    peers = ", ".join(f"{name} {version}" for name, version in sorted(versions.items()))
    note = (
        f"`bench/bench_collect.py`{' (quick run, BENCH_QUICK=1: small sizes)' if QUICK else ''}"
        f" against {server} (`weed mini`); the peer from `bench/peers-constraints.txt`: {peers}."
    )
    heading = "## Collect: the uploader vs `aws s3 sync`"
    return "\n".join([heading, "", note, "", *lines, "", *report.details])


def main() -> None:
    started, load_before = time.perf_counter(), os.getloadavg()
    versions = ensure_peers()
    report = Report()
    work = Path(tempfile.mkdtemp(prefix="bench-collect-"))
    try:
        with SeaweedServer() as s3:
            collect(s3, work, report)
            text = summary(report, versions, s3.version)
            write_section("collect", text + "\n" + machine_note(started, load_before, s3))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
