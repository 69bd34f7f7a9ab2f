"""Batch-1 latency of the teacher and front members, measured side by side.

A trial's own latency is measured once, under whatever load the machine had then (a
teacher stored at 34.5 ms later measured 0.93 ms), so its ratios to the teacher mean
little. Here every model is warmed up, then the models take turns, one forward pass each
per round, so a change in machine load falls on all of them alike; each gets the median of
its timings, the spread between its quartiles, and its ratio to the teacher measured in
the same turns. A wide spread says the machine was busy.

Timings run on one CPU thread: an edge device often has no more to give a model, and on
a shared machine several threads wait on each other (resnet8 measured 92 ms median with
two threads on a busy 2-core machine, 1.9 ms with one). Where a member was deployed as an
ONNX file (a quantized one), every model runs in onnxruntime instead, the PyTorch ones
exported, so that all are timed by the runtime the file runs in.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from medslim.objectives import onnx_latency
from medslim.objectives.metrics import latency_samples_ms
from medslim.objectives.onnx_models import OnnxModule, onnx_session, to_onnx

ROUNDS = 40
REPEATS = 1
WARMUP = 5
THREADS = 1
NOISY = 0.5
"""Quartile spread (÷ median) of the teacher's timings above which the ratios are only
indicative."""


@dataclass(frozen=True)
class Latency:
    median_ms: float
    low_ms: float
    """25th percentile of the timings."""
    high_ms: float
    """75th percentile."""
    teacher_ms: float
    """The teacher's median, measured in the same turns."""
    ratio: float
    """median_ms / teacher_ms: below 1 is faster than the teacher."""
    timings: int
    threads: int = THREADS
    runtime: str = "torch"

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def noisy(self) -> bool:
        return (self.high_ms - self.low_ms) > NOISY * self.median_ms


def side_by_side(
    teacher: nn.Module, models: dict[int, nn.Module], input_shape: tuple[int, ...]
) -> tuple[Latency, dict[int, Latency]]:
    """The teacher's latency and each model's, all measured in the same turns."""
    if any(isinstance(m, OnnxModule) for m in models.values()):
        return _in_onnxruntime(teacher, models, input_shape)
    keys = list(models)
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        samples = latency_samples_ms(
            [teacher, *(models[k] for k in keys)],
            input_shape,
            rounds=ROUNDS,
            repeats=REPEATS,
            warmup=WARMUP,
        )
    finally:
        torch.set_num_threads(before)
    reference = float(np.median(samples[0]))
    summaries = [_summary(s, reference) for s in samples]
    return summaries[0], dict(zip(keys, summaries[1:], strict=True))


def _summary(timings: list[float], teacher_ms: float) -> Latency:
    low, median, high = (float(v) for v in np.percentile(timings, [25, 50, 75]))
    return Latency(median, low, high, teacher_ms, median / teacher_ms, len(timings))


def _in_onnxruntime(
    teacher: nn.Module, models: dict[int, nn.Module], input_shape: tuple[int, ...]
) -> tuple[Latency, dict[int, Latency]]:
    """The same in onnxruntime: ONNX members as they are, the others exported."""
    example = torch.zeros(1, *input_shape)
    sessions = [
        m.session if isinstance(m, OnnxModule) else onnx_session(to_onnx(m, example), THREADS)
        for m in [teacher, *models.values()]
    ]
    timings = onnx_latency.side_by_side(sessions, input_shape, rounds=ROUNDS, warmup=WARMUP)
    reference = timings[0].median_ms
    summaries = [
        Latency(
            t.median_ms,
            t.low_ms,
            t.high_ms,
            reference,
            t.median_ms / reference,
            t.kept,
            THREADS,
            "onnxruntime",
        )
        for t in timings
    ]
    return summaries[0], dict(zip(models, summaries[1:], strict=True))
