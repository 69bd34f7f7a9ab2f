"""Pruning and low-rank factorization on one trial: the teacher pruned at a share of the
trial's FLOPs target (the share is a trial parameter), then factorized the rest of the way
(`search.lowrank_trials`)."""

from __future__ import annotations

from typing import Any, ClassVar

from medslim.search.methods.base import (
    MethodTrials,
    Style,
    TrialShared,
    per_group,
    register_method,
)
from medslim.search.methods.prune import Prune


class PruneLowRank(Prune):
    name = "prune+lowrank"
    summary = "prune at a share of the FLOPs target, then factorize the rest of the way"
    title = "pruned and factorized trials"
    styles: ClassVar[dict[str, Style]] = {
        "pruned+factorized": Style("pruned and factorized", "#e377c2", "hexagon")
    }
    cross_validates = False
    needs_targets = True

    def trials(self, shared: TrialShared) -> MethodTrials:
        from medslim.search.lowrank_trials import pruned_rank_trials

        return pruned_rank_trials(shared)

    def seeds(self, context: Any) -> list[Any]:
        return []  # the uniform sweeps of `prune` and `lowrank` are the baselines

    def describe(self, choices: dict[str, Any], *, groups: bool = False) -> str:
        """The pruning, then ` · ranks [.30 .00 ...]`."""
        ranks = per_group(choices.get("ranks", {}), groups)
        return f"{super().describe(choices, groups=groups)} · ranks {ranks}"

    def kind(self, record: dict[str, Any]) -> str:
        return "pruned+factorized"

    def study_label(self, config: Any) -> str:
        return self.name


PRUNE_LOWRANK = register_method(PruneLowRank())
