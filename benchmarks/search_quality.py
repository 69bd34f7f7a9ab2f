"""Search quality: medslim's default search against what a user would write instead, at
equal compute, judged on the test split with intervals.

Per model, dataset and seed (one teacher per model and dataset, trained once and cached),
each arm may spend the compute medslim's default arm (m) spent on that seed, counted as
this process's CPU seconds (screening, sensitivity curves and study preparation included;
CPU seconds, not wall seconds, so that other jobs on the machine do not shift the budget;
wall seconds are printed beside them):
  u  uniform sweep: one ratio for every group, ratios from --max-ratio down, coarse to
     fine (1, 1/2, 3/4, 1/4, ... of it), until the budget is spent (a for-loop over ratios);
  g  Torch-Pruning global-pruning sweep, as its README writes it (GroupMagnitudeImportance
     p=2, global_pruning=True, the head ignored), the same ratios in the same order;
  m  medslim's default (`medslim run --trials T`);
  a  allocations without screening (--allocations uniform,global,sensitivity,free
     --candidates 1);
  f  screening of free draws only (--allocations free);
  t  uniform allocation at medslim's targets and sampler (--allocations uniform);
  o  the search before this change (--allocations offsets: a global ratio plus offsets);
  s  sparsity training (--sparsity-training 5e-4);
  p  Optuna's GPSampler instead of TPE (--sampler gp);
  b  pruning and distilled students on one front (--method both; not with --cv).
Every arm prunes the same teacher, recalibrates batch norm and fine-tunes the same way:
one epoch on the task loss plus the teacher's soft labels; with --cv K (BreastMNIST by
default: its 78 val images resolve AUC to about ±0.09) each candidate is scored by K-fold
cross-validation over train+val instead, on the task loss.

Reported per arm (mean over seeds, and a bootstrap interval that resamples seeds and test
images together, paired across arms): the hypervolume of **test** AUC against log10 FLOPs
ratio of the front chosen on val (reference: AUC 0.5, FLOPs ratio 1) and of the val AUC
beside it, with the ratio of test hypervolumes to (u) and to (g); the smallest FLOPs ratio
of a val-front member non-inferior to the teacher on test (paired bootstrap, margin 0.01);
test AUC of the member a user would pick at 1/4, 1/10 and 1/30 of the teacher's FLOPs
(the best val AUC at or below it); all of it again after refining those three members
for --refine-epochs epochs on the teacher's soft labels. And the proxy: Spearman ρ
between each screened candidate's proxy and its val (and test) AUC after fine-tuning, all
candidates at 1/4, 1/10 and 1/30 fine-tuned (mean over the three targets).

    python benchmarks/search_quality.py [--models resnet8] [--datasets pneumoniamnist
        breastmnist] [--seeds 0 1 2 3 4] [--trials 20] [--arms ugmaftos] [--cv 5]
        [--cv-datasets breastmnist] [--refine-epochs 3] [--out search_quality.json]
    python benchmarks/search_quality.py --combine run1.json run2.json   # seeds of two runs
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
import torch_pruning as tp
from common import SHARED_DATA, add_cache_argument, show_progress
from front_quality import hypervolume
from scipy.stats import spearmanr
from torch import nn

from medslim.objectives.bootstrap import (
    Scored,
    batched_auc,
    paired_interval,
    stratified_indices,
)
from medslim.objectives.crossval import cv_folds
from medslim.objectives.data import Dataset
from medslim.objectives.evaluate import recalibrated_prune, split_scores
from medslim.objectives.metrics import auc_score, count_flops
from medslim.objectives.proxy import fidelity
from medslim.objectives.training import (
    BatchLoss,
    Recipe,
    predict_scores,
    recalibrate_batchnorm,
    train,
)
from medslim.search.config import StudyConfig
from medslim.search.loop import quiet_optuna, run_trials
from medslim.search.methods import kd_finetune_loss
from medslim.search.records import trial_record
from medslim.search.session import Session, budget_for, prepare
from medslim.search.stored import StudyRef
from medslim.search.study_format import PROXY_CURVES_COST_ATTR
from medslim.search.trial_models import load_trial_model
from medslim.spaces.allocation import candidates
from medslim.spaces.sparsity import PruningPlan, protected_layers

DATASETS = ("pneumoniamnist", "breastmnist")
ARMS = "ugmaftospb"
ARM_NAMES = {
    "u": "(u) uniform sweep",
    "g": "(g) Torch-Pruning global",
    "m": "(m) medslim default",
    "a": "(a) allocations, no screening",
    "f": "(f) screened free draws",
    "t": "(t) uniform at targets",
    "o": "(o) offsets (before)",
    "s": "(s) + sparsity training",
    "p": "(p) GPSampler",
    "b": "(b) --method both",
}
ARM_SETTINGS: dict[str, dict[str, Any]] = {
    "m": {},
    "a": {"allocations": ("uniform", "global", "sensitivity", "free"), "candidates": 1},
    "f": {"allocations": ("free",)},
    "t": {"allocations": ("uniform",)},
    "o": {"allocations": ("offsets",)},
    "s": {"sparsity_training": 5e-4},
    "p": {"sampler": "gp"},
    "b": {"method": "both"},
}
LEVELS = (1 / 4, 1 / 10, 1 / 30)
MARGIN = 0.01
RESAMPLES = 1000


@dataclass
class Member:
    """One fine-tuned model of an arm: where it sits and how it scores."""

    val_auc: float
    flops_ratio: float
    test_scores: np.ndarray | None = None
    model: nn.Module | Callable[[], nn.Module] | None = None
    """The model, or how to load it from the study when it is needed."""
    refined_scores: np.ndarray | None = None


@dataclass
class ArmRun:
    """One arm on one seed."""

    members: list[Member]
    cpu_s: float
    wall_s: float
    front: list[int] = field(default_factory=list)
    """Indices of the val-front members."""


class Setting:
    """One model and dataset: the teacher, its test scores, how candidates are scored."""

    def __init__(self, session: Session, teacher_file: Path, cv: int, workdir: Path) -> None:
        self.session = session
        self.teacher_file = teacher_file
        self.workdir = workdir
        self.data: Dataset = session.data
        self.teacher = session.teacher
        self.flops = session.teacher_flops
        self.cv = cv
        self.folds = cv_folds(self.data, cv, 0) if cv else []
        self.kd: BatchLoss | None = None if cv else kd_finetune_loss(session)
        self.budget = budget_for(session.config)
        self.y_test = self.data.test.y.cpu().numpy()
        self.teacher_test = predict_scores(self.teacher, self.data.test, self.data.task)
        self.indices = stratified_indices(self.y_test, RESAMPLES, 0)
        example = self.data.train.batch(slice(0, 2))
        self.protected = protected_layers(self.teacher, example)

    def finetune(self, pruned: nn.Module, seed: int) -> Member:
        """Fine-tune a pruned, not yet recalibrated copy (K-fold scored under --cv)."""
        task = self.data.task
        if not self.folds:
            recalibrate_batchnorm(pruned, self.data.train, self.budget.bn_batches)
            train(pruned, self.data.train, task, self.budget.finetune, seed=seed, loss=self.kd)
            auc, _ = split_scores(pruned, self.data.val, task)
            return Member(
                auc, count_flops(pruned, self.data.input_shape) / self.flops, model=pruned
            )
        aucs, first = [], None
        for index, fold in enumerate(self.folds):
            model = copy.deepcopy(pruned)
            recalibrate_batchnorm(model, fold.train, self.budget.bn_batches)
            train(model, fold.train, task, self.budget.finetune, seed=seed + index)
            aucs.append(split_scores(model, fold.val, task)[0])
            first = first or model
        assert first is not None
        flops = count_flops(first, self.data.input_shape) / self.flops
        return Member(statistics.mean(aucs), flops, model=first)

    def config(self, seed: int, trials: int, tag: str, **settings: Any) -> StudyConfig:
        return replace(
            self.session.config,
            teacher=str(self.teacher_file),
            seed=seed,
            trials=trials,
            storage=f"sqlite:///{self.workdir / f'{tag}-{seed}.db'}",
            study=f"{tag}-{seed}",
            cv=self.cv,
            kd=not self.cv,
            **settings,
        )


def sweep_ratios(cap: float) -> Callable[[int], float]:
    """The k-th ratio of a coarse-to-fine sweep of (0, cap]: cap, cap/2, 3cap/4, cap/4, ..."""

    def ratio(k: int) -> float:
        if k == 0:
            return cap
        fraction, base, n = 0.0, 0.5, k
        while n:
            fraction += base * (n & 1)
            n >>= 1
            base /= 2
        return cap * (1.0 - fraction)

    return ratio


def uniform_pruned(setting: Setting, ratio: float, seed: int) -> nn.Module:
    units = setting.session.unit_names
    plan = PruningPlan(dict.fromkeys(units, ratio), "l1", "structured")
    return recalibrated_prune(setting.teacher, plan, setting.data, setting.budget, seed=seed)


def tp_global_pruned(setting: Setting, ratio: float, seed: int) -> nn.Module:
    """What a Torch-Pruning user writes for global pruning (its README's example)."""
    torch.manual_seed(seed)
    model = copy.deepcopy(setting.teacher)
    example = setting.data.train.batch(slice(0, 2))
    ignored = [model.get_submodule(name) for name in setting.protected]
    pruner = tp.pruner.MetaPruner(
        model,
        example,
        importance=tp.importance.GroupMagnitudeImportance(p=2),
        pruning_ratio=ratio,
        global_pruning=True,
        ignored_layers=ignored,
    )
    pruner.step()
    return model


def run_sweep(
    setting: Setting,
    prune: Callable[[Setting, float, int], nn.Module],
    seed: int,
    budget_s: float,
) -> ArmRun:
    ratios = sweep_ratios(setting.session.config.max_ratio)
    start_cpu, start_wall = time.process_time(), time.perf_counter()
    members: list[Member] = []
    k = 0
    while time.process_time() - start_cpu < budget_s:
        try:
            members.append(setting.finetune(prune(setting, ratios(k), seed * 1000 + k), seed + k))
        except Exception as error:  # a ratio the method cannot reach (a collapsed layer)
            print(f"      ratio {ratios(k):.3f} failed: {type(error).__name__}: {error}")
        k += 1
    return ArmRun(members, time.process_time() - start_cpu, time.perf_counter() - start_wall)


def run_medslim(
    setting: Setting, seed: int, trials: int, tag: str, budget_s: float | None, **settings: Any
) -> ArmRun:
    """medslim's loop: `trials` trials (m), or one trial after another until `budget_s`.

    Counted: the trials (screening included) and what medslim measures for its own sake
    (the proxy curves, stored with their cost); not loading the data and the teacher,
    which the sweeps share without paying for them either."""
    with quiet_optuna():
        first = trials if budget_s is None else 1
        session = prepare(setting.config(seed, first, tag, **settings))
        cost = session.study.user_attrs.get(PROXY_CURVES_COST_ATTR, {"cpu_s": 0.0, "wall_s": 0.0})
        start_cpu = time.process_time() - cost["cpu_s"]
        start_wall = time.perf_counter() - cost["wall_s"]
        run_trials(session, progress=False)
        while budget_s is not None and time.process_time() - start_cpu < budget_s:
            session.config = session.config.with_overrides(trials=session.config.trials + 1)
            run_trials(session, progress=False)
    cpu, wall = time.process_time() - start_cpu, time.perf_counter() - start_wall
    ref = StudyRef(session.study, session.config.storage, session.storage)
    members = []
    for trial in session.study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        record = trial_record(trial)
        members.append(
            Member(
                record["val_auc"],
                record["flops_ratio"],
                model=partial(load_trial_model, ref, trial),
            )
        )
    return ArmRun(members, cpu, wall)


def val_front(members: list[Member]) -> list[int]:
    """Members no other beats on val AUC with no more FLOPs."""
    front = []
    for i, m in enumerate(members):
        dominated = any(
            (o.val_auc >= m.val_auc and o.flops_ratio <= m.flops_ratio)
            and (o.val_auc > m.val_auc or o.flops_ratio < m.flops_ratio)
            for o in members
        )
        if not dominated:
            front.append(i)
    return front


def model_of(member: Member) -> nn.Module:
    if isinstance(member.model, nn.Module):
        return member.model
    assert member.model is not None
    return member.model()


def score_front(setting: Setting, run: ArmRun, refine_epochs: int) -> None:
    """Test scores of the val front, and of the three picks after refining."""
    run.front = val_front(run.members)
    task = setting.data.task
    for index in run.front:
        member = run.members[index]
        member.test_scores = predict_scores(model_of(member), setting.data.test, task)
    for index in set(picks(run).values()):
        member = run.members[index]
        model = copy.deepcopy(model_of(member))
        recipe = Recipe(
            epochs=refine_epochs,
            batch_size=setting.budget.finetune.batch_size,
            lr=setting.budget.finetune.lr,
        )
        loss = setting.kd or kd_finetune_loss(setting.session)
        train(model, setting.data.train, task, recipe, seed=index, loss=loss)
        member.refined_scores = predict_scores(model, setting.data.test, task)
    for member in run.members:
        member.model = None  # free memory


def picks(run: ArmRun) -> dict[float, int]:
    """Per FLOPs level, the val-front member a user would pick: the best val AUC at or
    below it."""
    chosen = {}
    for level in LEVELS:
        under = [i for i in run.front if run.members[i].flops_ratio <= level]
        if under:
            chosen[level] = max(under, key=lambda i: run.members[i].val_auc)
    return chosen


def test_hv(setting: Setting, run: ArmRun, rows: np.ndarray | None, refined: bool) -> float:
    points = []
    for index in run.front:
        member = run.members[index]
        scores = (
            member.refined_scores
            if refined and member.refined_scores is not None
            else member.test_scores
        )
        assert scores is not None
        if rows is None:
            auc = auc_score(setting.y_test, scores, setting.data.task)
        else:
            auc = float(
                batched_auc(setting.y_test[rows][None], scores[rows][None], setting.data.task)[0]
            )
        points.append((auc, member.flops_ratio))
    return hypervolume(points)


def smallest_non_inferior(setting: Setting, run: ArmRun) -> float:
    """The fewest FLOPs of a val-front member whose paired test ΔAUC to the teacher has its
    lower 95% bound above -MARGIN (1.0: none)."""
    teacher = Scored(setting.teacher_test, batched_auc)
    for index in sorted(run.front, key=lambda i: run.members[i].flops_ratio):
        member = run.members[index]
        assert member.test_scores is not None
        delta = paired_interval(
            setting.y_test,
            Scored(member.test_scores, batched_auc),
            teacher,
            setting.data.task,
            setting.indices,
        )
        if delta.low > -MARGIN:
            return member.flops_ratio
    return 1.0


def summarise(setting: Setting, runs: dict[str, list[ArmRun]], seeds: list[int]) -> dict:
    """Means, and intervals from resampling seeds and test images together."""
    rng = np.random.default_rng(0)
    arms = list(runs)
    table: dict[str, Any] = {}
    base_hv = {a: [test_hv(setting, r, None, False) for r in runs[a]] for a in arms}
    refined_hv = {a: [test_hv(setting, r, None, True) for r in runs[a]] for a in arms}
    boot: dict[str, list[float]] = {a: [] for a in arms}
    for b in range(RESAMPLES):
        chosen = rng.integers(0, len(seeds), len(seeds))
        rows = setting.indices[b]
        for a in arms:
            boot[a].append(
                statistics.mean(test_hv(setting, runs[a][s], rows, False) for s in chosen)
            )
    for a in arms:
        entry: dict[str, Any] = {
            "test_hv": base_hv[a],
            "val_hv": [
                hypervolume([(r.members[i].val_auc, r.members[i].flops_ratio) for i in r.front])
                for r in runs[a]
            ],
            "refined_test_hv": refined_hv[a],
            "trials": [len(r.members) for r in runs[a]],
            "cpu_s": [r.cpu_s for r in runs[a]],
            "wall_s": [r.wall_s for r in runs[a]],
            "smallest_non_inferior": [smallest_non_inferior(setting, r) for r in runs[a]],
        }
        for level in LEVELS:
            for refined in (False, True):
                values = []
                for r in runs[a]:
                    index = picks(r).get(level)
                    if index is None:
                        values.append(float("nan"))
                        continue
                    m = r.members[index]
                    scores = m.refined_scores if refined else m.test_scores
                    values.append(auc_score(setting.y_test, scores, setting.data.task))
                entry[f"{'refined_' if refined else ''}test_auc_at_{level:.3f}"] = values
        for ref in ("u", "g"):
            if ref in arms and a != ref:
                ratio = np.array(boot[a]) / np.array(boot[ref])
                point = statistics.mean(base_hv[a]) / statistics.mean(base_hv[ref])
                low, high = np.nanpercentile(ratio, [2.5, 97.5])
                entry[f"hv_ratio_to_{ref}"] = [point, float(low), float(high)]
        table[a] = entry
    return table


def proxy_rho(setting: Setting, seed: int, count: int) -> dict[str, Any]:
    """All of a trial's candidates fine-tuned, at three targets: how well the proxy ranked
    them against their fine-tuned val (and test) AUC."""
    with quiet_optuna():
        session = prepare(setting.config(seed, 1, "proxy"))
    allocations = session.allocations
    assert allocations is not None
    basis = allocations.basis
    rng = np.random.default_rng(seed)
    result: dict[str, Any] = {"per_target": []}
    for level in LEVELS:
        found = candidates(basis, "screened", level * basis.flops.dense, count, rng)
        found += candidates(basis, "free", level * basis.flops.dense, count // 2, rng)
        rows = []
        for index, candidate in enumerate(found):
            plan = PruningPlan(candidate.ratios, "l1", "structured")
            model = recalibrated_prune(
                setting.teacher, plan, setting.data, setting.budget, seed=seed
            )
            proxy = fidelity(model, allocations.where)
            train(
                model,
                setting.data.train,
                setting.data.task,
                setting.budget.finetune,
                seed=seed + index,
                loss=setting.kd or kd_finetune_loss(setting.session),
            )
            val, _ = split_scores(model, setting.data.val, setting.data.task)
            test, _ = split_scores(model, setting.data.test, setting.data.task)
            rows.append((proxy, val, test))
        proxies, vals, tests = zip(*rows, strict=True)
        result["per_target"].append(
            {
                "level": level,
                "rho_val": float(spearmanr(proxies, vals)[0]),
                "rho_test": float(spearmanr(proxies, tests)[0]),
                "candidates": rows,
            }
        )
    result["rho_val"] = statistics.mean(t["rho_val"] for t in result["per_target"])
    result["rho_test"] = statistics.mean(t["rho_test"] for t in result["per_target"])
    return result


def benchmark(
    model: str | None,
    dataset: str,
    args: argparse.Namespace,
    save: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    """Every arm on every seed; `save` gets the report so far after each seed."""
    workdir = Path(tempfile.mkdtemp(prefix="medslim-sq-", dir=args.cache))
    path = args.data_dir / f"{dataset}.npz"
    base = StudyConfig(
        dataset=str(path), model=model, storage=f"sqlite:///{args.cache / 'teachers.db'}"
    )
    with quiet_optuna():
        session = prepare(base)
    teacher_file = workdir / "teacher.pt"
    torch.save(session.teacher.state_dict(), teacher_file)
    cv = args.cv if dataset in args.cv_datasets else 0
    setting = Setting(session, teacher_file, cv, workdir)
    print(
        f"  teacher {session.config.model}: val AUC {session.teacher_scores.val_auc:.4f}, "
        f"test AUC {session.teacher_scores.test_auc:.4f}; cv {cv or 'off'}",
        flush=True,
    )
    runs: dict[str, list[ArmRun]] = {a: [] for a in args.arms if a in ARM_NAMES}
    if cv and runs.pop("b", None) is not None:
        print("  (b) skipped: --cv scores pruning trials only", flush=True)
    order = ["m", *[a for a in runs if a != "m"]]
    report: dict[str, Any] = {
        "model": session.config.model,
        "dataset": dataset,
        "cv": cv,
        "teacher": vars(session.teacher_scores),
        "trials_m": args.trials,
        "threads": torch.get_num_threads(),
    }
    if args.proxy_candidates:
        report["proxy"] = proxy_rho(setting, args.seeds[0], args.proxy_candidates)
        print(render_proxy(report["proxy"]), flush=True)
    for done, seed in enumerate(args.seeds, start=1):
        budget = None
        for arm in order:
            if arm not in runs:
                continue
            if arm == "m":
                run = run_medslim(setting, seed, args.trials, "m", None)
                budget = run.cpu_s
            elif arm == "u":
                run = run_sweep(setting, uniform_pruned, seed, budget)
            elif arm == "g":
                run = run_sweep(setting, tp_global_pruned, seed, budget)
            else:
                run = run_medslim(setting, seed, args.trials, arm, budget, **ARM_SETTINGS[arm])
            score_front(setting, run, args.refine_epochs)
            runs[arm].append(run)
            print(
                f"    seed {seed} {ARM_NAMES[arm]}: {len(run.members)} trials, "
                f"{run.cpu_s:.0f} CPU s, {run.wall_s:.0f} wall s, test HV "
                f"{test_hv(setting, run, None, False):.4f}",
                flush=True,
            )
        report.update(seeds=args.seeds[:done], arms=summarise(setting, runs, args.seeds[:done]))
        save(report)
    return report


def combine(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Reports of one model and dataset from several runs (other seeds, other machines) as
    one: each arm's per-seed figures joined, for the arms every run has, and the ratios'
    intervals from resampling seeds alone (the runs' test-image predictions are not kept)."""
    first = reports[0]
    if any((r["model"], r["dataset"]) != (first["model"], first["dataset"]) for r in reports):
        raise SystemExit("--combine takes reports of one model and dataset")
    arms = [a for a in first["arms"] if all(a in r["arms"] for r in reports)]
    joined = {
        a: {key: [v for r in reports for v in r["arms"][a][key]] for key in first["arms"][a]}
        for a in arms
    }
    seeds = [s for r in reports for s in r["seeds"]]
    rng = np.random.default_rng(0)
    draws = rng.integers(0, len(seeds), (RESAMPLES, len(seeds)))
    for a in arms:
        hv = np.array(joined[a]["test_hv"])
        for ref in ("u", "g"):
            joined[a].pop(f"hv_ratio_to_{ref}", None)
            if ref in arms and a != ref:
                base = np.array(joined[ref]["test_hv"])
                ratio = hv[draws].mean(axis=1) / base[draws].mean(axis=1)
                low, high = np.percentile(ratio, [2.5, 97.5])
                joined[a][f"hv_ratio_to_{ref}"] = [hv.mean() / base.mean(), low, high]
    return {**first, "seeds": seeds, "arms": joined, "combined_from": len(reports)}


def render(report: dict[str, Any]) -> str:
    def mean(values: list[float]) -> str:
        finite = [v for v in values if not math.isnan(v)]
        if not finite:
            return "-"
        spread = statistics.stdev(finite) if len(finite) > 1 else 0.0
        return f"{statistics.mean(finite):.4f}±{spread:.4f}"

    lines = [
        f"\n{report['dataset']} / {report['model']}: teacher val AUC "
        f"{report['teacher']['val_auc']:.4f} test AUC {report['teacher']['test_auc']:.4f}; "
        f"cv {report['cv'] or 'off'}; m runs {report['trials_m']} trials; seeds {report['seeds']}",
        f"{'arm':<32} {'trials':>6} {'CPU s':>6} {'val HV':>15} {'test HV':>15} "
        f"{'÷ (u) [95% CI]':>24} {'÷ (g) [95% CI]':>24} {'min NI FLOPs':>15} "
        + " ".join(f"{'AUC@1/' + str(round(1 / lv)):>15}" for lv in LEVELS),
    ]
    for arm, entry in report["arms"].items():
        ratio = {}
        for ref in ("u", "g"):
            r = entry.get(f"hv_ratio_to_{ref}")
            ratio[ref] = f"{r[0]:.3f} [{r[1]:.3f}, {r[2]:.3f}]" if r else "-"
        lines.append(
            f"{ARM_NAMES[arm]:<32} {statistics.mean(entry['trials']):>6.1f} "
            f"{statistics.mean(entry['cpu_s']):>6.0f} {mean(entry['val_hv']):>15} "
            f"{mean(entry['test_hv']):>15} {ratio['u']:>24} {ratio['g']:>24} "
            f"{mean(entry['smallest_non_inferior']):>15} "
            + " ".join(f"{mean(entry[f'test_auc_at_{lv:.3f}']):>15}" for lv in LEVELS)
        )
    lines.append("after refining the three picks:")
    for arm, entry in report["arms"].items():
        lines.append(
            f"{ARM_NAMES[arm]:<32} test HV {mean(entry['refined_test_hv']):>15} "
            + " ".join(f"{mean(entry[f'refined_test_auc_at_{lv:.3f}']):>15}" for lv in LEVELS)
        )
    if "proxy" in report:
        lines.append(render_proxy(report["proxy"]))
    return "\n".join(lines)


def render_proxy(proxy: dict[str, Any]) -> str:
    per = ", ".join(f"1/{round(1 / t['level'])}: {t['rho_val']:.2f}" for t in proxy["per_target"])
    return (
        f"proxy Spearman ρ vs fine-tuned val AUC {proxy['rho_val']:.3f} ({per}); "
        f"vs test AUC {proxy['rho_test']:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet8"])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--trials", type=int, default=20, help="trials of the (m) arm")
    parser.add_argument("--arms", default=ARMS)
    parser.add_argument("--cv", type=int, default=5)
    parser.add_argument("--cv-datasets", nargs="*", default=["breastmnist"])
    parser.add_argument("--refine-epochs", type=int, default=3)
    parser.add_argument(
        "--proxy-candidates",
        type=int,
        default=8,
        help="candidates per target in the proxy check (0: skip it)",
    )
    parser.add_argument("--data-dir", type=Path, default=SHARED_DATA)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=Path("search_quality.json"))
    parser.add_argument(
        "--combine",
        nargs="+",
        type=Path,
        metavar="JSON",
        help="print one table from these --out files of one model and dataset (seed intervals)",
    )
    add_cache_argument(parser)
    args = parser.parse_args()
    if args.combine:
        combined = combine([r for f in args.combine for r in json.loads(f.read_text())])
        print(render(combined))
        return
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    show_progress()
    reports = []
    for model in args.models:
        for dataset in args.datasets:
            if not (args.data_dir / f"{dataset}.npz").is_file():
                print(f"{dataset}: skipped, {args.data_dir / dataset}.npz is absent")
                continue
            print(f"{dataset} / {model}:", flush=True)

            def save(report: dict[str, Any]) -> None:
                args.out.write_text(json.dumps([*reports, report], indent=1, default=float))

            report = benchmark(None if model == "default" else model, dataset, args, save)
            reports.append(report)
            print(render(report), flush=True)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
