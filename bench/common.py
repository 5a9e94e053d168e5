"""What every benchmark shares: repetitions, summary figures, and writing its section."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
QUICK = os.environ.get("BENCH_QUICK") == "1"


@dataclass(frozen=True)
class Figures:
    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def spread(self) -> float:
        """Half the range between the fastest and slowest sample, relative to the median."""
        return (max(self.samples) - min(self.samples)) / 2 / self.median if self.median else 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.samples)
        index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
        return ordered[index]

    def __str__(self) -> str:
        return f"{self.median:.3f} s ±{self.spread:.0%}"


async def timed(run: Callable[[], Awaitable[object]], *, repeat: int, warmup: int = 1) -> Figures:
    for _ in range(warmup):
        await run()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        await run()
        samples.append(time.perf_counter() - start)
    return Figures(samples)


def write_section(name: str, markdown: str) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.md"
    path.write_text(markdown.rstrip() + "\n", encoding="utf-8")
    print(markdown)
    return path
