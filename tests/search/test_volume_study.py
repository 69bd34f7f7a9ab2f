"""Volumes through the whole product: a short study on a slice of the real AdrenalMNIST3D
file through `pareto` and `export --format onnx`; every bad volume input refused in one line
before anything is written; the batch size fitted to the activation memory; `size` and
`window` kept with the study."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import torch

from medslim.errors import UsageError
from medslim.objectives import memory
from medslim.objectives.data import load_dataset
from medslim.search.cli import main
from medslim.search.cli.app import joined_values
from medslim.search.config import StudyConfig
from medslim.search.session import fitting_batch, resolve_config
from medslim.spaces.blueprints import blueprint_for

ADRENAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "adrenalmnist3d_64.npz"
SLICE = {"train": 16, "val": 8, "test": 8}


def _slice(path: Path, out: Path) -> Path:
    """The first volumes of each class in each split of the shared file."""
    arrays = {}
    with np.load(path) as full:
        for split, n in SLICE.items():
            labels = full[f"{split}_labels"][:, 0]
            rows = np.concatenate([np.flatnonzero(labels == c)[: n // 2] for c in (0, 1)])
            arrays[f"{split}_images"] = full[f"{split}_images"][rows]
            arrays[f"{split}_labels"] = full[f"{split}_labels"][rows]
    np.savez_compressed(out, **arrays)
    return out


@pytest.mark.skipif(not ADRENAL.is_file(), reason=f"{ADRENAL} is absent (real data)")
def test_short_adrenal_study_through_pareto_and_onnx_export(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = _slice(ADRENAL, tmp_path / "adrenal.npz")
    storage = f"sqlite:///{tmp_path / 'v.db'}"
    args = ["--dataset", str(dataset), "--storage", storage, "--size", "8", "--no-progress"]
    fast = ["--trials", "3", "--baselines", "1", "--teacher-epochs", "2", "--epochs", "1"]
    both = ["--method", "both", "--student-epochs", "1", "--data-dir", str(tmp_path / "d")]
    assert main(["run", *args, *fast, *both]) == 0
    (summary,) = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    assert summary.study_name.startswith("adrenal-8px-resnet3d8-both-")
    assert study.user_attrs["dataset"]["input_shape"] == [1, 8, 8, 8]
    assert study.user_attrs["config"]["model"] == "resnet3d8"
    capsys.readouterr()
    assert main(["pareto", "--json", "--storage", storage, "--resamples", "20"]) == 0
    front = json.loads(capsys.readouterr().out)
    assert 0.0 <= front["teacher"]["test_auc"] <= 1.0 and front["front"]
    member = front["front"][0]["trial"]
    out = tmp_path / "model.onnx"
    export = ["export", "--storage", storage, "--trial", str(member), "--format", "onnx"]
    assert main([*export, "--out", str(out)]) == 0
    assert out.stat().st_size > 0 and "max abs diff" in capsys.readouterr().out


def _nifti_folder(root: Path, volumes: Any, per_class: int = 8) -> Path:
    for label, name in enumerate(volumes.classes):
        for i in range(per_class):
            values = volumes.volume(label, 10 * label + i)
            volumes.write_nifti(root / name / f"{name}{i}.nii.gz", values)
    return root


def _bad_inputs(tmp_path: Path, volumes: Any, images: Any, case: str) -> list[str]:
    ct = tmp_path / "ct"
    values = volumes.volume(0, 0)
    if case in ("mixed", "uneven"):
        _nifti_folder(ct, volumes)
        patient = ct / "normal" / "patient"
        if case == "mixed":
            volumes.write_series(patient, values, series_uid="1.2.3")
            other = volumes.write_series(tmp_path / "x", values[:2], series_uid="1.2.4", seed=1)
            for file in other.iterdir():
                file.rename(patient / f"b{file.name}")
        else:
            spaced = [0.0, 2.5, 5.0, 7.5, 11.0, 13.5, 16.0, 18.5]
            volumes.write_series(patient, values, positions=spaced)
        return ["--dataset", str(ct)]
    if case == "2-D image":
        _nifti_folder(ct, volumes)
        images.write_png(ct / "normal" / "stray.png", 0, 0)
        return ["--dataset", str(ct)]
    if case == "2-D model":
        return ["--dataset", str(_nifti_folder(ct, volumes)), "--model", "resnet8"]
    if case == "3-D model":
        folder = images.class_folder(tmp_path / "xr", per_class=8)
        return ["--dataset", str(folder), "--model", "resnet3d8", "--size", "16"]
    if case == "window":
        return ["--dataset", str(_nifti_folder(ct, volumes)), "--window", "abdomn"]
    raise AssertionError(case)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("mixed", "patient: mixes 2 DICOM series"),
        ("uneven", "patient: uneven slice spacing"),
        ("2-D image", "stray.png: a 2-D image among volumes"),
        ("2-D model", "ct holds 3-D volumes, but the model takes 2-D images"),
        ("3-D model", "xr holds 2-D images, but the model takes 3-D volumes"),
        ("window", "--window 'abdomn' does not parse"),
    ],
)
def test_bad_volume_input_is_one_line_exit_2_and_writes_nothing(
    tmp_path: Path,
    volumes: Any,
    images: Any,
    capsys: pytest.CaptureFixture[str],
    case: str,
    message: str,
) -> None:
    pytest.importorskip("pydicom")
    pytest.importorskip("nibabel")
    args = _bad_inputs(tmp_path, volumes, images, case)
    storage = f"sqlite:///{tmp_path / 's.db'}"
    data_dir = tmp_path / "d"
    quiet = ["--no-progress"]  # the default size and window notes are not errors
    assert main(["run", "--storage", storage, "--data-dir", str(data_dir), *quiet, *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "s.db").exists()
    assert not [p for p in data_dir.rglob("*") if p.is_file()]  # no decoded cache either


def test_the_batch_is_lowered_to_the_memory_or_refused(
    tmp_path: Path,
    volumes: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pytest.importorskip("nibabel")
    root = _nifti_folder(tmp_path / "ct", volumes)
    data = load_dataset(str(root), data_dir=tmp_path / "d", size=16)
    cpu = torch.device("cpu")
    config = resolve_config(StudyConfig(dataset=str(root), size=16), data, cpu)
    model = blueprint_for(config.model, None, data.input_shape, data.n_outputs).build()
    per_sample = memory.activation_bytes(model, data.input_shape)
    total = memory.memory_budget(cpu) / memory.ACTIVATION_SHARE
    assert fitting_batch(config, model, data, cpu) == config  # 128 small volumes fit
    monkeypatch.setattr(memory, "ACTIVATION_SHARE", 20.5 * per_sample / total)
    with caplog.at_level(logging.WARNING, logger="medslim"):
        lowered = fitting_batch(config, model, data, cpu)
    assert lowered.batch_size == 16 and "--batch-size lowered from 128 to 16" in caplog.text
    monkeypatch.setattr(memory, "ACTIVATION_SHARE", 1.5 * per_sample / total)
    with pytest.raises(UsageError, match=r"16×16×16 volumes needs about .* smaller --size"):
        fitting_batch(config, model, data, cpu)


def test_size_and_window_are_kept_with_the_study() -> None:
    config = StudyConfig(dataset="ct.csv", size=(32, 64, 64), window="-160,240")
    stored = config.stored()
    assert stored["size"] == [32, 64, 64] and stored["window"] == "-160,240"
    again = StudyConfig.from_stored(json.loads(json.dumps(stored)))
    assert again.size == (32, 64, 64) and again.stored() == stored
    assert config.default_study_name().startswith("ct-32x64x64px-")
    assert StudyConfig.from_stored({"dataset": "ct.csv"}).window is None  # older studies
    with pytest.raises(UsageError, match="--size 8,8 has 2 numbers"):
        StudyConfig(size=(8, 8))  # type: ignore[arg-type]
    assert joined_values(["run", "--window", "-160,240"]) == ["run", "--window=-160,240"]
    assert joined_values(["--window", "lung", "--seed", "-1"]) == [
        "--window",
        "lung",
        "--seed",
        "-1",
    ]
