"""A short image study on the real PneumoniaMNIST file, when ../shared/data has it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medslim.search.cli import main

pytestmark = pytest.mark.e2e

PNEUMONIA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "pneumoniamnist.npz"


@pytest.mark.skipif(not PNEUMONIA.is_file(), reason=f"{PNEUMONIA} is absent (real data)")
def test_short_pneumonia_study_has_a_front_of_smaller_models(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = f"sqlite:///{tmp_path / 'p.db'}"
    args = ["--dataset", str(PNEUMONIA), "--storage", storage, "--no-progress"]
    fast = ["--trials", "3", "--baselines", "2", "--teacher-epochs", "1", "--epochs", "0"]
    assert main(["run", *args, *fast, "--model", "resnet8"]) == 0
    capsys.readouterr()
    assert main(["pareto", "--json", "--storage", storage]) == 0
    front = json.loads(capsys.readouterr().out)
    assert front["teacher"]["val_auc"] > 0.8
    assert front["front"]
    assert all(m["flops_ratio"] < 1.0 for m in front["front"])
