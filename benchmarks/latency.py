"""Latency: where fewer FLOPs buy real time. For each front member of a study, the FLOPs
reduction factor (teacher FLOPs ÷ member FLOPs) next to the measured CPU latency speedup
(teacher latency ÷ member latency) at batch 1 and batch 64.

Members are rebuilt from their stored artifacts (`search.trial_models`), the teacher from
the study's cache (`search.reopen`). Teacher and member are timed back to back, in
alternating order, in every round; a speedup is the median over rounds of those paired
ratios, so load drifts on a shared machine cancel. Torch threads are fixed (`--threads`).
Without `--storage`, a small study is built (and kept, so a rerun only measures) on
../shared/data/pneumoniamnist.npz if present, else breast-cancer.

    python benchmarks/latency.py [--storage URL [--study NAME]] [--threads 1] [--out F]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path
from typing import Any

import optuna
import torch
from common import SHARED_DATA, add_cache_argument, show_progress
from torch import nn

from medslim.objectives.metrics import count_flops, measure_latency_ms
from medslim.search.config import StudyConfig
from medslim.search.inspection.pareto import compute_front
from medslim.search.inspection.reopen import reopen
from medslim.search.loop import run_trials
from medslim.search.session import prepare
from medslim.search.stored import StudyRef, open_study
from medslim.search.trial_models import load_trial_model

PNEUMONIA = SHARED_DATA / "pneumoniamnist.npz"
BATCHES = (1, 64)


def build_small_study(cache: Path, trials: int) -> tuple[str, str]:
    """A few trials (uniform baselines first) on a storage in the cache; resumed if there."""
    dataset = str(PNEUMONIA) if PNEUMONIA.is_file() else "breast-cancer"
    name = "latency-pneumoniamnist" if PNEUMONIA.is_file() else "latency-breast-cancer"
    storage = f"sqlite:///{cache / 'latency.db'}"
    print(f"building study {name} ({trials} trials) in {storage} ...", flush=True)
    show_progress()
    session = prepare(
        StudyConfig(
            dataset=dataset,
            trials=trials,
            baselines=max(1, trials - 2),
            storage=storage,
            study=name,
        )
    )
    run_trials(session, progress=False)
    return storage, name


def paired_latencies(
    teacher: nn.Module,
    model: nn.Module,
    input_shape: tuple[int, ...],
    batch: int,
    repeats: int,
    teacher_first: bool,
) -> tuple[float, float]:
    """(teacher ms, member ms), timed back to back in the given order."""
    order = [teacher, model] if teacher_first else [model, teacher]
    timed = [
        measure_latency_ms(m, input_shape, batch_size=batch, repeats=repeats, warmup=3)
        for m in order
    ]
    return (timed[0], timed[1]) if teacher_first else (timed[1], timed[0])


def measure(ref: StudyRef, rounds: int, repeats: dict[int, int]) -> dict[str, Any]:
    study = ref.study
    opened = reopen(ref)
    shape = opened.data.input_shape
    teacher = opened.teacher.eval()
    teacher_flops = count_flops(teacher, shape)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    front = compute_front(study)
    members = [(member, load_trial_model(ref, trials[member.trial])) for member in front.members]
    timings: dict[int, dict[int, list[tuple[float, float]]]] = {
        m.trial: {b: [] for b in BATCHES} for m, _ in members
    }
    for round_ in range(rounds):
        for index, (member, model) in enumerate(members):
            for batch in BATCHES:
                pair = paired_latencies(
                    teacher, model, shape, batch, repeats[batch], (round_ + index) % 2 == 0
                )
                timings[member.trial][batch].append(pair)
    rows = []
    for member, model in members:
        flops = count_flops(model, shape)
        row: dict[str, Any] = {
            "trial": member.trial,
            "method": member.method,
            "baseline": member.baseline,
            "val_auc": member.val_auc,
            "flops": flops,
            "stored_flops": member.flops,
            "flops_reduction": teacher_flops / flops,
        }
        for batch in BATCHES:
            pairs = timings[member.trial][batch]
            row[f"teacher_ms_b{batch}"] = statistics.median(t for t, _ in pairs)
            row[f"member_ms_b{batch}"] = statistics.median(m for _, m in pairs)
            row[f"speedup_b{batch}"] = statistics.median(t / m for t, m in pairs)
            row[f"pairs_b{batch}"] = pairs
        rows.append(row)
    return {
        "study": study.study_name,
        "dataset": opened.config.dataset,
        "model": opened.config.model,
        "input_shape": list(shape),
        "teacher_flops": teacher_flops,
        "teacher_val_auc": front.teacher.get("val_auc"),
        "members": rows,
    }


def print_table(report: dict[str, Any]) -> None:
    print(
        f"\nstudy {report['study']} ({report['model']} on {Path(report['dataset']).name}, "
        f"input {tuple(report['input_shape'])}): teacher {report['teacher_flops']:,} FLOPs, "
        f"val AUC {report['teacher_val_auc']:.4f}"
    )
    print(
        f"torch threads {report['threads']}, {report['cpu_cores']} CPU cores, load average "
        f"{report['load_average_before_after'][0]:.1f} → "
        f"{report['load_average_before_after'][1]:.1f}; median of {report['rounds']} rounds, "
        f"teacher and member timed back to back in alternating order"
    )
    header = (
        f"{'trial':>5} {'method':<8} {'val AUC':>7} {'FLOPs':>11} {'FLOPs ÷':>8} "
        f"{'b1 ms':>7} {'b1 ×':>6} {'b64 ms':>8} {'b64 ×':>6} {'b64 × / FLOPs ÷':>16}"
    )
    print(header)
    first = report["members"][0] if report["members"] else None
    if first is not None:
        print(
            f"{'teach':>5} {'-':<8} {report['teacher_val_auc']:>7.4f} "
            f"{report['teacher_flops']:>11,} {1.0:>8.2f} {first['teacher_ms_b1']:>7.3f} "
            f"{1.0:>6.2f} {first['teacher_ms_b64']:>8.3f} {1.0:>6.2f} {1.0:>16.2f}"
        )
    for row in report["members"]:
        method = row["method"] + ("*" if row["baseline"] else "")
        print(
            f"{row['trial']:>5} {method:<8} {row['val_auc']:>7.4f} {row['flops']:>11,} "
            f"{row['flops_reduction']:>8.2f} {row['member_ms_b1']:>7.3f} "
            f"{row['speedup_b1']:>6.2f} {row['member_ms_b64']:>8.3f} {row['speedup_b64']:>6.2f} "
            f"{row['speedup_b64'] / row['flops_reduction']:>16.2f}"
        )
    print(
        "FLOPs ÷ = teacher FLOPs / member FLOPs; b1 ×, b64 × = teacher latency / member "
        "latency at batch 1, 64 (teacher ms on the teacher row: first member's pairs); "
        "* = uniform baseline"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", help="an Optuna storage URL (default: build a small study)")
    parser.add_argument("--study", help="study name (needed when the storage holds several)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads while timing")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per member")
    parser.add_argument("--repeats-b1", type=int, default=30, help="timed passes at batch 1")
    parser.add_argument("--repeats-b64", type=int, default=10, help="timed passes at batch 64")
    parser.add_argument("--trials", type=int, default=6, help="trials of the small study")
    parser.add_argument("--out", type=Path, default=Path("latency.json"))
    add_cache_argument(parser, "the small study and its teacher")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage, name = args.storage, args.study
    if storage is None:
        args.cache.mkdir(parents=True, exist_ok=True)
        storage, name = build_small_study(args.cache, args.trials)
    ref = open_study(storage, name)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    report = measure(ref, args.rounds, {1: args.repeats_b1, 64: args.repeats_b64})
    report.update(
        threads=torch.get_num_threads(),
        cpu_cores=os.cpu_count(),
        load_average_before_after=[load_before, os.getloadavg()[0]],
        rounds=args.rounds,
        repeats={"b1": args.repeats_b1, "b64": args.repeats_b64},
    )
    print_table(report)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
