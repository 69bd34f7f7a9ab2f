"""Overhead: wall time per trial of medslim's study loop against a minimal hand-written loop.

Both arms do the same work per trial: the same TPE sampler (medslim's default settings and
seed) over the same space (global ratio + bounded per-group offsets, the same uniform
baselines enqueued first), so they pick the same ratios; then prune a copy of the same
teacher, the same BN recalibration and fine-tuning (`objectives.training`), and the same
scores (val AUC/ACC, FLOPs with FlopCounterMode, batch-1 latency). medslim runs
`session.prepare` + `loop.run_trials`, the one study loop of `medslim run`, `medslim
worker` and `medslim.run` (less the closing front table and dashboard figures) on a fresh
SQLite file; the hand-written loop is plain Optuna + torch-pruning's BasePruner, no medslim
`search/` or `spaces/sparsity` code, on the same
kind of SQLite file and/or in memory. Arms alternate order over the repeats, so machine
load falls on both alike.

    python benchmarks/overhead.py [--dataset breast-cancer|PATH.npz] [--trials 15]
        [--repeats 4] [--threads 1] [--hand sqlite memory] [--profile] [--out overhead.json]
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import json
import os
import pstats
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
import torch_pruning as tp
from common import add_cache_argument, show_progress
from optuna.trial import TrialState

from medslim.objectives.data import load_dataset
from medslim.objectives.metrics import acc_score, auc_score, count_flops, measure_latency_ms
from medslim.objectives.training import Recipe, predict_scores, recalibrate_batchnorm, train
from medslim.search.config import StudyConfig
from medslim.search.loop import run_trials
from medslim.search.session import baseline_count, prepare
from medslim.spaces.families import build_model, get_preset

TARGET = 1.05


@dataclass(frozen=True)
class Setup:
    """What both arms share: the resolved config, the teacher file, the prunable groups."""

    config: StudyConfig  # resolved (model, epochs); teacher = the saved state dict
    teacher_file: Path
    units: list[str]


def run_medslim(setup: Setup, storage: str) -> dict[str, Any]:
    """`medslim run` on a fresh storage: prepare (data, teacher, study, baselines), optimise."""
    start = time.perf_counter()
    session = prepare(setup.config.with_overrides(storage=storage, study="overhead"))
    ready = time.perf_counter()
    run_trials(session, progress=False)
    done = time.perf_counter()
    trials = session.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return {
        "setup_s": ready - start,
        "loop_s": done - ready,
        "trials": len(trials),
        "results": {t.number: {"val_auc": t.values[0], "flops": int(t.values[2])} for t in trials},
    }


def run_hand_written(setup: Setup, storage: str | None) -> dict[str, Any]:
    """The loop a user would write: Optuna, BasePruner, recalibrate, fine-tune, score."""
    config = setup.config
    start = time.perf_counter()
    data = load_dataset(config.dataset, seed=config.seed)
    teacher = build_model(get_preset(str(config.model)), data.input_shape, data.n_outputs)
    teacher.load_state_dict(torch.load(setup.teacher_file, weights_only=True))
    recipe = Recipe(epochs=config.epochs or 0, batch_size=config.batch_size, lr=config.lr / 2)
    study = optuna.create_study(
        storage=storage,
        study_name="hand",
        directions=["maximize", "maximize", "minimize"],
        sampler=_same_tpe_as_medslim(config.seed),
    )
    units = setup.units
    baselines = baseline_count(config.baselines, config.trials)
    for i in range(baselines):  # uniform ratios first, as medslim does
        ratio = round(config.max_ratio * (i + 1) / baselines, 4)
        study.enqueue_trial({"sparsity.global": ratio, **{f"offset.{u}": 0.0 for u in units}})
    example = data.train.batch(slice(0, 2))
    ready = time.perf_counter()

    def objective(trial: optuna.Trial) -> tuple[float, float, float]:
        g = trial.suggest_float("sparsity.global", 0.0, config.max_ratio)
        offsets = {
            u: trial.suggest_float(f"offset.{u}", -config.max_offset, config.max_offset)
            for u in units
        }
        ratios = {u: min(max(g + offsets[u], 0.0), config.max_ratio) for u in units}
        seed = config.seed + trial.number  # medslim's seeds, so fine-tuning is the same
        torch.manual_seed(seed)
        model = copy.deepcopy(teacher)
        pruner = tp.pruner.BasePruner(
            model,
            example,
            importance=tp.importance.GroupMagnitudeImportance(p=1),
            pruning_ratio=0.0,
            pruning_ratio_dict={model.get_submodule(u): r for u, r in ratios.items()},
            ignored_layers=[model.get_submodule("head")],
        )
        pruner.step()
        recalibrate_batchnorm(model, data.train, 8)
        train(model, data.train, data.task, recipe, seed=seed)
        model.eval()
        y_score = predict_scores(model, data.val, data.task)
        y_true = data.val.y.numpy()
        auc, acc = auc_score(y_true, y_score, data.task), acc_score(y_true, y_score, data.task)
        flops = count_flops(model, data.input_shape)
        latency = measure_latency_ms(model, data.input_shape, repeats=30)
        trial.set_user_attr("scores", {"val_auc": auc, "flops": flops, "latency_ms": latency})
        return auc, acc, flops

    study.optimize(objective, n_trials=config.trials)
    done = time.perf_counter()
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return {
        "setup_s": ready - start,
        "loop_s": done - ready,
        "trials": len(trials),
        "results": {t.number: {"val_auc": t.values[0], "flops": int(t.values[2])} for t in trials},
    }


def _same_tpe_as_medslim(seed: int) -> optuna.samplers.TPESampler:
    """The sampler a user would configure by hand, with medslim's default settings: Optuna
    runs its relative sampling for every trial, enqueued or not, so both arms pay for it."""
    with warnings.catch_warnings():  # `group` and `constant_liar` are marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=seed, multivariate=True, group=True, constant_liar=True, n_startup_trials=10
        )


def make_setup(args: argparse.Namespace, workdir: Path) -> tuple[Setup, dict[str, Any]]:
    """Train (or load the cached) teacher once, save its state dict, and do medslim's first
    run (repeat 0's medslim arm, the reference for the same-work check)."""
    args.cache.mkdir(parents=True, exist_ok=True)
    show_progress()
    session = prepare(
        StudyConfig(
            dataset=args.dataset,
            trials=args.trials,
            storage=f"sqlite:///{args.cache / 'teachers.db'}",  # teacher cached beside it
            study=f"overhead-teacher-{Path(args.dataset).stem}",  # one teacher per dataset
            kd=False,  # the hand-written loop fine-tunes on the task loss alone
            force_config=True,
        ),
    )
    teacher_file = workdir / "teacher.pt"
    torch.save(session.teacher.state_dict(), teacher_file)
    config = session.config.with_overrides(teacher=str(teacher_file), force_config=False)
    if config.pruning != "structured" or config.criterion != "l1" or config.iterative_steps != 1:
        raise SystemExit("overhead.py mirrors structured, l1, one-step pruning only")
    setup = Setup(config, teacher_file, list(session.unit_names))
    return setup, run_medslim(setup, f"sqlite:///{workdir / 'medslim-0.db'}")


def per_trial(run: dict[str, Any]) -> float:
    return (run["setup_s"] + run["loop_s"]) / run["trials"]


def check_same_work(reference: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """Same FLOPs (same pruning) and the largest val AUC difference (same fine-tuning)."""
    pairs = [(reference["results"][n], r) for n, r in other["results"].items()]
    return {
        "same_flops": sum(a["flops"] == b["flops"] for a, b in pairs),
        "compared": len(pairs),
        "max_auc_diff": max((abs(a["val_auc"] - b["val_auc"]) for a, b in pairs), default=0.0),
    }


# Known suspects of medslim's per-trial overhead: (label, file name fragment, function names).
SUSPECTS = [
    ("whole trial (optuna _run_trial)", "_optimize.py", {"_run_trial"}),
    ("sqlite3 commit", "~", {"<method 'commit' of 'sqlite3.Connection' objects>"}),
    ("Trial.set_user_attr", "_trial.py", {"set_user_attr"}),
    ("Trial.suggest_float", "_trial.py", {"suggest_float"}),
    ("save_trial_model (artifact)", "trial_models.py", {"save_trial_model"}),
    ("heartbeat: fail_stale_trials", "_heartbeat.py", {"fail_stale_trials"}),
    ("sampler (samplers/*)", "samplers", {"sample_relative", "sample_independent"}),
    ("measure_latency_ms", "metrics.py", {"measure_latency_ms"}),
    ("count_flops", "metrics.py", {"count_flops"}),
    ("sparse_flops", "metrics.py", {"sparse_flops"}),
    ("prunable_units (dependency graph)", "sparsity.py", {"prunable_units"}),
    ("BasePruner.__init__", "base_pruner.py", {"__init__"}),
    ("recalibrate_batchnorm", "training.py", {"recalibrate_batchnorm"}),
    ("train (fine-tune)", "training.py", {"train"}),
    ("study.tell", "_tell.py", {"_tell_with_warning"}),
]


def profile(arms: dict[str, Callable[[], dict[str, Any]]], top: int) -> dict[str, Any]:
    """One cProfiled run per arm: cumulative time of the known suspects per trial, and the
    functions whose self time per trial differs most between medslim and each other arm."""
    stats: dict[str, dict[str, float]] = {}
    calls: dict[str, dict[str, int]] = {}
    trials: dict[str, int] = {}
    suspects: dict[str, dict[str, list[float]]] = {label: {} for label, _, _ in SUSPECTS}
    for name, arm in arms.items():
        profiler = cProfile.Profile()
        profiler.enable()
        run = arm()
        profiler.disable()
        trials[name] = run["trials"]
        raw = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
        for label, fragment, funcs in SUSPECTS:
            hits = [v for (f, _, fn), v in raw.items() if fragment in f and fn in funcs]
            suspects[label][name] = [
                sum(v[3] for v in hits) / run["trials"],  # cumulative s per trial
                sum(v[1] for v in hits) / run["trials"],  # calls per trial
            ]
        stats[name], calls[name] = {}, {}
        for (file, line, func), (_, ncalls, tottime, _, _) in raw.items():
            key = f"{func} ({Path(file).name}:{line})" if line else func
            stats[name][key] = stats[name].get(key, 0.0) + tottime / run["trials"]
            calls[name][key] = calls[name].get(key, 0) + ncalls
    medslim, *_ = arms
    rows = []
    for other in list(arms)[1:]:
        keys = set(stats[medslim]) | set(stats[other])
        gaps = sorted(
            keys,
            key=lambda k: stats[medslim].get(k, 0.0) - stats[other].get(k, 0.0),
            reverse=True,
        )
        for key in gaps[:top]:
            rows.append(
                {
                    "against": other,
                    "function": key,
                    "medslim_s_per_trial": stats[medslim].get(key, 0.0),
                    "medslim_calls_per_trial": calls[medslim].get(key, 0) / trials[medslim],
                    "hand_s_per_trial": stats[other].get(key, 0.0),
                    "hand_calls_per_trial": calls[other].get(key, 0) / trials[other],
                }
            )
    totals = {name: sum(s.values()) for name, s in stats.items()}
    return {"suspects": suspects, "self_time_gaps": rows, "profiled_s_per_trial": totals}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="breast-cancer", help="a name or a .npz path")
    parser.add_argument("--trials", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=4, help="alternating-order repeats")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads for both arms (fixed, stated)"
    )
    parser.add_argument(
        "--hand",
        nargs="+",
        default=["sqlite", "memory"],
        choices=["sqlite", "memory"],
        help="storages of the hand-written loop (each is one arm)",
    )
    parser.add_argument("--profile", action="store_true", help="then cProfile one run per arm")
    parser.add_argument("--top", type=int, default=12, help="profile rows per comparison")
    parser.add_argument("--out", type=Path, default=Path("overhead.json"))
    add_cache_argument(parser)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="medslim-overhead-") as tmp:
        workdir = Path(tmp)
        print(f"{args.dataset}:", flush=True)
        setup, first = make_setup(args, workdir)
        arms: dict[str, Callable[[int], dict[str, Any]]] = {
            "medslim": lambda r: run_medslim(setup, f"sqlite:///{workdir / f'medslim-{r}.db'}")
        }
        if "sqlite" in args.hand:
            arms["hand sqlite"] = lambda r: run_hand_written(
                setup, f"sqlite:///{workdir / f'hand-{r}.db'}"
            )
        if "memory" in args.hand:
            arms["hand memory"] = lambda r: run_hand_written(setup, None)
        runs: list[dict[str, Any]] = []
        for repeat in range(args.repeats):
            order = list(arms) if repeat % 2 == 0 else list(reversed(arms))
            for name in order:
                if name == "medslim" and repeat == 0:
                    run = first  # ran first, before the hand-written arms
                else:
                    run = arms[name](repeat)
                run = {"arm": name, "repeat": repeat, "order": order.index(name), **run}
                run["per_trial_s"] = per_trial(run)
                runs.append(run)
                print(
                    f"  repeat {repeat} {name:<12} {run['per_trial_s']:.3f} s/trial "
                    f"(setup {run['setup_s']:.2f} s, loop {run['loop_s']:.2f} s)",
                    flush=True,
                )
        profiled = None
        if args.profile:
            print("  profiling one run per arm ...", flush=True)
            profiled = profile(
                {name: (lambda arm=arm: arm(args.repeats)) for name, arm in arms.items()},
                args.top,
            )
    report = summarise(args, setup, runs, first, load_before, profiled)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {args.out}")


def summarise(
    args: argparse.Namespace,
    setup: Setup,
    runs: list[dict[str, Any]],
    first: dict[str, Any],
    load_before: float,
    profiled: dict[str, Any] | None,
) -> dict[str, Any]:
    arms = list(dict.fromkeys(run["arm"] for run in runs))
    rows = {}
    for arm in arms:
        mine = [run for run in runs if run["arm"] == arm]
        rows[arm] = {
            "per_trial_s": statistics.median(run["per_trial_s"] for run in mine),
            "loop_per_trial_s": statistics.median(run["loop_s"] / run["trials"] for run in mine),
            "setup_s": statistics.median(run["setup_s"] for run in mine),
            "trials": mine[0]["trials"],
        }
    # Ratio per repeat (paired: same load), then the median over repeats.
    ratios = {}
    for arm in arms[1:]:
        paired = [
            (m["per_trial_s"] / h["per_trial_s"], m["loop_s"] / h["loop_s"])
            for m in runs
            if m["arm"] == "medslim"
            for h in runs
            if h["arm"] == arm and h["repeat"] == m["repeat"]
        ]
        ratios[arm] = {
            "per_trial": statistics.median(p for p, _ in paired),
            "loop_only": statistics.median(loop for _, loop in paired),
            "per_repeat": [round(p, 3) for p, _ in paired],
        }
    checks = {
        f"{run['arm']} repeat {run['repeat']}": check_same_work(first, run)
        for run in runs
        if (run["arm"], run["repeat"]) != ("medslim", 0)
    }
    config = setup.config
    print(
        f"\n{args.dataset}: {config.model}, {rows['medslim']['trials']} trials per run "
        f"({baseline_count(config.baselines, config.trials)} uniform baselines, then "
        f"{config.sampler}), "
        f"{config.epochs} fine-tune epoch(s); torch threads {torch.get_num_threads()}, "
        f"{os.cpu_count()} CPU cores, load average {load_before:.1f} → {os.getloadavg()[0]:.1f}"
    )
    print(f"median of {args.repeats} repeats, arms alternating order; per trial = (setup + loop)")
    print(
        f"{'arm':<12} {'s/trial':>9} {'loop s/trial':>13} {'setup s':>8} {'ratio':>7} "
        f"{'loop ratio':>11}  ratio per repeat"
    )
    for arm, row in rows.items():
        ratio = ratios.get(arm)
        text = (
            f"{ratio['per_trial']:>7.3f} {ratio['loop_only']:>11.3f}  {ratio['per_repeat']}"
            if ratio
            else f"{'':>7} {'':>11}"
        )
        print(
            f"{arm:<12} {row['per_trial_s']:>9.3f} {row['loop_per_trial_s']:>13.3f} "
            f"{row['setup_s']:>8.2f} {text}"
        )
    print(f"ratio = medslim ÷ that arm (per repeat, then median); target ≤ {TARGET}")
    same = sum(c["same_flops"] for c in checks.values())
    compared = sum(c["compared"] for c in checks.values())
    worst = max((c["max_auc_diff"] for c in checks.values()), default=0.0)
    print(
        f"same work: {same}/{compared} trials with FLOPs equal to medslim's first run, "
        f"largest val AUC difference {worst:.2e}"
    )
    if profiled:
        print("\nprofile (cProfile, one run per arm): self time per trial, largest gaps first")
        totals = profiled["profiled_s_per_trial"]
        print("  profiled s/trial: " + ", ".join(f"{k} {v:.3f}" for k, v in totals.items()))
        names = list(totals)
        print("  known suspects, cumulative s per trial (calls per trial):")
        print(f"  {'':<34}" + "".join(f"{n:>20}" for n in names))
        for label, per_arm in profiled["suspects"].items():
            cells = "".join(f"{per_arm[n][0]:>11.4f} ({per_arm[n][1]:>5.1f})" for n in names)
            print(f"  {label:<34}{cells}")
        print("  largest self-time gaps per trial:")
        against = None
        for row in profiled["self_time_gaps"]:
            if row["against"] != against:
                against = row["against"]
                print(f"  medslim vs {against}:")
                print(
                    f"  {'medslim s':>10} {'calls':>7} {'hand s':>8} {'calls':>7} "
                    f"{'gap s':>8}  function"
                )
            gap = row["medslim_s_per_trial"] - row["hand_s_per_trial"]
            print(
                f"  {row['medslim_s_per_trial']:>10.4f} {row['medslim_calls_per_trial']:>7.1f} "
                f"{row['hand_s_per_trial']:>8.4f} {row['hand_calls_per_trial']:>7.1f} "
                f"{gap:>8.4f}  {row['function']}"
            )
    return {
        "dataset": args.dataset,
        "model": config.model,
        "epochs": config.epochs,
        "sampler": config.sampler,
        "baselines": baseline_count(config.baselines, config.trials),
        "torch_threads": torch.get_num_threads(),
        "cpu_cores": os.cpu_count(),
        "load_average_before_after": [load_before, os.getloadavg()[0]],
        "target_ratio": TARGET,
        "rows": rows,
        "ratios": ratios,
        "same_work": checks,
        "runs": [{k: v for k, v in run.items() if k != "results"} for run in runs],
        "profile": profiled,
    }


if __name__ == "__main__":
    main()
