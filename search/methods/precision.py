"""The precision stage of a trial: after fine-tuning, its model exported to ONNX is kept as
is (`fp32`) or converted (`int8`, `methods.int8`), then measured in onnxruntime
(`search.deployment`). A precision is one registered record: how it converts the exported
model, and how its members are marked in the front table and the report's figures.

With `quantize=search` each trial chooses its precision (the parameter `precision`), so the
sampler learns where int8 pays. Torch-free at import.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from medslim.registry import Registry

if TYPE_CHECKING:
    import numpy as np

    from medslim.objectives.quantize import QuantSettings

PRECISION_PARAM = "precision"
"""Trial parameter under `quantize=search`; trial attr `precision` in every deployed trial."""


@dataclass(frozen=True)
class Converted:
    """The model file a trial is measured and scored as."""

    data: bytes
    precision: str
    """What the file is: the record's name, or `fp32` where conversion failed."""
    record: dict[str, Any] = field(default_factory=dict)
    """What the trial's record keeps of the conversion."""

    @property
    def changed(self) -> bool:
        """Whether its outputs differ from the PyTorch model's (so onnxruntime scores it)."""
        return self.precision != FP32.name


@dataclass(frozen=True)
class Calibration:
    """What a conversion may use: a seeded sample of training inputs and the settings."""

    inputs: np.ndarray
    settings: QuantSettings


class Precision(ABC):
    name: ClassVar[str]
    summary: ClassVar[str]
    marker: ClassVar[str] = ""
    """Appended to a member kind's marker symbol in figures (`-open`)."""

    @abstractmethod
    def convert(self, fp32: bytes, calibration: Calibration) -> Converted:
        """The exported fp32 model at this precision."""


class Fp32(Precision):
    name = "fp32"
    summary = "the fine-tuned model as exported (32-bit floats)"

    def convert(self, fp32: bytes, calibration: Calibration) -> Converted:
        return Converted(fp32, self.name)


PRECISIONS: Registry[Precision] = Registry("precision")
FP32 = PRECISIONS.register(Fp32.name, Fp32())


def precision_of(record: dict[str, Any]) -> Precision:
    """A trial's precision (fp32 for trials that stored none)."""
    return PRECISIONS.get(str(record.get("precision", FP32.name)))


def alternate(seeds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Seed parameters with the precisions taken in turn (under `quantize=search`), so the
    sampler sees each from the start."""
    names = PRECISIONS.names()
    return [{**params, PRECISION_PARAM: names[i % len(names)]} for i, params in enumerate(seeds)]
