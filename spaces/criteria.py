"""Importance criteria by name: how to rank channels (structured) or weights (unstructured).

Each criterion is one small entry: a torch-pruning importance for channel groups, a
per-weight score for masks, and whether it needs gradients of a calibration loss. The
seed documents' criteria map as |W| → `l1`, W² → `l2`, |g·w| → `taylor`, second order
(½·h·w², h from the empirical Fisher) → `hessian`; `bn-scale`, `lamp` and `random`
(a control) come from the pruning literature.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch_pruning as tp

from spaces.errors import UsageError

WeightScore = Callable[[torch.Tensor, torch.Tensor | None, torch.Tensor | None], torch.Tensor]
"""(weight, gradient, squared-gradient mean) -> one score per weight; higher is kept."""


@dataclass(frozen=True)
class Criterion:
    name: str
    channel_importance: Callable[[], tp.importance.Importance] | None
    weight_score: WeightScore | None
    gradients: str = "none"  # "none", "batch" (one backward) or "per-sample" (Fisher)
    summary: str = ""


def _lamp_score(weight: torch.Tensor, *_: torch.Tensor | None) -> torch.Tensor:
    """LAMP: w² divided by the sum of w² of all weights at least as large (Lee et al. 2021)."""
    squared = weight.detach().flatten() ** 2
    order = torch.argsort(squared)
    sorted_sq = squared[order]
    tail_sums = torch.flip(torch.cumsum(torch.flip(sorted_sq, [0]), 0), [0])
    scores = torch.empty_like(squared)
    scores[order] = sorted_sq / tail_sums.clamp_min(1e-12)
    return scores.view_as(weight)


CRITERIA: dict[str, Criterion] = {}


def register_criterion(criterion: Criterion) -> None:
    if criterion.name in CRITERIA:
        raise ValueError(f"criterion {criterion.name!r} is already registered")
    CRITERIA[criterion.name] = criterion


register_criterion(
    Criterion(
        "l1",
        lambda: tp.importance.GroupMagnitudeImportance(p=1),
        lambda w, g, f: w.detach().abs(),
        summary="|W|, magnitude",
    )
)
register_criterion(
    Criterion(
        "l2",
        lambda: tp.importance.GroupMagnitudeImportance(p=2),
        lambda w, g, f: w.detach() ** 2,
        summary="W², squared magnitude",
    )
)
register_criterion(
    Criterion(
        "taylor",
        tp.importance.GroupTaylorImportance,
        lambda w, g, f: (w.detach() * g).abs(),
        gradients="batch",
        summary="|w·∂L/∂w|, first-order contribution",
    )
)
register_criterion(
    Criterion(
        "hessian",
        tp.importance.GroupHessianImportance,
        lambda w, g, f: 0.5 * f * w.detach() ** 2,
        gradients="per-sample",
        summary="½·h·w², second order (diagonal empirical Fisher)",
    )
)
register_criterion(
    Criterion(
        "bn-scale",
        tp.importance.BNScaleImportance,
        None,
        summary="|γ| of the batch-norm after each channel (structured only)",
    )
)
register_criterion(
    Criterion(
        "lamp",
        lambda: tp.importance.LAMPImportance(p=2),
        _lamp_score,
        summary="layer-adaptive magnitude (LAMP)",
    )
)
register_criterion(
    Criterion(
        "random",
        tp.importance.RandomImportance,
        lambda w, g, f: torch.rand_like(w),
        summary="random ranking, a control",
    )
)


def criterion_names() -> list[str]:
    return list(CRITERIA)


def get_criterion(name: str) -> Criterion:
    try:
        return CRITERIA[name]
    except KeyError:
        raise UsageError(
            f"unknown criterion {name!r}; valid criteria: {', '.join(CRITERIA)}"
        ) from None
