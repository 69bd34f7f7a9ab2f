"""Latency of ONNX models in onnxruntime, measured side by side and summarised robustly.

A single reading says little on a shared machine (one trial read 43.6 ms where its 19
neighbours read 0.07–0.09 ms). Here every session is warmed up, then the sessions take
turns, one run each per round, so a change of load falls on all of them alike; each
gets the median of its timings after outliers are dropped (beyond 1.5 interquartile
ranges of the quartiles, Tukey's fences), the quartiles around it, and the spread
(interquartile range ÷ median) that says whether the median can rank models at all.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

ROUNDS = 30
WARMUP = 10
RANKABLE_SPREAD = 0.25
"""Spread (interquartile range ÷ median) above which a latency is too noisy to rank by."""


@dataclass(frozen=True)
class Timing:
    """One session's timings: the median and quartiles (ms) of the kept runs."""

    median_ms: float
    low_ms: float
    high_ms: float
    kept: int
    rejected: int

    @property
    def spread(self) -> float:
        return (self.high_ms - self.low_ms) / self.median_ms if self.median_ms > 0 else 0.0

    @property
    def rankable(self) -> bool:
        return self.spread <= RANKABLE_SPREAD

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "spread": round(self.spread, 4)}


def summarize(samples: Sequence[float]) -> Timing:
    """Median and quartiles after dropping the runs beyond Tukey's fences."""
    values = np.asarray(samples, dtype=float)
    low, high = np.percentile(values, [25, 75])
    reach = 1.5 * (high - low)
    kept = values[(values >= low - reach) & (values <= high + reach)]
    q1, median, q3 = (float(v) for v in np.percentile(kept, [25, 50, 75]))
    return Timing(median, q1, q3, len(kept), len(values) - len(kept))


def side_by_side(
    sessions: Sequence[Any],
    input_shape: tuple[int, ...],
    *,
    batch_size: int = 1,
    rounds: int = ROUNDS,
    warmup: int = WARMUP,
    seed: int = 0,
) -> list[Timing]:
    """Each session's timing on one batch of `batch_size` random inputs, the sessions
    taking turns round by round after `warmup` runs each."""
    if rounds < 1:
        raise ValueError(f"`rounds` must be at least 1, got {rounds}")
    inputs = np.random.default_rng(seed).standard_normal((batch_size, *input_shape))
    feed = {"input": inputs.astype(np.float32)}
    for session in sessions:
        for _ in range(warmup):
            session.run(None, feed)
    samples: list[list[float]] = [[] for _ in sessions]
    for _ in range(rounds):
        for session, timings in zip(sessions, samples, strict=True):
            start = time.perf_counter()
            session.run(None, feed)
            timings.append((time.perf_counter() - start) * 1000.0)
    return [summarize(s) for s in samples]
