"""A study end to end on each kind of source (tiny settings), and the data source kept in the
study: pareto, a resumed run and a worker find the same data and split without flags."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest

from medslim.search.cli import main

TINY = [
    *("--trials", "2", "--baselines", "1", "--teacher-epochs", "1", "--epochs", "0"),
    *("--model", "resnet8", "--no-progress"),
]


def run(tmp_path: Path, dataset: str, *extra: str) -> tuple[int, str]:
    storage = f"sqlite:///{tmp_path / 's.db'}"
    code = main(["run", "--storage", storage, "--dataset", dataset, *TINY, *extra])
    return code, storage


def only_study(storage: str) -> optuna.Study:
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage)


def pareto_json(storage: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["pareto", "--json", "--storage", storage, "--resamples", "20"]) == 0
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


@pytest.mark.e2e
def test_folder_study_keeps_its_source_for_pareto_resume_and_worker(
    tmp_path: Path,
    images: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = images.class_folder(tmp_path / "xrays", per_class=12)
    data_dir = tmp_path / "elsewhere"
    code, storage = run(tmp_path, str(root), "--size", "16", "--data-dir", str(data_dir))
    assert code == 0
    study = only_study(storage)
    source = study.user_attrs["dataset"]
    assert source["layout"] == "folder" and source["size"] == 16
    assert source["data_dir"] == str(data_dir.resolve())
    assert study.user_attrs["config"]["dataset"] == str(root.resolve())
    assert study.user_attrs["teacher"]["cache_file"].startswith("teacher-")
    monkeypatch.chdir(tmp_path / "elsewhere")  # neither the folder nor the data dir is named
    front = pareto_json(storage, capsys)
    assert "test_auc" in front["teacher"]
    decoded = list((data_dir / "decoded").iterdir())
    assert len(decoded) == 1  # the worker and pareto reused the run's decoded images
    assert main(["worker", "--storage", storage, "--trials", "3", "--no-progress"]) == 0
    assert len(list((data_dir / "decoded").iterdir())) == 1
    code, _ = run(tmp_path, str(root), "--size", "16", "--trials", "4")  # resumed, same split
    assert code == 0
    assert len([t for t in only_study(storage).trials if t.state.is_finished()]) == 4
    images.write_png(root / "normal" / "late.png", 1, 555)  # the folder changed: refused
    capsys.readouterr()
    assert main(["worker", "--storage", storage, "--trials", "5", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "differ from those the study was made with" in err and len(err.splitlines()) == 1


@pytest.mark.e2e
@pytest.mark.parametrize("with_split", [True, False])
def test_csv_study_runs_end_to_end(
    tmp_path: Path, images: Any, capsys: pytest.CaptureFixture[str], with_split: bool
) -> None:
    path = images.manifest(tmp_path, with_split=with_split)
    code, storage = run(tmp_path, str(path), "--size", "16", "--data-dir", str(tmp_path))
    assert code == 0
    split = only_study(storage).user_attrs["dataset"]["split"]
    assert split == ("given" if with_split else "test/val carved from train, seed 0")
    assert pareto_json(storage, capsys)["front"]


@pytest.mark.e2e
def test_dicom_study_runs_end_to_end(tmp_path: Path, images: Any) -> None:
    pytest.importorskip("pydicom")
    root = tmp_path / "scans"
    for label, name in enumerate(images.classes):
        for i in range(12):
            values = images.pattern(label, i + 20 * label, (20, 20)).astype(float) * 16
            photometric = "MONOCHROME1" if i % 2 else "MONOCHROME2"
            images.write_dicom(root / name / f"{i}.dcm", values, photometric, (2000, 4000))
    code, storage = run(tmp_path, str(root), "--size", "16", "--data-dir", str(tmp_path))
    assert code == 0
    assert only_study(storage).user_attrs["dataset"]["input_shape"] == [1, 16, 16]


@pytest.mark.e2e
def test_library_warnings_stay_off_stderr_in_a_normal_run(medslim, images: Any) -> None:
    """pydicom warns about every over-long header value it reads (seen in public DICOMs):
    the run's stderr holds medslim's own lines only."""
    pydicom = pytest.importorskip("pydicom")
    root = medslim.cwd / "scans"
    for label, name in enumerate(images.classes):
        for i in range(8):
            values = images.pattern(label, i + 20 * label, (20, 20)).astype(float) * 16
            path = images.write_dicom(
                root / name / f"{i}.dcm", values, "MONOCHROME2", (2000, 4000)
            )
            header = pydicom.dcmread(path)
            header.PatientName = "A" * 70  # PN allows 64
            header.save_as(path)
    done = medslim.run("run", "--dataset", str(root), "--size", "16", *TINY[:-1])
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr and "exceeds" not in done.stderr, done.stderr
    assert "teacher trained in" in done.stderr, "medslim's own lines still show"


@pytest.mark.e2e
def test_a_csv_listing_files_elsewhere_needs_the_flag_and_its_readers_follow(
    tmp_path: Path, images: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = []
    for i in range(40):
        images.write_png(tmp_path / "shared" / f"{i}.png", i % 2, i)
        rows.append(f"../shared/{i}.png,{i % 2}")
    csv = tmp_path / "lists" / "labels.csv"
    csv.parent.mkdir()
    csv.write_text("path,label\n" + "\n".join(rows) + "\n")
    code, storage = run(tmp_path, str(csv), "--size", "16", "--data-dir", str(tmp_path))
    assert code == 2 and "lie outside" in capsys.readouterr().err
    assert not (tmp_path / "s.db").exists()
    code, storage = run(
        tmp_path, str(csv), "--size", "16", "--data-dir", str(tmp_path), "--allow-outside-paths"
    )
    assert code == 0
    assert only_study(storage).user_attrs["dataset"]["allow_outside_paths"] is True
    assert pareto_json(storage, capsys)["test"]["size"] == 6, "pareto read the test split too"


@pytest.mark.e2e
def test_medmnist_plus_64_by_name(official_64: Callable[[], Path], tmp_path: Path) -> None:
    path = official_64()
    code, storage = run(tmp_path, "breastmnist", "--size", "64", "--data-dir", str(path.parent))
    assert code == 0
    study = only_study(storage)
    assert study.study_name.startswith("breastmnist-64px-resnet8-")
    assert study.user_attrs["dataset"]["input_shape"] == [1, 64, 64]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "breastmnist", "--size", "100"], "comes in 28, 64, 128, 224 px, not 100"),
        (["--dataset", "FOLDER", "--size", "4"], "--size must be between 8 and 2048"),
        (["--dataset", "nowhere/xrays"], "nowhere/xrays: no such file or folder"),
    ],
)
def test_bad_data_flags_are_one_line_and_touch_nothing(
    tmp_path: Path,
    images: Any,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    root = images.class_folder(tmp_path / "x", per_class=8)
    args = [str(root) if a == "FOLDER" else a for a in args]
    storage = f"sqlite:///{tmp_path / 's.db'}"
    assert main(["run", "--storage", storage, "--data-dir", str(tmp_path / "d"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "s.db").exists() and not (tmp_path / "d").exists()
    assert not os.path.exists(tmp_path / ".medslim")


def test_a_study_from_before_the_data_source_was_stored_still_opens_in_pareto(
    tiny_study_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An older study stores no data source and no teacher file name, and its cached
    teacher has another key (older recipe and data fingerprint): it is found by its val AUC."""
    folder = shutil.copytree(tiny_study_dir, tmp_path / "old")
    storage = f"sqlite:///{folder / 'm.db'}"
    study = only_study(storage)
    teacher = dict(study.user_attrs["teacher"])
    cached = folder / ".medslim" / "teachers" / teacher.pop("cache_file")
    cached.rename(cached.with_name("teacher-0123456789abcdef0123.pt"))
    study.set_user_attr("teacher", teacher)
    old = {"name": "breast-cancer", "task": "binary-class", "source": "scikit-learn"}
    study.set_user_attr("dataset", old)  # as studies stored it before
    front = pareto_json(storage, capsys)
    assert front["teacher"]["test_auc"] == pytest.approx(teacher["test_auc"])
