from __future__ import annotations

import torch

from medslim.objectives.data import load_dataset
from medslim.objectives.evaluate import split_scores
from medslim.objectives.sensitivity import (
    SensitivityCurve,
    ceilings_from_curves,
    sensitivity_curves,
)
from medslim.objectives.training import Recipe, train
from medslim.spaces.families import build_model
from medslim.spaces.sparsity import prunable_units
from medslim.spaces.specs import MLPSpec


def test_curves_cover_every_unit_and_drop_relative_to_the_teacher() -> None:
    torch.manual_seed(0)
    data = load_dataset("breast-cancer", seed=0)
    teacher = build_model(MLPSpec(hidden=(32, 16)), data.input_shape, data.n_outputs)
    train(teacher, data.train, data.task, Recipe(epochs=20, batch_size=64))
    auc, _ = split_scores(teacher, data.val, data.task)
    units = list(prunable_units(teacher, data.train.batch(slice(0, 2)), "structured"))
    curves = sensitivity_curves(teacher, data, units, teacher_auc=auc, ratios=(0.0, 0.95))
    assert [c.unit for c in curves] == units
    for curve in curves:
        assert abs(curve.auc_drop[0]) < 0.02, "ratio 0 with BN recalibration barely changes AUC"
        assert all(d == auc - a for d, a in zip(curve.auc_drop, curve.val_auc, strict=True))


def test_ceilings_take_the_largest_tolerated_ratio_and_respect_the_floor() -> None:
    curves = [
        SensitivityCurve("a", (0.25, 0.5, 0.75), (0.99, 0.98, 0.9), (0.0, 0.01, 0.09)),
        SensitivityCurve("b", (0.25, 0.5, 0.75), (0.8, 0.7, 0.6), (0.19, 0.29, 0.39)),
    ]
    assert ceilings_from_curves(curves, max_drop=0.01, floor=0.1) == {"a": 0.5, "b": 0.1}
