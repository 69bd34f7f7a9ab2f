"""Which class is "positive": sensitivity, specificity, operating points and calibration of
a binary task are all about one class, and a reader must know which.

In BreastMNIST label 1 is "normal, benign", so a sensitivity of 0.95 for label 1 says how
many benign cases were found, not malignant ones. Studies store the dataset's class names
(`dataset.class_names`); older studies do not, and their classes are called `class 0`,
`class 1`. The positive class is label 1 unless the user picks another by name or label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medslim.errors import UsageError
from medslim.kinds import BINARY

DEFAULT_POSITIVE = 1


@dataclass(frozen=True)
class PositiveClass:
    index: int
    name: str
    names: tuple[str, ...]
    """Every class's name, in label order."""

    @property
    def negative(self) -> str:
        return self.names[1 - self.index]

    def describe(self) -> str:
        return f"'{self.name}' (label {self.index})"

    def as_json(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "negative": self.negative}


def class_names(dataset: dict[str, Any], count: int = 2) -> tuple[str, ...]:
    """The stored class names, or `class 0`, `class 1`, ... for a study that has none."""
    names = tuple(str(n) for n in dataset.get("class_names") or ())
    return names if len(names) >= count else tuple(f"class {i}" for i in range(count))


def positive_class(dataset: dict[str, Any], requested: str | None = None) -> PositiveClass | None:
    """The positive class of a binary task (None for other tasks): `requested` is a class
    name (any case) or a label; label 1 when not given."""
    task = dataset.get("task")
    if task != BINARY:
        if requested is not None:
            raise UsageError(
                f"--positive-class applies to binary tasks; {dataset.get('name', 'this data')} "
                f"is {task}"
            )
        return None
    names = class_names(dataset)
    if requested is None:
        return PositiveClass(DEFAULT_POSITIVE, names[DEFAULT_POSITIVE], names)
    wanted = requested.strip().casefold()
    for index, name in enumerate(names):
        if wanted in (name.casefold(), str(index)):
            return PositiveClass(index, name, names)
    choices = ", ".join(f"{n!r} ({i})" for i, n in enumerate(names))
    raise UsageError(f"--positive-class {requested!r} is not a class of this data; use {choices}")
