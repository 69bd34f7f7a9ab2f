"""Trial models: stored as artifacts, rebuilt exactly, exported as `.pt` bundles or ONNX."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import medslim
from medslim.objectives.data import load_dataset
from medslim.objectives.evaluate import split_scores
from medslim.search.api import StoredStudy
from medslim.search.cli import main
from medslim.search.records import trial_record
from medslim.search.trial_models import ModelBundle, bundle_model, rebuild
from medslim.spaces.blueprints import blueprint_for
from medslim.spaces.sparsity import PruningPlan, prunable_units, prune_in_steps


def _study(folder: Path) -> tuple[str, StoredStudy]:
    storage = f"sqlite:///{folder / 'm.db'}"
    return storage, medslim.load_study(storage)


def test_a_structured_resnet_rebuilds_with_identical_outputs() -> None:
    blueprint = blueprint_for("resnet8", None, (1, 28, 28), 2)
    torch.manual_seed(0)
    model = blueprint.build().eval()
    x = torch.randn(4, 1, 28, 28)
    units = prunable_units(model, x[:2], "structured")
    plan = PruningPlan({u: 0.3 + 0.1 * i for i, u in enumerate(units)}, "l1", "structured")
    for _ in prune_in_steps(model, plan, x[:2], lambda m: torch.zeros(1)):
        pass
    assert model.conv1.out_channels < 32  # really narrower than the preset
    copy = rebuild(bundle_model(model, blueprint))
    with torch.no_grad():
        assert torch.equal(copy(x), model.eval()(x))


def test_every_trial_model_rebuilds_to_its_stored_val_scores(tiny_study_dir: Path) -> None:
    storage, study = _study(tiny_study_dir)
    data = load_dataset("breast-cancer", seed=0)
    teacher_params = study.study.user_attrs["teacher"]["params"]
    for trial in study.study.trials:
        model = study.model(trial.number)
        assert sum(p.numel() for p in model.parameters()) == trial_record(trial)["params"]
        assert trial_record(trial)["params"] < teacher_params  # structurally pruned
        auc, acc = split_scores(model, data.val, data.task)
        assert (auc, acc) == (trial.values[0], trial.values[1])  # the objective's full values
        assert trial_record(trial)["val_auc"] == round(auc, 4)  # the attr a reader sees


def test_pt_export_rebuilds_a_structured_trial_with_identical_outputs(
    tiny_study_dir: Path, tmp_path: Path
) -> None:
    storage, study = _study(tiny_study_dir)
    out = tmp_path / "model.pt"
    assert main(["export", "--storage", storage, "--trial", "2", "--out", str(out)]) == 0
    content = torch.load(out, map_location="cpu", weights_only=True)
    assert set(content) == {"state_dict", "spec"}
    exported = rebuild(ModelBundle(content["state_dict"], content["spec"]))
    stored = study.model(2)
    x = load_dataset("breast-cancer", seed=0).val.x
    with torch.no_grad():
        assert torch.equal(exported(x), stored(x))
    changed = content["spec"]["changes"]["body.0"]["out_features"]
    assert changed < 256  # the pruned width, not the preset's
    assert study.front().members[0].choices["pruning"] == "structured"


def test_onnx_export_reproduces_pytorch_outputs(
    tiny_study_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import onnxruntime

    storage, study = _study(tiny_study_dir)
    out = tmp_path / "model.onnx"
    args = ["export", "--storage", storage, "--trial", "3", "--format", "onnx"]
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "max abs diff" in printed and "batch-1 latency" in printed
    x = load_dataset("breast-cancer", seed=0).val.x
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    actual = session.run(None, {"input": x.numpy()})[0]  # the whole split: a dynamic batch
    with torch.no_grad():
        expected = study.model(3)(x).numpy()
    assert float(np.max(np.abs(actual - expected))) < 1e-4


def test_export_fails_loudly_and_clearly(
    tiny_study_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    storage, _ = _study(tiny_study_dir)
    args = ["export", "--storage", storage, "--format", "onnx", "--out", str(tmp_path / "m.onnx")]
    assert main([*args, "--trial", "99"]) == 2
    assert "no finished trial 99" in capsys.readouterr().err
    monkeypatch.setattr(
        "medslim.search.inspection.export.ONNX_TOLERANCE", -1.0
    )  # any difference is too much
    assert main([*args, "--trial", "3"]) == 1
    assert "differ from PyTorch" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` fails
    assert main([*args, "--trial", "3"]) == 2
    assert "pip install 'medslim[onnx]'" in capsys.readouterr().err
