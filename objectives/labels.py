"""Labels of every source, checked the same way: the task inferred (or given with --task),
then labels that index the model's outputs and classes that every split has.

A class missing from a split makes its AUC undefined (and a model cannot learn a class it
never saw), so it is refused before any work, naming the class, instead of failing later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from medslim.errors import DataError
from medslim.kinds import BINARY, MULTI_CLASS, MULTI_LABEL, Task

_SHOWN = 3  # missing classes named in one message


def infer_task(
    source: str, labels: Mapping[str, np.ndarray], given: Task | None
) -> tuple[Task, int]:
    """(task, outputs): several label columns are multi-label; one column is binary with 2
    classes, multi-class with more; `given` overrides where the labels allow it."""
    train = labels["train"]
    if train.ndim == 2:
        if given not in (None, MULTI_LABEL):
            raise DataError(
                f"{source}: {train.shape[1]} label columns make a multi-label task, not "
                f"{given}; give one label column for {given}"
            )
        return MULTI_LABEL, train.shape[1]
    if given == MULTI_LABEL:
        raise DataError(
            f"{source}: one label column cannot be multi-label; give one 0/1 column per label"
        )
    n_classes = max(int(split.max()) for split in labels.values()) + 1
    if n_classes < 2:
        raise DataError(
            f"{source}: every label is {n_classes - 1} or less; a classifier needs labels "
            "0..K-1 with at least K=2 classes"
        )
    if given == BINARY and n_classes != 2:
        raise DataError(
            f"{source}: labels 0..{n_classes - 1} are {n_classes} classes, not binary-class; "
            "drop --task or fix the labels"
        )
    return given or (BINARY if n_classes == 2 else MULTI_CLASS), n_classes


def check_label_values(
    source: str, values: np.ndarray, files: Sequence[object] = (), names: Sequence[str] = ()
) -> None:
    """One label column names classes 0..K-1, each with images: a stray value (a 7 among
    0s and 1s) is refused naming the value and its first files, before the data is split
    (where it would surface as a stratification error)."""
    if values.ndim != 1 or names or len(values) == 0:  # class names are numbered densely
        return
    present = sorted(int(v) for v in np.unique(values))
    if present[0] < 0:
        raise DataError(f"{source}: label {present[0]} is negative; labels are 0..K-1")
    missing = sorted(set(range(present[-1] + 1)) - set(present))
    if not missing:
        return
    stray = [v for v in present if v > missing[0]]
    rows = np.flatnonzero(np.isin(values, stray))
    where = [str(files[r]) if r < len(files) else f"row {r}" for r in rows[:_SHOWN]]
    more = f" and {len(rows) - _SHOWN} more" if len(rows) > _SHOWN else ""
    raise DataError(
        f"{source}: labels are {_listing(present)}, so class(es) {_listing(missing)} have "
        f"no image; labels must be 0..K-1: {len(rows)} image(s) labelled "
        f"{_listing(stray)} ({', '.join(where)}{more}); fix or remove them"
    )


def _listing(values: Sequence[int]) -> str:
    shown = ", ".join(str(v) for v in values[:6])
    return shown + (f", ... ({len(values)} values)" if len(values) > 6 else "")


def check_labels(
    source: str,
    labels: Mapping[str, np.ndarray],
    task: Task,
    n_outputs: int,
    class_names: Sequence[str] = (),
) -> None:
    """Labels 0..n−1 per class (0/1 per column for multi-label), and every class, or both
    values of every label column, in every split."""
    multi = task == MULTI_LABEL
    highest = 1 if multi else n_outputs - 1
    for split, values in labels.items():
        want = (n_outputs,) if multi else ()
        if values.shape[1:] != want:
            raise DataError(
                f"{source}: {split}_labels has shape {values.shape}; "
                f"a {task} dataset needs {('N',) + want}"
            )
        low, high = int(values.min()), int(values.max())
        if low < 0 or high > highest:
            raise DataError(
                f"{source}: {split}_labels has values {low}..{high}, outside 0..{highest} "
                f"({task}, {n_outputs} outputs); fix the labels"
            )
    for split, values in labels.items():
        if multi:
            constant = [c for c in range(n_outputs) if values[:, c].min() == values[:, c].max()]
            _refuse_missing(source, split, constant, class_names, "label column", "only one value")
        else:
            counts = np.bincount(values.astype(np.int64), minlength=n_outputs)
            missing = [int(c) for c in np.flatnonzero(counts == 0)]
            _refuse_missing(source, split, missing, class_names, "class", "no image")


def _refuse_missing(
    source: str,
    split: str,
    missing: list[int],
    names: Sequence[str],
    what: str,
    problem: str,
) -> None:
    if not missing:
        return
    shown = ", ".join(
        f"{c} ({names[c]!r})" if c < len(names) else str(c) for c in missing[:_SHOWN]
    )
    more = f" and {len(missing) - _SHOWN} more" if len(missing) > _SHOWN else ""
    fix = (
        "labels must be 0..K-1 with every class in every split"
        if what == "class"
        else "every label needs positives and negatives in every split"
    )
    raise DataError(f"{source}: {what} {shown}{more} has {problem} in the {split} split; {fix}")
