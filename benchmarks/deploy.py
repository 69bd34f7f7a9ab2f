"""Deployment: INT8 quantization, low-rank factorization and measured latency on one front.

Per seed, four studies of the same number of trials on one teacher (PneumoniaMNIST from the
shared file; the default image model, resnet8 on the CPU), each run by `medslim.run` and
kept in one SQLite file under --cache (the teachers of the other benchmarks cached beside
it are reused), so that a second run resumes instead of repeating:
  P  pruning with medslim's defaults (objectives val_auc, val_acc, flops; fp32);
  L  low-rank factorization alone (--method lowrank);
  B  pruning and low rank on one trial (--method prune+lowrank);
  D  every method on one front, each trial choosing fp32 or int8, judged by measured
     latency (--method all --quantize search --objectives val_auc,latency_ms).
Reported per seed (and over seeds):
  1. the int8 variant of each of P's front members (onnxruntime static QDQ with the
     study's default settings, calibrated on its seeded training sample): its file ÷ the
     fp32 file (target ≥ 3.5×), its val AUC − the fp32 model's (target within 0.005), and
     on test, non-inferiority to the teacher (paired bootstrap of ΔAUC, 1000 resamples,
     margin 0.01) with its file ÷ the teacher's fp32 file (target: one at ≤ 0.15);
  2. D's front against P's front, every member of both and the teacher re-measured side by
     side in onnxruntime (batch 1, one thread, the models taking turns, median after
     outliers): the hypervolume of (AUC, −log10 latency ÷ the teacher's) above (0.5, 0),
     on val and test AUC, and D ÷ P (target ≥ 1);
  3. L and B against P at equal trials: the hypervolume of (AUC, −log10 FLOPs ratio) on
     val and test AUC, and L ÷ P, B ÷ P, whichever way they go.

    nice -n 10 python benchmarks/deploy.py [--trials 20] [--seeds 0 1 2] [--out deploy.json]
        [--cache DIR] [--candidates 1] [--allocations uniform]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import SHARED_DATA, add_cache_argument, show_progress
from front_quality import hypervolume
from torch import nn

import medslim
from medslim.objectives.bootstrap import Scored, batched_auc, paired_interval, stratified_indices
from medslim.objectives.data import Dataset
from medslim.objectives.metrics import auc_score
from medslim.objectives.onnx_latency import Timing, side_by_side
from medslim.objectives.onnx_models import OnnxModule, onnx_session, to_onnx
from medslim.objectives.training import predict_scores
from medslim.search.api import StoredStudy
from medslim.search.deployment import convert, study_calibration
from medslim.search.inspection.pareto import FrontMember
from medslim.search.inspection.reopen import reopen
from medslim.search.inspection.rescore import member_model
from medslim.search.methods import INT8

DATASET = SHARED_DATA / "pneumoniamnist.npz"
ARMS: dict[str, dict[str, Any]] = {
    "P": {},
    "L": {"method": "lowrank"},
    "B": {"method": "prune+lowrank"},
    "D": {"method": "all", "quantize": "search", "objectives": ("val_auc", "latency_ms")},
}
MARGIN = 0.01
RESAMPLES = 1000
SMALLER = 3.5
CLOSE = 0.005
SIZE_SHARE = 0.15
LATENCY_ROUNDS = 60


@dataclass
class Member:
    """A front member as the benchmark scores it."""

    trial: int
    kind: str
    precision: str
    val_auc: float
    test_auc: float
    flops_ratio: float
    model: nn.Module
    latency_ratio: float = float("nan")


@dataclass
class Context:
    data: Dataset
    teacher: nn.Module
    teacher_test: np.ndarray
    y_test: np.ndarray
    indices: np.ndarray
    example: torch.Tensor


def run_arm(
    folder: Path, arm: str, seed: int, trials: int, cheaper: dict[str, Any]
) -> StoredStudy:
    """One arm's study; `cheaper`: settings every arm shares instead of the defaults
    (`--candidates`, `--allocations`), named in the study so the defaults' study is apart."""
    suffix = "".join(
        f"-{k}-{'+'.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in cheaper.items()
    )
    return medslim.run(
        dataset=str(DATASET),
        storage=f"sqlite:///{folder / 'deploy.db'}",
        study=f"deploy-{arm}-seed{seed}{suffix}",
        seed=seed,
        trials=trials,
        progress=False,
        **ARMS[arm],
        **cheaper,
    )


def context_of(stored: StoredStudy) -> Context:
    opened = reopen(stored.ref)
    data = opened.data
    y_test = data.test.y.cpu().numpy()
    return Context(
        data,
        opened.teacher,
        predict_scores(opened.teacher, data.test, data.task),
        y_test,
        stratified_indices(y_test, RESAMPLES, 0),
        data.train.batch(slice(0, 1)).cpu(),
    )


def members(stored: StoredStudy, context: Context) -> list[Member]:
    """The study's front (chosen on val), each member as it deploys, with its test AUC."""
    found = []
    for member in stored.front().members:
        model = member_model(stored.ref, stored.ref.finished_trial(member.trial), False)
        test = predict_scores(model, context.data.test, context.data.task)
        found.append(
            Member(
                member.trial,
                member.kind,
                member.precision,
                member.val_auc,
                auc_score(context.y_test, test, context.data.task),
                member.flops_ratio,
                model,
            )
        )
    return found


def non_inferior(context: Context, scores: np.ndarray) -> tuple[bool, float]:
    """Whether the paired ΔAUC interval's lower bound clears −MARGIN, and that bound."""
    delta = paired_interval(
        context.y_test,
        Scored(scores, batched_auc),
        Scored(context.teacher_test, batched_auc),
        context.data.task,
        context.indices,
    )
    return delta.low > -MARGIN, delta.low


def int8_variants(stored: StoredStudy, context: Context, front: list[FrontMember]) -> list[dict]:
    """Figure 1: each fp32 front member against its int8 variant."""
    calibration = study_calibration(stored.ref.config(), context.data)
    teacher_size = len(to_onnx(context.teacher, context.example))
    rows = []
    for member in front:
        model = member_model(stored.ref, stored.ref.finished_trial(member.trial), False)
        fp32 = to_onnx(model, context.example)
        converted, record = convert(model, INT8, calibration, context.data)
        test = predict_scores(OnnxModule(converted.data), context.data.test, context.data.task)
        ok, low = non_inferior(context, test)
        rows.append(
            {
                "trial": member.trial,
                "kind": member.kind,
                "flops_ratio": member.flops_ratio,
                "fp32_bytes": len(fp32),
                "int8_bytes": len(converted.data),
                "smaller": len(fp32) / len(converted.data),
                "fp32_val_auc": member.val_auc,
                "int8_val_auc": float(record.get("val_auc", member.val_auc)),
                "val_auc_change": float(record.get("val_auc", member.val_auc)) - member.val_auc,
                "int8_test_auc": auc_score(context.y_test, test, context.data.task),
                "delta_auc_low": low,
                "non_inferior": ok,
                "teacher_size_share": len(converted.data) / teacher_size,
                "fp32_ops": record.get("fp32_ops", ""),
            }
        )
    return rows


def remeasure(context: Context, fronts: dict[str, list[Member]]) -> Timing:
    """Figure 2's latency: the teacher and every member of the fronts side by side in
    onnxruntime; sets each member's ratio to the teacher; returns the teacher's timing."""
    models = [m for front in fronts.values() for m in front]
    sessions = [onnx_session(to_onnx(context.teacher, context.example))]
    for member in models:
        if isinstance(member.model, OnnxModule):
            sessions.append(member.model.session)
        else:
            sessions.append(onnx_session(to_onnx(member.model, context.example)))
    timings = side_by_side(sessions, context.data.input_shape, rounds=LATENCY_ROUNDS)
    for member, timing in zip(models, timings[1:], strict=True):
        member.latency_ratio = timing.median_ms / timings[0].median_ms
    return timings[0]


def volumes(front: list[Member], x: str) -> dict[str, float]:
    """Hypervolume of (val AUC, x) and (test AUC, x); x: `flops_ratio` or `latency_ratio`."""
    return {
        split: hypervolume([(getattr(m, f"{split}_auc"), getattr(m, x)) for m in front])
        for split in ("val", "test")
    }


def one_seed(folder: Path, seed: int, trials: int, cheaper: dict[str, Any]) -> dict[str, Any]:
    start = time.perf_counter()
    studies = {arm: run_arm(folder, arm, seed, trials, cheaper) for arm in ARMS}
    wall = time.perf_counter() - start
    context = context_of(studies["P"])
    fronts = {arm: members(stored, context) for arm, stored in studies.items()}
    variants = int8_variants(studies["P"], context, studies["P"].front().members)
    teacher = remeasure(context, {"P": fronts["P"], "D": fronts["D"]})
    latency = {arm: volumes(fronts[arm], "latency_ratio") for arm in ("P", "D")}
    flops = {arm: volumes(fronts[arm], "flops_ratio") for arm in ("P", "L", "B")}
    smallest = [r["teacher_size_share"] for r in variants if r["non_inferior"]]
    return {
        "seed": seed,
        "trials": trials,
        "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in cheaper.items()},
        "wall_s": round(wall, 1),
        "teacher_test_auc": auc_score(context.y_test, context.teacher_test, context.data.task),
        "int8": variants,
        "int8_summary": {
            "members": len(variants),
            "at_least_3.5x_smaller": sum(r["smaller"] >= SMALLER for r in variants),
            "val_auc_within_0.005": sum(abs(r["val_auc_change"]) <= CLOSE for r in variants),
            "smallest_non_inferior_share": min(smallest, default=None),
        },
        "teacher_latency": teacher.as_json(),
        "latency_hypervolume": latency,
        "latency_ratio_D_over_P": _ratios(latency["D"], latency["P"]),
        "flops_hypervolume": flops,
        "L_over_P": _ratios(flops["L"], flops["P"]),
        "B_over_P": _ratios(flops["B"], flops["P"]),
        "fronts": {
            arm: [
                {k: v for k, v in m.__dict__.items() if k != "model"}
                for m in sorted(front, key=lambda m: m.flops_ratio)
            ]
            for arm, front in fronts.items()
        },
    }


def _ratios(mine: dict[str, float], theirs: dict[str, float]) -> dict[str, float]:
    return {k: mine[k] / theirs[k] if theirs[k] > 0 else math.inf for k in mine}


def show(result: dict[str, Any]) -> None:
    print(
        f"\nseed {result['seed']}: {result['trials']} trials an arm, {result['wall_s']} s, "
        f"settings {result['settings'] or 'the defaults'}"
    )
    print(f"teacher test AUC {result['teacher_test_auc']:.4f}")
    print("1. int8 variants of P's front (onnxruntime static QDQ):")
    print(
        f"  {'trial':>5} {'FLOPs×':>7} {'fp32 kB':>8} {'int8 kB':>8} {'smaller':>7} "
        f"{'ΔvalAUC':>8} {'int8 test AUC':>13} {'ΔAUC low':>8} {'size÷teacher':>12} verdict"
    )
    for r in result["int8"]:
        verdict = "non-inferior" if r["non_inferior"] else "not shown"
        print(
            f"  {r['trial']:>5} {r['flops_ratio']:>7.3f} {r['fp32_bytes'] / 1e3:>8.1f} "
            f"{r['int8_bytes'] / 1e3:>8.1f} {r['smaller']:>6.2f}× {r['val_auc_change']:>+8.4f} "
            f"{r['int8_test_auc']:>13.4f} {r['delta_auc_low']:>+8.4f} "
            f"{r['teacher_size_share']:>12.3f} {verdict}"
        )
    summary = result["int8_summary"]
    print(
        f"  {summary['at_least_3.5x_smaller']}/{summary['members']} at least {SMALLER}× smaller, "
        f"{summary['val_auc_within_0.005']}/{summary['members']} within {CLOSE} val AUC; "
        f"smallest non-inferior int8 member: "
        f"{summary['smallest_non_inferior_share']} of the teacher's file"
    )
    teacher = result["teacher_latency"]
    print(
        "2. latency fronts re-measured side by side (teacher "
        f"{teacher['median_ms']:.3g} ms, spread {teacher['spread']:.0%}):"
    )
    for arm, volume in result["latency_hypervolume"].items():
        print(f"  {arm}: hypervolume val {volume['val']:.4f}  test {volume['test']:.4f}")
    ratio = result["latency_ratio_D_over_P"]
    print(f"  D ÷ P: val {ratio['val']:.3f}  test {ratio['test']:.3f}")
    print("3. FLOPs fronts at equal trials:")
    for arm, volume in result["flops_hypervolume"].items():
        print(f"  {arm}: hypervolume val {volume['val']:.4f}  test {volume['test']:.4f}")
    for name in ("L_over_P", "B_over_P"):
        print(
            f"  {name.replace('_over_', ' ÷ ')}: val {result[name]['val']:.3f}  test "
            f"{result[name]['test']:.3f}"
        )


def over_seeds(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Means and ranges of the ratios over seeds (no interval below five seeds)."""

    def spread(values: list[float]) -> dict[str, float]:
        return {
            "mean": statistics.fmean(values),
            "min": min(values),
            "max": max(values),
            "seeds": len(values),
        }

    summary: dict[str, Any] = {}
    for key in ("latency_ratio_D_over_P", "L_over_P", "B_over_P"):
        for split in ("val", "test"):
            summary[f"{key}.{split}"] = spread([r[key][split] for r in results])
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, help="torch threads (default: all)")
    parser.add_argument("--out", type=Path, default=Path("deploy.json"))
    add_cache_argument(parser, "the studies and teachers")
    parser.add_argument(
        "--candidates",
        type=int,
        help="candidates screened per trial in every arm (default: medslim's; 1 is cheapest)",
    )
    parser.add_argument(
        "--allocations",
        help="allocations of every arm, comma-separated (default: medslim's, screened; "
        "uniform needs no proxy curves, the cheapest on a busy machine)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    show_progress()
    folder = args.cache
    folder.mkdir(parents=True, exist_ok=True)
    cheaper: dict[str, Any] = {}
    if args.candidates is not None:
        cheaper["candidates"] = args.candidates
    if args.allocations:
        cheaper["allocations"] = tuple(args.allocations.split(","))
    results = []
    for seed in args.seeds:
        results.append(one_seed(folder, seed, args.trials, cheaper))
        show(results[-1])
        report = {
            "machine": f"{os.cpu_count()} CPUs, load average {os.getloadavg()}",
            "results": results,
            "over_seeds": over_seeds(results),
        }
        args.out.write_text(json.dumps(report, indent=1, default=float))
    print("\nover seeds:", json.dumps(over_seeds(results), indent=1))


if __name__ == "__main__":
    main()
