"""Low-rank factorization: the teacher's convolutions and linear layers replaced by two
thinner ones (truncated SVD; `spaces.lowrank`) at rank ratios solved for a FLOPs target by
the allocations pruning uses, candidates screened, the best fine-tuned
(`search.lowrank_trials`)."""

from __future__ import annotations

from typing import Any, ClassVar

from medslim.search.methods.base import (
    Method,
    MethodTrials,
    Seed,
    SeedContext,
    Style,
    TrialShared,
    per_group,
    register_method,
)


class LowRank(Method):
    name = "lowrank"
    summary = "factorize the teacher's layers by truncated SVD at a FLOPs target, fine-tuned"
    title = "factorized trials"
    needs_targets = True
    styles: ClassVar[dict[str, Style]] = {
        "factorized": Style("factorized", "#9467bd", "triangle-up"),
        "uniform-rank": Style("uniform rank sweep", "#8c564b", "triangle-down"),
    }

    def trials(self, shared: TrialShared) -> MethodTrials:
        from medslim.search.lowrank_trials import lowrank_trials

        return lowrank_trials(shared)

    def seeds(self, context: SeedContext) -> list[Seed]:
        """The uniform rank sweep: every layer at one rank ratio, ratios evenly spaced up to
        the cap (at the FLOPs shares they have, within the targets' bounds)."""
        from medslim.search.pruning_trials import BASELINE_RATIO, target_bounds
        from medslim.spaces.lowrank import layer_shapes, rank_flops_model
        from medslim.spaces.sparsity import TARGET_PARAM, protected_layers, uniform_ratios

        space, teacher = context.space, context.teacher
        if not space.targets:
            return []
        example = context.data.train.batch(slice(0, 2))
        protected = protected_layers(teacher, example, space.ignore_layers)
        model = rank_flops_model(context.teacher_flops, layer_shapes(teacher, example, protected))
        low, high = target_bounds(model, space.max_ratio)
        seeds = []
        for ratio in uniform_ratios(space, context.count):
            share = model.flops(dict.fromkeys(model.channels, ratio)) / model.dense
            marks = {"baseline": "uniform", BASELINE_RATIO: ratio}
            seeds.append(Seed({TARGET_PARAM: min(max(share, low), high)}, marks))
        return seeds

    def choices(
        self, record: dict[str, Any], config: dict[str, Any], units: list[str]
    ) -> dict[str, Any]:
        plan = record.get("plan", {})
        keep = ("allocation", "target", "ranks")
        return {k: plan[k] for k in keep if plan.get(k) is not None}

    def describe(self, choices: dict[str, Any], *, groups: bool = False) -> str:
        """`screened ranks [.30 .50 ...]`: the allocation and each layer's rank ratio (the
        share of its FLOPs cut; .00: left whole)."""
        head = f"{choices.get('allocation', '')} ranks".lstrip()
        return f"{head} {per_group(choices.get('ranks', {}), groups)}"

    def kind(self, record: dict[str, Any]) -> str:
        return "uniform-rank" if record.get("baseline") == "uniform" else "factorized"


LOWRANK = register_method(LowRank())
