"""Scores of a trained model: ACC and AUC as the MedMNIST evaluator defines them, FLOPs,
parameters and latency."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import numpy as np
import torch
from sklearn.metrics import accuracy_score, roc_auc_score
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from medslim.kinds import BINARY, MULTI_LABEL, Task
from medslim.spaces.layers import WEIGHTED


def auc_score(y_true: np.ndarray, y_score: np.ndarray, task: Task) -> float:
    """MedMNIST's getAUC: positive-class AUC (binary), mean one-vs-rest AUC over classes
    (multi-class, ordinal), mean per-label AUC (multi-label)."""
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score)
    if task == BINARY:
        return float(roc_auc_score(y_true.reshape(-1), _positive_scores(y_score)))
    if task == MULTI_LABEL:
        columns = range(y_score.shape[1])
        return float(np.mean([roc_auc_score(y_true[:, i], y_score[:, i]) for i in columns]))
    y_true = y_true.reshape(-1)
    per_class = [roc_auc_score(y_true == i, y_score[:, i]) for i in range(y_score.shape[1])]
    return float(np.mean(per_class))


def acc_score(
    y_true: np.ndarray, y_score: np.ndarray, task: Task, threshold: float = 0.5
) -> float:
    """MedMNIST's getACC: thresholded positive score (binary), mean per-label accuracy
    (multi-label), arg-max accuracy (multi-class, ordinal)."""
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score)
    if task == BINARY:
        return float(accuracy_score(y_true.reshape(-1), _positive_scores(y_score) > threshold))
    if task == MULTI_LABEL:
        predicted = y_score > threshold
        columns = range(y_true.shape[1])
        return float(np.mean([accuracy_score(y_true[:, i], predicted[:, i]) for i in columns]))
    return float(accuracy_score(y_true.reshape(-1), np.argmax(y_score, axis=-1)))


def _positive_scores(y_score: np.ndarray) -> np.ndarray:
    return y_score[:, -1] if y_score.ndim == 2 else y_score


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Dense FLOPs of one forward pass on one input (FlopCounterMode counts 2 per MAC)."""
    return int(sum(flops_by_module(model, input_shape).values()))


def flops_by_module(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, int]:
    """FLOPs of one input per leaf convolution (1-D, 2-D or 3-D) or linear module name (as
    in `named_modules`); the key "" holds the rest (attention products, convolutions a model
    calls as functions)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *input_shape, device=device))
    model.train(was_training)
    root = type(model).__name__
    counts = counter.get_flop_counts()
    result = {}
    for name, module in model.named_modules():
        if isinstance(module, WEIGHTED):
            key = f"{root}.{name}"
            result[name] = int(sum(counts.get(key, {}).values()))
    rest = int(counter.get_total_flops()) - sum(result.values())
    if rest:
        result[""] = rest
    return result


def sparse_flops(model: nn.Module, per_module: dict[str, int]) -> int:
    """FLOPs that touch non-zero weights: each conv/linear layer's FLOPs (from
    `flops_by_module`, counted once by the caller) times its weight density."""
    total = 0
    modules = dict(model.named_modules())
    for name, flops in per_module.items():
        if not name:  # FLOPs outside conv/linear layers touch no masked weight
            total += flops
            continue
        weight = modules[name].weight.detach()
        total += int(round(flops * float((weight != 0).float().mean())))
    return total


def count_params(model: nn.Module) -> tuple[int, int]:
    """(all parameters, non-zero parameters)."""
    params = [p.detach() for p in model.parameters()]
    return sum(p.numel() for p in params), int(sum((p != 0).sum() for p in params))


def measure_latency_ms(
    model: nn.Module,
    input_shape: tuple[int, ...],
    *,
    batch_size: int = 1,
    repeats: int = 30,
    warmup: int = 5,
) -> float:
    """Median wall time of one forward pass after warm-up, on the model's device."""
    (timings,) = latency_samples_ms(
        [model], input_shape, batch_size=batch_size, rounds=1, repeats=repeats, warmup=warmup
    )
    return statistics.median(timings)


def latency_samples_ms(
    models: Sequence[nn.Module],
    input_shape: tuple[int, ...],
    *,
    batch_size: int = 1,
    rounds: int = 10,
    repeats: int = 5,
    warmup: int = 5,
) -> list[list[float]]:
    """Wall times (ms) of `rounds × repeats` forward passes per model, each model warmed up
    first; the models take turns round by round, so a change in machine load falls on all
    of them alike and their ratios stay fair."""
    if rounds < 1 or repeats < 1:
        raise ValueError(f"`rounds` and `repeats` must be at least 1, got {rounds}, {repeats}")
    states = [m.training for m in models]
    inputs = []
    for model in models:
        model.eval()
        device = next(model.parameters()).device
        inputs.append(torch.randn(batch_size, *input_shape, device=device))
    timings: list[list[float]] = [[] for _ in models]
    with torch.inference_mode():
        for model, x in zip(models, inputs, strict=True):
            for _ in range(warmup):
                model(x)
        for _ in range(rounds):
            for model, x, samples in zip(models, inputs, timings, strict=True):
                for _ in range(repeats):
                    _synchronize(x.device)
                    start = time.perf_counter()
                    model(x)
                    _synchronize(x.device)
                    samples.append((time.perf_counter() - start) * 1000.0)
    for model, state in zip(models, states, strict=True):
        model.train(state)
    return timings


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
