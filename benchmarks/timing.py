"""Wall-clock timing: warm up, then take the median of a few runs."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Repeats:
    """How often to run a measured call: untimed warm-ups, then timed runs."""

    warmup: int
    timed: int

    def __str__(self) -> str:
        return f"median of {self.timed} after {self.warmup} warm-up"


def median_seconds(fn: Callable[[], object], repeats: Repeats) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats.timed`` runs after the warm-ups."""
    if repeats.timed < 1:
        raise ValueError("need at least one timed run")
    for _ in range(repeats.warmup):
        fn()
    samples = []
    for _ in range(repeats.timed):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)
