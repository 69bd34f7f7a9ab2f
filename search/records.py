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


def record_result(trial: optuna.Trial, result: dict[str, Any]) -> None:
    trial.set_user_attr(RESULT_ATTR, result)


def trial_record(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """The trial's user attrs with its result (method, plan, val_auc, flops, ...) at the top
    level."""
    attrs = trial.user_attrs
    return {**attrs, **attrs.get(RESULT_ATTR, {})}
