"""The Pareto front of a study, as plain data (`front_table` draws it as a table)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import optuna

from medslim.search.config import DEFAULT_OBJECTIVES
from medslim.search.methods import get_method, precision_of
from medslim.search.records import trial_record
from medslim.search.refined import refined_records
from medslim.search.study_format import (
    CONFIG_ATTR,
    DEPLOYMENT_ATTR,
    TEACHER_ATTR,
    UNITS_ATTR,
    study_attrs,
)

EXTRA = (
    *("sparse_flops", "nonzero_params", "latency_ms", "latency_ratio", "latency_spread"),
    *("latency_batch_ms", "size_bytes", "size_ratio", "fp32_val_auc", "fp32_ops"),
)
"""Record keys a member carries besides its scores, where its trial has them."""


@dataclass(frozen=True)
class FrontMember:
    trial: int
    val_auc: float
    val_acc: float
    flops: int
    flops_ratio: float
    params: int
    method: str
    baseline: bool
    choices: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    kind: str = "pruned"
    """`pruned`, `uniform` (a uniform-ratio baseline) or `distilled`."""
    description: str = ""
    """What the member is, in one line (ratios with group names, or the student spec)."""
    summary: str = ""
    """The same in fewer characters (ratios without names)."""
    refined: int = 0
    """Epochs of `medslim refine` behind the scores shown (0: the trial's own model)."""
    precision: str = "fp32"
    """What the member deploys as (`int8`: its quantized ONNX file, scored as that)."""

    def as_json(self) -> dict[str, Any]:
        data = {
            "trial": self.trial,
            "val_auc": self.val_auc,
            "val_acc": self.val_acc,
            "flops": self.flops,
            "flops_ratio": self.flops_ratio,
            "params": self.params,
            "method": self.method,
            "baseline": self.baseline,
            "kind": self.kind,
            "description": self.description,
            "choices": self.choices,
            "refined_epochs": self.refined,
            "precision": self.precision,
        }
        data.update(self.extra)
        return data


@dataclass(frozen=True)
class Front:
    study: str
    objectives: list[str]
    teacher: dict[str, Any]
    members: list[FrontMember]
    finished: int
    failed: int
    units: list[str] = field(default_factory=list)
    """Prunable groups in network order."""
    measured: dict[str, Any] = field(default_factory=dict)
    """The study's `deployment` attr: the teacher's ONNX size, runtime, threads, ..."""

    def smallest_within(self, auc_drop: float = 0.01) -> FrontMember | None:
        """The member with the fewest FLOPs whose val AUC is at most `auc_drop` below the
        teacher's (None when none is, or the teacher's score is unknown)."""
        floor = float(self.teacher.get("val_auc", float("inf"))) - auc_drop
        close = [m for m in self.members if m.val_auc >= floor]
        return min(close, key=lambda m: m.flops) if close else None

    def as_json(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "objectives": self.objectives,
            "selected_on": "validation split",
            "finished_trials": self.finished,
            "failed_trials": self.failed,
            "teacher": self.teacher,
            **({"deployment": self.measured} if self.measured else {}),
            "front": [m.as_json() for m in self.members],
        }


def compute_front(study: optuna.Study) -> Front:
    """Front members sorted by FLOPs; chosen on validation scores only (and constraints)."""
    trials = study.get_trials(deepcopy=False)
    states = [t.state for t in trials]
    attrs = study_attrs(study)
    config = attrs.get(CONFIG_ATTR, {})
    units = list(attrs.get(UNITS_ATTR, []))
    best = sorted(study.best_trials, key=lambda t: t.number)
    refined = refined_records(study)
    members = [
        with_refined(m, refined[m.trial]) if m.trial in refined else m
        for m in _distinct(best, config, units)
    ]
    members.sort(key=lambda m: (m.flops, -m.val_auc))
    return Front(
        study=study.study_name,
        objectives=list(config.get("objectives", DEFAULT_OBJECTIVES)),
        teacher=dict(attrs.get(TEACHER_ATTR, {})),
        members=members,
        finished=states.count(optuna.trial.TrialState.COMPLETE),
        failed=states.count(optuna.trial.TrialState.FAIL),
        units=units,
        measured=dict(attrs.get(DEPLOYMENT_ATTR, {})),
    )


def _distinct(
    trials: list[optuna.trial.FrozenTrial], config: dict[str, Any], units: list[str]
) -> list[FrontMember]:
    """One member per distinct result: later trials that landed on the same pruned model
    (equal objective values) add nothing to the front."""
    seen: set[tuple[float, ...]] = set()
    members = []
    for trial in trials:
        key = tuple(trial.values)
        if key not in seen:
            seen.add(key)
            members.append(member_of(trial, config, units))
    return members


def member_of(
    trial: optuna.trial.FrozenTrial, config: dict[str, Any], units: list[str]
) -> FrontMember:
    """A finished trial as plain data; a plan's study-wide settings (criterion, pruning
    kind) come from the study's config, its ratios in network order."""
    attrs = trial_record(trial)
    method = get_method(str(attrs["method"]))
    plan = method.choices(attrs, config, units)
    return FrontMember(
        trial=trial.number,
        val_auc=float(attrs["val_auc"]),
        val_acc=float(attrs["val_acc"]),
        flops=int(attrs["flops"]),
        flops_ratio=float(attrs["flops_ratio"]),
        params=int(attrs["params"]),
        method=method.name,
        baseline=attrs.get("baseline") == "uniform",
        choices=plan,
        extra={k: attrs[k] for k in EXTRA if k in attrs},
        kind=method.kind(attrs),
        description=method.describe(plan, groups=True),
        summary=method.describe(plan),
        precision=precision_of(attrs).name,
    )


def with_refined(member: FrontMember, record: dict[str, Any]) -> FrontMember:
    """The member as refined: its refined model's val scores, said in its description (the
    front itself stays the one its trials' own scores chose)."""
    said = f" · refined {record['epochs']} ep"
    return replace(
        member,
        val_auc=float(record["val_auc"]),
        val_acc=float(record["val_acc"]),
        refined=int(record["epochs"]),
        description=member.description + said,
        summary=member.summary + said,
    )
