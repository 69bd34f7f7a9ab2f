"""Bring your own model: torchvision's ResNet-18 and DenseNet-121, trained by medslim on
PneumoniaMNIST and BreastMNIST, then compressed by medslim's search and by a uniform-ratio
sweep of the same budget.

Per model, dataset and seed, two arms with the same teacher, the same number of fine-tuned
trials and the same fine-tuning (one epoch per trial on the task loss plus the teacher's
soft labels, medslim's default for images):
  (u) uniform sweep: evenly spaced ratios in (0, --max-ratio], every group at that ratio;
  (s) medslim: `medslim run`'s defaults (uniform baselines for a quarter of the trials, then
      TPE over a global ratio and bounded per-group offsets);
  (p) with `--arms usp`: medslim's search whose first trials are shaped by a one-shot
      sensitivity analysis instead of uniform (each group pruned alone, no fine-tuning;
      the most tolerant groups start at +max offset, the most sensitive at -max offset;
      the analysis counts in its wall time).
Printed side by side (mean ± spread over seeds): the hypervolume of val AUC against
log10(FLOPs ratio) above (AUC 0.5, FLOPs ratio 1) and its ratio (s) ÷ (u), seed by seed;
and the smallest FLOPs ratio among each arm's front members (chosen on val) whose test AUC
is non-inferior to the teacher's (paired stratified bootstrap, 1000 resamples, ΔAUC lower
bound above -0.01). Load averages are printed, since the machine may be shared.

    python benchmarks/own_model.py [--models resnet18 densenet121]
        [--datasets pneumoniamnist breastmnist] [--trials 40] [--seeds 0 1 2]
        [--data-dir ../shared/data] [--teacher-epochs 10] [--out own_model.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
from common import SHARED_DATA, add_cache_argument, show_progress
from front_quality import hypervolume

from medslim.objectives.bootstrap import stratified_indices
from medslim.objectives.determinism import weights_fingerprint
from medslim.objectives.evaluate import evaluate_pruning
from medslim.objectives.sensitivity import SensitivityCurve, sensitivity_curves
from medslim.search.api import StoredStudy
from medslim.search.config import StudyConfig
from medslim.search.inspection.scoring import (
    Labels,
    RescoreSettings,
    model_predictions,
    score_predictions,
)
from medslim.search.loop import run_trials
from medslim.search.methods import kd_finetune_loss
from medslim.search.records import trial_record
from medslim.search.session import (
    Session,
    baseline_count,
    budget_for,
    prepare,
    sparsity_space,
)
from medslim.search.stored import StudyRef
from medslim.spaces.sparsity import PruningPlan, uniform_ratios

MODELS = {"resnet18": "torchvision:resnet18", "densenet121": "torchvision:densenet121"}
DATASETS = ("pneumoniamnist", "breastmnist")
MARGIN = 0.01


@dataclass(frozen=True)
class Arm:
    """One arm's result for one seed."""

    hypervolume: float
    smallest_non_inferior: float
    """Smallest FLOPs ratio of a val-front member non-inferior on test (1.0: none)."""
    front: list[dict[str, Any]]
    wall_s: float


def teacher_session(model: str, path: Path, args: argparse.Namespace) -> Session:
    """The teacher, trained once by medslim and cached beside a storage in --cache."""
    config = StudyConfig(
        dataset=str(path),
        model=model,
        teacher_epochs=args.teacher_epochs,
        epochs=args.epochs,
        trials=1,
        baselines=1,
        storage=f"sqlite:///{args.cache / 'own_model.db'}",
        study=f"teacher-{model}-{path.stem}-{args.teacher_epochs}ep",  # one per recipe
        force_config=True,
    )
    return prepare(config)


def search_arm(
    session: Session,
    teacher_file: Path,
    workdir: Path,
    trials: int,
    seed: int,
    shaped: bool = False,
) -> Arm:
    start = time.perf_counter()
    tag = f"{'shaped' if shaped else 'search'}-{seed}"
    storage = f"sqlite:///{workdir / f'{tag}.db'}"
    fresh = prepare(
        session.config.with_overrides(
            teacher=str(teacher_file),
            seed=seed,
            trials=trials,
            baselines=0 if shaped else None,
            storage=storage,
            study=tag,
            force_config=False,
        )
    )
    if shaped:
        enqueue_shaped(fresh, trials, seed)
    run_trials(fresh, progress=False)
    stored = StoredStudy(StudyRef(fresh.study, storage, fresh.storage))
    points = [
        (trial_record(t)["val_auc"], trial_record(t)["flops_ratio"])
        for t in stored.study.trials
        if t.values is not None
    ]
    front = stored.front()
    tests = stored.rescore()
    members = [
        {
            "trial": m.trial,
            "val_auc": m.val_auc,
            "flops_ratio": m.flops_ratio,
            "test_auc": tests.members[m.trial].test_auc,
            "non_inferior": tests.members[m.trial].non_inferior(MARGIN),
        }
        for m in front.members
    ]
    return _arm(points, members, start)


def enqueue_shaped(session: Session, trials: int, seed: int) -> None:
    """At the uniform baselines' global ratios, offsets ranked by one-shot sensitivity."""
    curves = sensitivity_curves(
        session.teacher,
        session.data,
        session.unit_names,
        teacher_auc=session.teacher_scores.val_auc,
        seed=seed,
    )
    offsets = shaped_offsets(curves, session.space.max_offset)
    for ratio in uniform_ratios(session.space, baseline_count(None, trials)):
        params = {"sparsity.global": ratio, **{f"sparsity.{u}": o for u, o in offsets.items()}}
        session.study.enqueue_trial(params, user_attrs={"baseline": "shaped"})


def shaped_offsets(curves: list[SensitivityCurve], max_offset: float) -> dict[str, float]:
    """−max_offset for the group whose AUC drops most when pruned alone, +max_offset for
    the one that drops least, evenly spaced by rank in between."""
    order = sorted(curves, key=lambda c: -statistics.mean(c.auc_drop))
    last = max(len(order) - 1, 1)
    return {c.unit: round(max_offset * (2 * rank / last - 1), 4) for rank, c in enumerate(order)}


def uniform_arm(session: Session, trials: int, seed: int) -> Arm:
    """Every group at one ratio, `trials` ratios; the val front re-scored on test like
    `medslim pareto` does."""
    start = time.perf_counter()
    space = sparsity_space(session.config)
    loss = kd_finetune_loss(session)
    data = session.data
    scored = []
    for index, ratio in enumerate(uniform_ratios(space, trials)):
        plan = PruningPlan(
            dict.fromkeys(session.unit_names, ratio),
            space.criterion or "l1",
            space.pruning,
            space.iterative_steps,
            ratio,
            space.ignore_layers,
            space.round_to,
        )
        model, scores = evaluate_pruning(
            session.teacher,
            plan,
            data,
            budget_for(session.config),
            seed=seed * 1000 + index,
            loss=loss,
        )
        point = (scores.val_auc, scores.val_acc, scores.flops / session.teacher_flops)
        scored.append((point, model_predictions(model, data)))
    points = [(auc, ratio) for (auc, _, ratio), _ in scored]
    teacher = model_predictions(session.teacher, data)
    settings = RescoreSettings()  # medslim's defaults: 1000 resamples, positive label 1
    bootstrap = settings.bootstrap
    labels = Labels(data.val.y.cpu().numpy(), data.test.y.cpu().numpy(), data.task)
    indices = stratified_indices(labels.test, bootstrap.resamples, bootstrap.seed)
    members = []
    for (auc, acc, ratio), predictions in scored:
        if _dominated((auc, acc, ratio), [p for p, _ in scored]):
            continue
        test = score_predictions(predictions, labels, indices, teacher, settings)
        members.append(
            {
                "val_auc": auc,
                "flops_ratio": ratio,
                "test_auc": test.test_auc,
                "non_inferior": test.non_inferior(MARGIN),
            }
        )
    return _arm(points, members, start)


def _arm(points: list[tuple[float, float]], members: list[dict[str, Any]], start: float) -> Arm:
    passing = [m["flops_ratio"] for m in members if m["non_inferior"]]
    return Arm(
        hypervolume(points), min(passing, default=1.0), members, time.perf_counter() - start
    )


def _dominated(
    point: tuple[float, float, float], others: list[tuple[float, float, float]]
) -> bool:
    """(val AUC ↑, val ACC ↑, FLOPs ratio ↓): another point at least as good everywhere."""
    auc, acc, ratio = point
    return any(a >= auc and c >= acc and r <= ratio and (a, c, r) != point for a, c, r in others)


def benchmark(model: str, dataset: str, path: Path, args: argparse.Namespace) -> dict[str, Any]:
    print(f"\n{dataset} {model}: teacher ...", flush=True)
    session = teacher_session(model, path, args)
    workdir = Path(tempfile.mkdtemp(prefix="own-model-", dir=args.cache))
    teacher_file = workdir / "teacher.pt"
    torch.save(session.teacher.state_dict(), teacher_file)
    runs = []
    for seed in args.seeds:
        load = os.getloadavg()[0]
        uniform = cached_uniform(session, model, dataset, seed, args)
        run: dict[str, Any] = {"seed": seed, "load_average": load, "uniform": uniform}
        if "s" in args.arms:
            run["search"] = search_arm(session, teacher_file, workdir, args.trials, seed)
        if "p" in args.arms:
            run["shaped"] = search_arm(session, teacher_file, workdir, args.trials, seed, True)
        runs.append(run)
        print(
            f"  seed {seed}: "
            + "; ".join(
                f"{arm} HV {r.hypervolume:.4f} (×{_ratio(r, uniform):.3f}), smallest "
                f"non-inferior {r.smallest_non_inferior:.3f}, {r.wall_s:.0f}s"
                for arm, r in run.items()
                if isinstance(r, Arm)
            )
            + f"; load {load:.1f} → {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    teacher = session.teacher_scores
    return {
        "model": model,
        "dataset": dataset,
        "teacher": {"val_auc": teacher.val_auc, "test_auc": teacher.test_auc},
        "teacher_flops": session.teacher_flops,
        "units": len(session.unit_names),
        "trials": args.trials,
        "epochs": session.config.epochs,
        "teacher_epochs": session.config.teacher_epochs,
        "runs": [{k: v.__dict__ if isinstance(v, Arm) else v for k, v in r.items()} for r in runs],
    }


def cached_uniform(
    session: Session, model: str, dataset: str, seed: int, args: argparse.Namespace
) -> Arm:
    """The uniform arm depends only on the teacher, the trials and the seed: kept in
    --cache, so trying another search arm does not pay for it again."""
    teacher = weights_fingerprint(session.teacher)  # another teacher: another sweep
    name = f"uniform-{model}-{dataset}-{args.trials}-{seed}-{args.epochs}-{teacher}"
    path = args.cache / f"{name.replace(':', '-')}.json"
    if path.is_file():
        return Arm(**json.loads(path.read_text()))
    arm = uniform_arm(session, args.trials, seed)
    path.write_text(json.dumps(arm.__dict__, default=_plain))
    return arm


def _ratio(search: Arm, uniform: Arm) -> float:
    return search.hypervolume / uniform.hypervolume if uniform.hypervolume > 0 else float("nan")


def summarise(report: dict[str, Any]) -> str:
    def stat(values: list[float]) -> str:
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.4f} ± {spread:.4f}"

    runs = report["runs"]
    arms = [a for a in ("uniform", "search", "shaped") if a in runs[0]]
    ratios = {
        arm: [
            r[arm]["hypervolume"] / r["uniform"]["hypervolume"]
            if r["uniform"]["hypervolume"] > 0
            else float("nan")
            for r in runs
        ]
        for arm in arms
    }
    lines = [
        f"\n{report['dataset']} {report['model']}: teacher val AUC "
        f"{report['teacher']['val_auc']:.4f}, test AUC {report['teacher']['test_auc']:.4f}; "
        f"{report['units']} groups; {report['trials']} trials per arm, {report['epochs']} "
        f"fine-tune epoch(s); seeds {[r['seed'] for r in runs]}",
        f"{'arm':<14} {'hypervolume (val)':>20} {'÷ uniform':>16} "
        f"{'smallest non-inferior FLOPs ratio (test)':>42} {'wall s':>8}",
    ]
    labels = {"uniform": "(u) uniform", "search": "(s) medslim", "shaped": "(p) shaped"}
    for arm in arms:
        hv = [r[arm]["hypervolume"] for r in runs]
        smallest = [r[arm]["smallest_non_inferior"] for r in runs]
        wall = statistics.mean(r[arm]["wall_s"] for r in runs)
        lines.append(
            f"{labels[arm]:<14} {stat(hv):>20} {stat(ratios[arm]):>16} {stat(smallest):>42} "
            f"{wall:>8.0f}"
        )
        if arm != "uniform":
            per_seed = ", ".join(f"{r:.3f}" for r in ratios[arm])
            lines.append(f"  {labels[arm]} ÷ uniform per seed: {per_seed}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--teacher-epochs", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=1, help="fine-tune epochs per trial")
    parser.add_argument("--data-dir", type=Path, default=SHARED_DATA)
    parser.add_argument(
        "--arms", default="s", help="search arms beside the uniform sweep: s (default), p"
    )
    parser.add_argument("--out", type=Path, default=Path("own_model.json"))
    add_cache_argument(parser)
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    show_progress()
    reports = []
    print(f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}")
    for dataset in args.datasets:
        path = args.data_dir / f"{dataset}.npz"
        if not path.is_file():
            print(f"{dataset}: skipped, {path} is absent")
            continue
        for name in args.models:
            reports.append(benchmark(MODELS[name], dataset, path, args))
            print(summarise(reports[-1]), flush=True)
            args.out.write_text(json.dumps(reports, indent=1, default=_plain))
    print(f"\nwrote {args.out}")


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON data")


if __name__ == "__main__":
    main()
