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
from typing import TYPE_CHECKING, Any, Literal

from medslim.kinds import Pruning
from medslim.registry import Registry

if TYPE_CHECKING:
    import torch

WeightScore = Callable[
    ["torch.Tensor", "torch.Tensor | None", "torch.Tensor | None"], "torch.Tensor"
]
"""(weight, gradient, squared-gradient mean) -> one score per weight; higher is kept."""

Gradients = Literal["none", "batch", "per-sample"]
"""What a criterion needs: nothing, one backward pass, or per-sample gradients (Fisher)."""


@dataclass(frozen=True)
class Criterion:
    """One criterion: a torch-pruning importance factory for channel groups (None: masks
    only), a per-weight score for masks (None: channels only), and what gradients it needs."""

    name: str
    channel_importance: Callable[[], Any] | None
    weight_score: WeightScore | None
    gradients: Gradients = "none"
    summary: str = ""

    def fits(self, pruning: Pruning) -> bool:
        """Whether the criterion can rank what `pruning` removes (channels or weights)."""
        if pruning == "structured":
            return self.channel_importance is not None
        return self.weight_score is not None


def _importance() -> Any:
    """torch-pruning's importance module, imported on first use (it imports torch)."""
    import torch_pruning

    return torch_pruning.importance


def _lamp_score(weight: torch.Tensor, *_: torch.Tensor | None) -> torch.Tensor:
    """LAMP: w² divided by the sum of w² of all weights at least as large (Lee et al. 2021)."""
    squared = weight.detach().flatten() ** 2
    order = squared.argsort()
    sorted_sq = squared[order]
    tail_sums = sorted_sq.flip(0).cumsum(0).flip(0)
    scores = squared.new_empty(squared.shape)
    scores[order] = sorted_sq / tail_sums.clamp_min(1e-12)
    return scores.view_as(weight)


def _needed(gradient: torch.Tensor | None, criterion: str) -> torch.Tensor:
    """The gradient statistic a criterion declared it needs (`gradients`), computed by the
    pruning step before it asks for scores."""
    if gradient is None:
        raise RuntimeError(f"criterion {criterion!r} was asked for scores without gradients")
    return gradient


def _random_score(weight: torch.Tensor, *_: torch.Tensor | None) -> torch.Tensor:
    return weight.new_empty(weight.shape).uniform_()


CRITERIA: Registry[Criterion] = Registry("criterion", "valid criteria")


def register_criterion(criterion: Criterion) -> None:
    """Add an importance criterion; `--criterion search` searches every registered one that
    fits the pruning kind."""
    CRITERIA.register(criterion.name, criterion)


register_criterion(
    Criterion(
        "l1",
        lambda: _importance().GroupMagnitudeImportance(p=1),
        lambda w, g, f: w.detach().abs(),
        summary="|W|, magnitude",
    )
)
register_criterion(
    Criterion(
        "l2",
        lambda: _importance().GroupMagnitudeImportance(p=2),
        lambda w, g, f: w.detach() ** 2,
        summary="W², squared magnitude",
    )
)
register_criterion(
    Criterion(
        "taylor",
        lambda: _importance().GroupTaylorImportance(),
        lambda w, g, f: (w.detach() * _needed(g, "taylor")).abs(),
        gradients="batch",
        summary="|w·∂L/∂w|, first-order contribution",
    )
)
register_criterion(
    Criterion(
        "hessian",
        lambda: _importance().GroupHessianImportance(),
        lambda w, g, f: 0.5 * _needed(f, "hessian") * w.detach() ** 2,
        gradients="per-sample",
        summary="½·h·w², second order (diagonal empirical Fisher)",
    )
)
register_criterion(
    Criterion(
        "bn-scale",
        lambda: _importance().BNScaleImportance(),
        None,
        summary="|γ| of the batch-norm after each channel (structured only)",
    )
)
register_criterion(
    Criterion(
        "lamp",
        lambda: _importance().LAMPImportance(p=2),
        _lamp_score,
        summary="layer-adaptive magnitude (LAMP)",
    )
)
register_criterion(
    Criterion(
        "random",
        lambda: _importance().RandomImportance(),
        _random_score,
        summary="random ranking, a control",
    )
)


def criterion_names() -> list[str]:
    return CRITERIA.names()


def get_criterion(name: str) -> Criterion:
    return CRITERIA.get(name)


def searchable_criteria(pruning: Pruning) -> list[str]:
    """The registered criteria a trial may choose under `--criterion search`."""
    return [name for name, criterion in CRITERIA.items() if criterion.fits(pruning)]
