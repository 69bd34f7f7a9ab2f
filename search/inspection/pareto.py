"""The Pareto front of a study, as plain data first, then as a table or JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import optuna

from medslim.search.config import OBJECTIVES
from medslim.search.records import trial_record
from medslim.spaces.students import describe_student


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
            "choices": self.choices,
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
            "front": [m.as_json() for m in self.members],
        }


def compute_front(study: optuna.Study) -> Front:
    """Front members sorted by FLOPs; chosen on validation scores only (and constraints)."""
    trials = study.get_trials(deepcopy=False)
    states = [t.state for t in trials]
    members = _distinct(sorted(study.best_trials, key=lambda t: t.number))
    members.sort(key=lambda m: (m.flops, -m.val_auc))
    config = study.user_attrs.get("config", {})
    return Front(
        study=study.study_name,
        objectives=list(config.get("objectives", OBJECTIVES)),
        teacher=dict(study.user_attrs.get("teacher", {})),
        members=members,
        finished=states.count(optuna.trial.TrialState.COMPLETE),
        failed=states.count(optuna.trial.TrialState.FAIL),
    )


def _distinct(trials: list[optuna.trial.FrozenTrial]) -> list[FrontMember]:
    """One member per distinct result: later trials that landed on the same pruned model
    (equal objective values) add nothing to the front."""
    seen: set[tuple[float, ...]] = set()
    members = []
    for trial in trials:
        key = tuple(trial.values)
        if key not in seen:
            seen.add(key)
            members.append(_member(trial))
    return members


def _member(trial: optuna.trial.FrozenTrial) -> FrontMember:
    attrs = trial_record(trial)
    plan = attrs.get("plan") or {
        "student": attrs.get("student_spec", {}),
        "distill": attrs.get("distill", {}),
    }
    return FrontMember(
        trial=trial.number,
        val_auc=float(attrs["val_auc"]),
        val_acc=float(attrs["val_acc"]),
        flops=int(attrs["flops"]),
        flops_ratio=float(attrs["flops_ratio"]),
        params=int(attrs["params"]),
        method=str(attrs.get("method", "prune")),
        baseline=attrs.get("baseline") == "uniform",
        choices=plan,
        extra={
            k: attrs[k] for k in ("sparse_flops", "nonzero_params", "latency_ms") if k in attrs
        },
    )


def short_choices(choices: dict[str, Any]) -> str:
    """`g=0.42 l1 [.30 .51 …]`: global ratio, criterion, per-unit ratios in network order;
    for a student `resnet 8-16-32 ×1-1-1 k3 T=4.0 α=0.50`: its spec and distillation knobs."""
    if "student" in choices:
        knobs = choices["distill"]
        feature = f" feat={knobs['feature_weight']:g}" if knobs.get("feature_weight") else ""
        return (
            f"{describe_student(choices['student'])} T={knobs['temperature']:.1f} "
            f"α={knobs['alpha']:.2f}{feature}"
        )
    ratios = choices.get("ratios", {})
    profile = " ".join(f"{r:.2f}".lstrip("0") or "0" for r in ratios.values())
    return f"g={choices.get('global_ratio', 0):.2f} {choices.get('criterion', '')} [{profile}]"


def format_front(front: Front) -> str:
    teacher = front.teacher
    lines = [
        f"study {front.study}: {front.finished} finished trials"
        + (f", {front.failed} failed" if front.failed else "")
        + "; front chosen on the validation split",
        f"{'trial':>6} {'val AUC':>8} {'val ACC':>8} {'FLOPs':>12} {'×teacher':>8} "
        f"{'params':>9}  method  choices",
    ]
    if teacher:
        lines.append(
            f"{'teacher':>6} {teacher['val_auc']:>8.4f} {teacher['val_acc']:>8.4f} "
            f"{int(teacher['flops']):>12,} {1.0:>8.3f} {int(teacher['params']):>9,}  (reference)"
        )
    for m in front.members:
        tag = " (uniform baseline)" if m.baseline else ""
        lines.append(
            f"{m.trial:>6} {m.val_auc:>8.4f} {m.val_acc:>8.4f} {m.flops:>12,} "
            f"{m.flops_ratio:>8.3f} {m.params:>9,}  {m.method:<7} {short_choices(m.choices)}{tag}"
        )
    if not front.members:
        lines.append("(no finished trial yet)")
    return "\n".join(lines)
