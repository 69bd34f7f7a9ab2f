"""Which class is "positive": sensitivity, specificity, operating points and calibration of
a binary task are all about one class, and a reader must know which.

In BreastMNIST label 1 is "normal, benign", so a sensitivity of 0.95 for label 1 says how
many benign cases were found, not malignant ones. So for the datasets with a disease class
the positive class is that class (`DISEASE_CLASSES`, by the dataset's label names); for any
other data it is label 1, and the table says how to pick another by name or label. Studies
store the dataset's class names (`dataset.class_names`); older studies do not, and their
classes are called `class 0`, `class 1` (label 1 positive).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from medslim.errors import UsageError
from medslim.kinds import BINARY

DEFAULT_POSITIVE = 1
DISEASE_CLASSES = {
    "pneumoniamnist": "pneumonia",
    "breastmnist": "malignant",
    "breast-cancer": "malignant",
    "nodulemnist3d": "malignant",
    "adrenalmnist3d": "hyperplasia",
    "vesselmnist3d": "aneurysm",
}
"""The clinically relevant (disease) class of each binary dataset that has one, by its label
name: sensitivity is about finding it. (SynapseMNIST3D's classes are two synapse kinds, so
it keeps label 1.)"""


@dataclass(frozen=True)
class PositiveClass:
    index: int
    name: str
    names: tuple[str, ...]
    """Every class's name, in label order."""
    why: str = "chosen"
    """How it was chosen: `chosen` (asked for), `disease class of <dataset>`, `default`."""

    @property
    def negative(self) -> str:
        return self.names[1 - self.index]

    def describe(self) -> str:
        return f"'{self.name}' (label {self.index})"

    def as_json(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "negative": self.negative, "why": self.why}

    def advice(self) -> str:
        """Why this class, and how to pick the other."""
        turn = f"--positive-class '{self.negative}' to turn it round"
        if self.why == "default":
            return (
                f"label 1, medslim's default for data whose disease class it does not know: "
                f"{turn}, or name the class to find"
            )
        return f"{self.why}; {turn}" if self.why != "chosen" else turn


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
        return default_positive(dataset, names)
    wanted = requested.strip().casefold()
    for index, name in enumerate(names):
        if wanted in (name.casefold(), str(index)):
            return PositiveClass(index, name, names)
    choices = ", ".join(f"{n!r} ({i})" for i, n in enumerate(names))
    raise UsageError(f"--positive-class {requested!r} is not a class of this data; use {choices}")


def default_positive(dataset: dict[str, Any], names: tuple[str, ...]) -> PositiveClass:
    """The dataset's disease class (by name, among its label names), else label 1."""
    name = str(dataset.get("name", ""))
    disease = DISEASE_CLASSES.get(re.sub(r"_\d+$", "", name))  # `breastmnist_224` too
    if disease in names:
        index = names.index(disease)
        return PositiveClass(index, disease, names, f"the disease class of {name}")
    return PositiveClass(DEFAULT_POSITIVE, names[DEFAULT_POSITIVE], names, "default")
