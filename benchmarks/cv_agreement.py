"""How often the single val split and K-fold cross-validation disagree on the best trial.

Small validation sets (78 images in BreastMNIST) make single-split AUC noisy. This scores
the same random pruning plans both ways (the same teacher, the same fine-tuning) and
reports, per FLOPs budget, whether the two pick a different best plan, plus the rank
correlation of the two scores.

    python benchmarks/cv_agreement.py [--dataset breastmnist] [--plans 16] [--folds 5]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import optuna
from common import SHARED_DATA, add_cache_argument, show_progress
from scipy.stats import spearmanr

from medslim.objectives.crossval import cross_validate, cv_folds
from medslim.objectives.evaluate import evaluate_pruning
from medslim.search.config import StudyConfig
from medslim.search.session import budget_for, prepare
from medslim.spaces.sparsity import PruningPlan

BUDGETS = (0.25, 0.5, 0.75, 1.0)


def random_plans(units: list[str], count: int, seed: int) -> list[PruningPlan]:
    """Global ratio plus bounded offsets, as medslim's space draws them."""
    rng = random.Random(seed)
    plans = []
    for _ in range(count):
        base = rng.uniform(0.1, 0.85)
        ratios = {u: min(max(base + rng.uniform(-0.2, 0.2), 0.0), 0.9) for u in units}
        plans.append(PruningPlan(ratios, "l1", "structured", 1, base))
    return plans


def best_under(budget: float, ratios: list[float], aucs: list[float]) -> int | None:
    allowed = [i for i, r in enumerate(ratios) if r <= budget]
    return max(allowed, key=lambda i: aucs[i]) if allowed else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=str(SHARED_DATA / "breastmnist.npz"))
    add_cache_argument(parser)
    parser.add_argument("--plans", type=int, default=16)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", type=Path, default=Path("cv_agreement.json"))
    args = parser.parse_args()
    if args.dataset.endswith(".npz") and not Path(args.dataset).is_file():
        print(f"skipped: {args.dataset} is absent")
        return
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cache = args.cache
    cache.mkdir(parents=True, exist_ok=True)
    show_progress()
    session = prepare(
        StudyConfig(dataset=args.dataset, storage=f"sqlite:///{cache / 'teachers.db'}")
    )
    budget = budget_for(session.config)
    print(
        f"{session.data.name}: val split {len(session.data.val)} samples, "
        f"{args.folds}-fold CV over train+val {len(session.data.train) + len(session.data.val)}"
    )
    rows, disagreements, comparisons = [], 0, 0
    start = time.perf_counter()
    for seed in args.seeds:
        folds = cv_folds(session.data, args.folds, seed)
        plans = random_plans(session.unit_names, args.plans, seed)
        single, crossval, flops = [], [], []
        for index, plan in enumerate(plans):
            _, scores = evaluate_pruning(
                session.teacher, plan, session.data, budget, seed=seed * 1000 + index
            )
            _, cv_scores, _ = cross_validate(
                lambda fold, s, plan=plan: evaluate_pruning(
                    session.teacher, plan, fold, budget, seed=s
                ),
                folds,
                seed * 1000 + index,
            )
            single.append(scores.val_auc)
            crossval.append(cv_scores.val_auc)
            flops.append(scores.flops / session.teacher_flops)
        rho = float(spearmanr(single, crossval).statistic)
        for limit in BUDGETS:
            by_single, by_cv = best_under(limit, flops, single), best_under(limit, flops, crossval)
            if by_single is None:
                continue
            comparisons += 1
            disagreements += by_single != by_cv
            rows.append(
                {
                    "seed": seed,
                    "budget": limit,
                    "best_single": by_single,
                    "best_cv": by_cv,
                    "spearman": rho,
                }
            )
        print(f"  seed {seed}: Spearman(single, CV) = {rho:.3f}")
    print(f"\n{'seed':>4} {'FLOPs ≤':>8} {'best by val split':>18} {'best by CV':>11} agree")
    for r in rows:
        agree = "yes" if r["best_single"] == r["best_cv"] else "NO"
        print(
            f"{r['seed']:>4} {r['budget']:>8.2f} {r['best_single']:>18} {r['best_cv']:>11} {agree}"
        )
    print(
        f"\nthe single split and {args.folds}-fold CV disagree on the best plan in "
        f"{disagreements} of {comparisons} budget×seed cases ({time.perf_counter() - start:.0f}s)"
    )
    args.out.write_text(
        json.dumps(
            {"rows": rows, "disagreements": disagreements, "comparisons": comparisons}, indent=1
        )
    )


if __name__ == "__main__":
    main()
