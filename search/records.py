"""A finished trial's result (method, scores, real per-group ratios) as scalar user attrs,
and the reader that gives every trial, old or new, the same record.

optuna-dashboard shows each user attr as a column of its trial table, sortable when it is
a number, so the result is stored one scalar a key (`val_auc`, `flops_ratio`, `params`,
`latency_ms`, `ratio.<group>`, a student's `student.<field>`, ...), rounded to the digits
that mean something.
Trials of older studies keep everything in one `result` dict; `trial_record` reads both.
Each `set_user_attr` is one storage transaction (about 1.3 ms on a SQLite file here;
Optuna 5.1 has no public call that writes several attributes of a running trial at once,
`benchmarks/overhead.py` measures the per-trial cost against a hand-written loop), so values
that follow from others are not stored per trial: sparse FLOPs equal to dense ones
(structured pruning), the plan's study-wide settings, and the method (the trial's `method`
parameter under `--method both`, else a student's `student.*` fields say it).
"""

from __future__ import annotations

import re
from typing import Any

import optuna

from medslim.search.methods import DISTILL, METHODS, PRUNE
from medslim.search.methods.base import METHOD_PARAM
from medslim.search.methods.choice import KEPT_PARAM
from medslim.spaces.sparsity import TARGET_PARAM

METHOD = "method"
"""The trial's method (`prune`, `distill`, ...): in every record; stored only by older
studies and for methods `trial_record` cannot tell (`TOLD_METHODS`)."""
RESULT_ATTR = "result"
"""Older trials: the whole result in one dict."""
RATIO_PREFIX = "ratio."
"""`ratio.<group>`: the pruning ratio a group really got (global ratio + offset, clipped)."""
RANK_PREFIX = "rank."
"""`rank.<layer>`: the rank ratio a layer really got (the share of its FLOPs factorization
cut; 0: left whole)."""
GLOBAL_PARAM = "sparsity.global"
DIGITS = {"val_auc": 4, "val_acc": 4, "fp32_val_auc": 4, "fp32_val_acc": 4}
SIGNIFICANT = {
    "flops_ratio": 4,
    "size_ratio": 4,
    **dict.fromkeys(("latency_ms", "latency_ratio", "latency_batch_ms", "latency_batch_ratio"), 3),
    **dict.fromkeys(("latency_spread", "teacher_latency_ms", "teacher_latency_spread"), 3),
}
DENSE = {"sparse_flops": "flops", "nonzero_params": "params"}
"""Stored only where they differ from their dense counterpart (unstructured pruning)."""
NESTED = {"student_spec": "student.", "distill": "distill."}
"""A student's spec and distillation knobs, stored one scalar a field (`student.widths` =
`8-16-32`, `distill.alpha` = 0.5): a dashboard row stays one line high. Studies from before
stored each as one JSON dict; `trial_record` reads both."""
_INTS = re.compile(r"\d+(-\d+)*")
TOLD_METHODS = frozenset((PRUNE.name, DISTILL.name))
"""Methods `trial_record` tells from a trial's parameters and fields, so not stored (a
low-rank trial that factorized no layer would look pruned: its method is stored)."""


def record_result(trial: optuna.Trial, result: dict[str, Any]) -> None:
    """Store a trial's result (scores, a pruned trial's `plan`, a student's spec) as scalar
    attrs (its `method` is told by `trial_record`)."""
    for key, value in stored_attrs(result).items():
        trial.set_user_attr(key, value)


def stored_attrs(result: dict[str, Any]) -> dict[str, Any]:
    """The attrs `record_result` writes: a plan becomes `ratio.<group>`, `rank.<layer>` and
    its `allocation` (its global ratio or target and criterion are trial parameters or study
    settings already)."""
    attrs: dict[str, Any] = {}
    for key, value in result.items():
        if key == METHOD and value in TOLD_METHODS:
            continue  # `trial_record` tells it from the parameters and the stored fields
        if key in NESTED and isinstance(value, dict):
            attrs.update({NESTED[key] + k: _scalar(v) for k, v in value.items()})
        elif key == "plan":
            for prefix, name in ((RATIO_PREFIX, "ratios"), (RANK_PREFIX, "ranks")):
                attrs.update({prefix + g: round(r, 4) for g, r in value.get(name, {}).items()})
            if value.get("allocation"):
                attrs["allocation"] = value["allocation"]
        elif key in DENSE and value == result.get(DENSE[key]):
            continue
        elif key in DIGITS:
            attrs[key] = round(float(value), DIGITS[key])
        elif key in SIGNIFICANT:
            attrs[key] = float(f"{float(value):.{SIGNIFICANT[key]}g}")
        else:
            attrs[key] = value
    return attrs


def trial_record(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """The trial's user attrs with its result (method, plan, val_auc, flops, ...) at the top
    level, the same for trials stored one scalar a key and for older `result` dicts (a
    trial that stored no method pruned: it ran before students existed)."""
    attrs = trial.user_attrs
    if RESULT_ATTR in attrs:
        return {METHOD: PRUNE.name, **attrs, **attrs[RESULT_ATTR]}
    record = dict(attrs)
    for key, prefix in NESTED.items():
        fields = {k[len(prefix) :]: _unscalar(v) for k, v in attrs.items() if k.startswith(prefix)}
        if fields and key not in record:
            record[key] = fields
    ratios, ranks = (_prefixed(attrs, prefix) for prefix in (RATIO_PREFIX, RANK_PREFIX))
    if METHOD not in record:
        record[METHOD] = _told_method(trial, record)
    if ratios or ranks:
        plan: dict[str, Any] = {}
        if ratios:
            plan = {
                "method": PRUNE.name,
                "criterion": trial.params.get("criterion"),
                "global_ratio": trial.params.get(GLOBAL_PARAM),
                "ratios": ratios,
            }
        if ranks:
            plan["ranks"] = ranks
        if "allocation" in attrs:
            plan.update(allocation=attrs["allocation"], target=trial.params.get(TARGET_PARAM))
        record["plan"] = plan
    for sparse, dense in DENSE.items():
        if dense in record:
            record.setdefault(sparse, record[dense])
    return record


def _told_method(trial: optuna.trial.FrozenTrial, record: dict[str, Any]) -> str:
    """The method of a trial that did not store it (`TOLD_METHODS`): the one it drew where
    its study runs several, else a student's fields say distill, and anything else pruned
    (a trial from before students existed, too)."""
    drawn = trial.params.get(KEPT_PARAM, trial.params.get(METHOD_PARAM))
    if drawn is not None:
        return str(drawn)
    return DISTILL.name if "student_spec" in record else PRUNE.name


def _prefixed(attrs: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix) :]: v for k, v in attrs.items() if k.startswith(prefix)}


def _scalar(value: Any) -> Any:
    """A list of numbers as `8-16-32`; anything else as it is."""
    return "-".join(str(v) for v in value) if isinstance(value, list | tuple) else value


def _unscalar(value: Any) -> Any:
    """`8-16-32` (or `64`, a one-element list) back as a list of ints."""
    if isinstance(value, str) and _INTS.fullmatch(value):
        return [int(v) for v in value.split("-")]
    return value


def flat_record(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """One trial as flat columns (for a DataFrame): its number and state, the scalar parts of
    its record, and the nested plan or student spec spread into `ratio.<group>` columns and
    the method's own (`student.<field>`, `distill.<knob>`, ...)."""
    record = trial_record(trial)
    row: dict[str, Any] = {"number": trial.number, "state": trial.state.name}
    row.update({k: v for k, v in record.items() if not isinstance(v, dict | list)})
    plan = record.get("plan", {})
    nested = ("ratios", "ranks", "method")  # columns of their own, or the trial's already
    row.update({k: v for k, v in plan.items() if k not in nested and v is not None})
    row.update({f"ratio.{group}": r for group, r in plan.get("ratios", {}).items()})
    method = METHODS.find(str(record[METHOD]))
    if method is not None:
        row.update(method.columns(record))
    return row
