"""Pruning: channels (or weights) removed from a copy of the teacher, at a FLOPs target
spread over the groups by an allocation, candidates screened, the best fine-tuned
(`search.pruning_trials`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from medslim.search.methods.base import (
    Method,
    MethodTrials,
    Prepared,
    Seed,
    SeedContext,
    Style,
    TrialShared,
    in_order,
    per_group,
    register_method,
)

if TYPE_CHECKING:
    import optuna

    from medslim.objectives.evaluate import Screen
    from medslim.search.pruning_trials import PruningTrials
    from medslim.spaces.blueprints import Blueprint


class Prune(Method):
    name = "prune"
    summary = "remove channels (or weights) of the teacher, at a FLOPs target, fine-tuned"
    title = "pruned trials"
    styles: ClassVar[dict[str, Style]] = {
        "pruned": Style("pruned", "#1f77b4", "circle"),
        "uniform": Style("uniform baseline", "#ff7f0e", "square"),
    }
    cross_validates = True
    needs_groups = True

    def trials(self, shared: TrialShared) -> MethodTrials:
        from medslim.search.pruning_trials import PruningTrials

        session = shared.session
        pruning = PruningTrials(
            session.teacher,
            session.data,
            session.space,
            session.unit_names,
            shared.budget,
            session.allocations,
            seed=session.config.seed,
            loss=shared.loss,
            folds=shared.folds,
        )
        return _Trials(pruning, session.teacher_blueprint)

    def seeds(self, context: SeedContext) -> list[Seed]:
        """The uniform sweep, so the front always shows what the search gained over it (in
        a target space: at the FLOPs shares those ratios have, within the targets' bounds)."""
        from medslim.search.pruning_trials import BASELINE_RATIO, target_bounds
        from medslim.spaces.sparsity import uniform_params, uniform_ratios

        space, units, basis = context.space, context.units, context.basis
        seeds = []
        for ratio in uniform_ratios(space, context.count):
            target = 0.0
            marks: dict[str, Any] = {"baseline": "uniform"}
            if basis is not None:  # the target its ratio has; the trial prunes at the ratio
                low, high = target_bounds(basis.flops, space.max_ratio)
                share = basis.flops.flops(dict.fromkeys(units, ratio)) / basis.flops.dense
                target = min(max(share, low), high)
                marks[BASELINE_RATIO] = ratio
            seeds.append(Seed(uniform_params(space, units, ratio, target), marks))
        return seeds

    def choices(
        self, record: dict[str, Any], config: dict[str, Any], units: list[str]
    ) -> dict[str, Any]:
        """The plan, with the study-wide settings (criterion, pruning kind) from the config
        and the ratios in network order."""
        plan = record.get("plan", {})
        settings = {
            "pruning": config.get("pruning", "structured"),
            "criterion": config.get("criterion"),
            "iterative_steps": config.get("iterative_steps", 1),
        }
        known = {k: v for k, v in plan.items() if v is not None}
        return {**settings, **known, "ratios": in_order(plan.get("ratios", {}), units)}

    def describe(self, choices: dict[str, Any], *, groups: bool = False) -> str:
        """`screened l1 conv1 .30 layers.0.0.conv1 .51 ...` (allocation or global ratio,
        criterion, each group's real ratio by its module path)."""
        criterion = choices.get("criterion") or ""
        if choices.get("allocation"):
            head = f"{choices['allocation']} {criterion}".rstrip()
        else:
            head = f"g={choices.get('global_ratio', 0):.2f} {criterion}".rstrip()
        return f"{head} {per_group(choices.get('ratios', {}), groups)}"

    def kind(self, record: dict[str, Any]) -> str:
        return "uniform" if record.get("baseline") == "uniform" else "pruned"

    def study_label(self, config: Any) -> str:
        return str(config.pruning)


class _Trials:
    def __init__(self, pruning: PruningTrials, base: Blueprint) -> None:
        self.pruning = pruning
        self.base = base

    def prepare(self, trial: optuna.Trial, screen: Screen | None) -> Prepared:
        evaluate, choices = self.pruning.prepare(trial, screen)
        return Prepared(evaluate, choices, self.base)


PRUNE = register_method(Prune())
