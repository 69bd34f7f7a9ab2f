"""Front quality: medslim's default search against a uniform sweep and naive per-layer searches.

Every method gets the same teacher, the same fine-tune budget per trial and the same number
of fine-tuned trials (with screening, medslim also looks at candidates it stops before
fine-tuning; the wall time shows what they cost). (e) runs medslim's defaults, which
fine-tune image models on the teacher's soft labels too; (i) is the uniform sweep with the
same soft labels, so (e) ÷ (i) is the search's own gain. Reported per method (mean ± spread over
seeds): the 2-D hypervolume of val AUC against log10(FLOPs ratio) with reference point
(AUC 0.5, FLOPs ratio 1), its ratio to the uniform sweep, the smallest FLOPs ratio whose
val AUC is within 0.01 of the teacher's, and wall time.

    python benchmarks/front_quality.py [--trials 20] [--seeds 0 1] [--datasets ...] [--arms aeg]
        [--out F]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import torch
from common import SHARED_DATA, add_cache_argument, show_progress

from medslim.objectives.evaluate import evaluate_pruning
from medslim.objectives.training import BatchLoss
from medslim.search.config import DEFAULT_SCREEN_MARGIN, StudyConfig
from medslim.search.loop import run_trials
from medslim.search.methods import kd_finetune_loss
from medslim.search.records import trial_record
from medslim.search.screening import screened_out
from medslim.search.session import Session, budget_for, prepare, sparsity_space
from medslim.spaces.sparsity import PruningPlan, uniform_ratios

DATASETS = {
    "pneumoniamnist": SHARED_DATA / "pneumoniamnist.npz",
    "breastmnist": SHARED_DATA / "breastmnist.npz",
    "breast-cancer": None,
}
REFERENCE = "reference point: val AUC 0.5, FLOPs ratio 1 (log10 = 0)"
Point = tuple[float, float]  # (val AUC, FLOPs ratio)
ARMS = "abcdefghi"  # the letters of the methods below; (a) is every ratio's denominator


def hypervolume(points: list[Point]) -> float:
    """Area dominated by the points in (AUC ↑, -log10 FLOPs ratio ↑) above (0.5, 0)."""
    useful = sorted(
        ((auc, -math.log10(ratio)) for auc, ratio in points if auc > 0.5 and ratio < 1.0),
        key=lambda p: -p[1],
    )
    area, best_auc = 0.0, 0.5
    for auc, gain in useful:  # sweep from the cheapest model towards the teacher
        if auc > best_auc:
            area += (auc - best_auc) * gain
            best_auc = auc
    return area


def smallest_ratio_near_teacher(points: list[Point], teacher_auc: float) -> float:
    ratios = [ratio for auc, ratio in points if auc >= teacher_auc - 0.01]
    return min(ratios, default=1.0)


def _evaluate(
    session: Session, plan: PruningPlan, seed: int, loss: BatchLoss | None = None
) -> tuple[float, float, float]:
    _, scores = evaluate_pruning(
        session.teacher, plan, session.data, budget_for(session.config), seed=seed, loss=loss
    )
    return scores.val_auc, scores.val_acc, scores.flops / session.teacher_flops


def uniform_sweep(
    session: Session, trials: int, seed: int, loss: BatchLoss | None = None
) -> list[Point]:
    space = sparsity_space(session.config)
    points = []
    for index, ratio in enumerate(uniform_ratios(space, trials)):
        plan = PruningPlan(
            {u: ratio for u in session.unit_names},
            space.criterion or "l1",
            space.pruning,
            space.iterative_steps,
            ratio,
        )
        auc, _, flops_ratio = _evaluate(session, plan, seed * 1000 + index, loss)
        points.append((auc, flops_ratio))
    return points


def naive_search(
    sampler: optuna.samplers.BaseSampler,
) -> Callable[[Session, int, int], list[Point]]:
    """An independent ratio per group, as a hand-written Optuna script would search it."""

    def run(session: Session, trials: int, seed: int) -> list[Point]:
        space = sparsity_space(session.config)
        study = optuna.create_study(
            directions=["maximize", "maximize", "minimize"], sampler=sampler
        )

        def objective(trial: optuna.Trial) -> tuple[float, float, float]:
            ratios = {
                u: trial.suggest_float(f"ratio.{u}", 0.0, space.max_ratio)
                for u in session.unit_names
            }
            plan = PruningPlan(
                ratios,
                space.criterion or "l1",
                space.pruning,
                space.iterative_steps,
                statistics.mean(ratios.values()),
            )
            auc, acc, flops_ratio = _evaluate(session, plan, seed * 1000 + trial.number)
            trial.set_user_attr("flops_ratio", flops_ratio)
            return auc, acc, flops_ratio

        study.optimize(objective, n_trials=trials)
        return [(t.values[0], t.user_attrs["flops_ratio"]) for t in study.trials]

    return run


def medslim_search(config: StudyConfig, teacher_file: Path, workdir: Path, tag: str):
    """medslim's own study loop with `config` (fresh study per seed, the shared teacher)."""

    def run(session: Session, trials: int, seed: int) -> list[Point]:
        fresh = prepare(
            config.with_overrides(
                teacher=str(teacher_file),
                seed=seed,
                trials=trials,
                storage=f"sqlite:///{workdir / f'{tag}-{seed}.db'}",
                study=f"{tag}-{seed}",
            )
        )
        run_trials(fresh, progress=False)
        if config.screen is not None:
            print(f"    {tag}: {screened_out(fresh.study)} candidates screened out", flush=True)
        return [
            (trial_record(t)["val_auc"], trial_record(t)["flops_ratio"])
            for t in fresh.study.trials
            if t.state == optuna.trial.TrialState.COMPLETE
        ]

    return run


def benchmark_dataset(
    name: str,
    path: Path | None,
    trials: int,
    seeds: list[int],
    epochs: int | None,
    cache: Path,
    arms: str = ARMS,
) -> dict:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    workdir = Path(tempfile.mkdtemp(prefix="medslim-bench-", dir=cache))
    config = StudyConfig(
        dataset=str(path) if path else name,
        epochs=epochs,
        storage=f"sqlite:///{cache / 'teachers.db'}",  # teachers cached beside it, reused
    )
    show_progress()
    session = prepare(config)
    teacher_file = workdir / "teacher.pt"
    torch.save(session.teacher.state_dict(), teacher_file)
    methods = {
        "(a) uniform sweep": lambda s, n, seed: uniform_sweep(s, n, seed),
        "(b) naive NSGA-II": lambda s, n, seed: naive_search(
            optuna.samplers.NSGAIISampler(seed=seed, population_size=10)
        )(s, n, seed),
        "(c) naive TPE": lambda s, n, seed: naive_search(
            optuna.samplers.TPESampler(seed=seed, multivariate=True)
        )(s, n, seed),
        "(d) random": lambda s, n, seed: naive_search(optuna.samplers.RandomSampler(seed=seed))(
            s, n, seed
        ),
        "(e) medslim default": medslim_search(session.config, teacher_file, workdir, "default"),
        "(f) + sensitivity prior": medslim_search(
            session.config.with_overrides(sensitivity_drop=0.01), teacher_file, workdir, "prior"
        ),
        "(g) + screening": medslim_search(
            session.config.with_overrides(screen=DEFAULT_SCREEN_MARGIN),
            teacher_file,
            workdir,
            "screen",
        ),
        "(h) the other --kd": medslim_search(
            session.config.with_overrides(kd=not session.config.kd), teacher_file, workdir, "kd"
        ),
        "(i) uniform sweep + KD": lambda s, n, seed: uniform_sweep(
            s, n, seed, loss=kd_finetune_loss(s)
        ),
    }
    methods = {label: run for label, run in methods.items() if label[1] in arms}
    teacher_auc = session.teacher_scores.val_auc
    results: dict[str, list[dict]] = {m: [] for m in methods}
    for seed in seeds:
        for method, run in methods.items():
            start = time.perf_counter()
            points = run(session, trials, seed)
            results[method].append(
                {
                    "seed": seed,
                    "hypervolume": hypervolume(points),
                    "smallest_ratio_within_0.01": smallest_ratio_near_teacher(points, teacher_auc),
                    "wall_s": time.perf_counter() - start,
                    "points": points,
                }
            )
            print(
                f"  seed {seed} {method}: HV {results[method][-1]['hypervolume']:.4f}, "
                f"{time.perf_counter() - start:.0f}s",
                flush=True,
            )
    return {
        "teacher_val_auc": teacher_auc,
        "model": session.config.model,
        "epochs": session.config.epochs,
        "trials": trials,
        "results": results,
    }


def summarise(name: str, report: dict) -> str:
    def stat(values: list[float]) -> str:
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.4f} ± {spread:.4f}"

    results = report["results"]
    uniform = [r["hypervolume"] for r in results["(a) uniform sweep"]]
    lines = [
        f"\n{name}: teacher {report['model']} val AUC {report['teacher_val_auc']:.4f}, "
        f"{report['trials']} trials per method, {report['epochs']} fine-tune epoch(s)",
        REFERENCE,
        f"{'method':<22} {'hypervolume':>18} {'÷ uniform':>16} {'min FLOPs ratio':>18} "
        f"{'wall s':>8}",
    ]
    for method, runs in results.items():
        hv = [r["hypervolume"] for r in runs]
        ratio = [h / u if u > 0 else float("nan") for h, u in zip(hv, uniform, strict=True)]
        smallest = [r["smallest_ratio_within_0.01"] for r in runs]
        wall = statistics.mean(r["wall_s"] for r in runs)
        lines.append(
            f"{method:<22} {stat(hv):>18} {stat(ratio):>16} {stat(smallest):>18} {wall:>8.0f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, help="fine-tune epochs per trial (medslim default)")
    parser.add_argument(
        "--arms", default=ARMS, help="letters of the methods to run; a is always run"
    )
    parser.add_argument("--out", type=Path, default=Path("front_quality.json"))
    add_cache_argument(parser)
    args = parser.parse_args()
    reports = {}
    for name in args.datasets:
        path = DATASETS[name]
        if path is not None and not path.is_file():
            print(f"{name}: skipped, {path} is absent")
            continue
        print(f"{name}:", flush=True)
        args.cache.mkdir(parents=True, exist_ok=True)
        arms = "a" + args.arms
        reports[name] = benchmark_dataset(
            name, path, args.trials, args.seeds, args.epochs, args.cache, arms
        )
        print(summarise(name, reports[name]), flush=True)
    args.out.write_text(json.dumps(reports, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
