"""A finished trial's result (method, choices, scores) lives in one user attr; readers see
it merged with the other attrs.

Each `set_user_attr` is its own storage transaction. Writing the result as one dict instead
of a key each cuts a trial's bookkeeping from 12 commits to 2 (`benchmarks/overhead.py`
measures the per-trial cost against a hand-written loop).
"""

from __future__ import annotations

from typing import Any

import optuna

RESULT_ATTR = "result"
TARGET_ATTR = "target_trials"
"""Study attr: the finished trials the last `run` asked for, so joining workers know it."""


def record_result(trial: optuna.Trial, result: dict[str, Any]) -> None:
    trial.set_user_attr(RESULT_ATTR, result)


def trial_record(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """The trial's user attrs with its result (method, plan, val_auc, flops, ...) at the top
    level."""
    attrs = trial.user_attrs
    return {**attrs, **attrs.get(RESULT_ATTR, {})}


def flat_record(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """One trial as flat columns (for a DataFrame): its number and state, the scalar parts of
    its record, and the nested plan or student spec spread into `ratio.<group>`,
    `student.<field>` and `distill.<knob>` columns."""
    record = trial_record(trial)
    row: dict[str, Any] = {"number": trial.number, "state": trial.state.name}
    row.update({k: v for k, v in record.items() if not isinstance(v, dict | list)})
    plan = record.get("plan", {})
    row.update({k: v for k, v in plan.items() if k != "ratios"})
    row.update({f"ratio.{group}": r for group, r in plan.get("ratios", {}).items()})
    for prefix in ("student", "distill"):
        nested = record.get("student_spec" if prefix == "student" else prefix, {})
        row.update({f"{prefix}.{k}": _cell(v) for k, v in nested.items()})
    return row


def _cell(value: Any) -> Any:
    """Lists (widths, blocks) as `8-16-32`, so each cell holds one plain value."""
    return "-".join(map(str, value)) if isinstance(value, list) else value
