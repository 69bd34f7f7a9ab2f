"""Soft-label fine-tuning is on by default for image data only, and never where it cannot
run (`--cv` folds, distillation-only studies); an explicit flag always wins."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from medslim.search.config import StudyConfig
from medslim.search.session import resolve_config


@pytest.mark.parametrize(
    "kind, settings, expected",
    [
        ("image", {}, True),
        ("image", {"cv": 3}, False),
        ("image", {"method": "distill"}, False),
        ("image", {"kd": False}, False),
        ("tabular", {}, False),
        ("tabular", {"kd": True}, True),
    ],
)
def test_kd_default_follows_the_data_kind(kind: str, settings: dict, expected: bool) -> None:
    model = "resnet8" if kind == "image" else "mlp"
    shape = (1, 28, 28) if kind == "image" else (30,)
    data = SimpleNamespace(kind=kind, input_shape=shape, n_outputs=2, train=range(100))
    config = StudyConfig(model=model, **settings)
    assert resolve_config(config, data, torch.device("cpu")).kd is expected  # type: ignore[arg-type]
