"""The validation a clinical team signs, end to end on a tiny image study from a CSV manifest
with subgroup columns: criteria fixed at creation and read back, post-hoc criteria labelled,
robustness, subgroups, the report's sections and the model card; bad inputs exit 2 with
nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest

from medslim.search.cli import main

ACCEPT = "auc=-0.2,sensitivity@spec0.90=-0.3,ece=+0.3,flips=+0.5,auc@severity3=-0.3"
TINY = (
    *("--trials", "3", "--baselines", "2", "--teacher-epochs", "1", "--epochs", "0"),
    *("--model", "resnet8", "--size", "16", "--no-progress"),
)


@pytest.fixture(scope="session")
def subgroup_study(tmp_path_factory: pytest.TempPathFactory, images: Any) -> Path:
    """A finished 3-trial study of 120 16-px images (24 on test) with `sex` and `site`
    columns, made with --accept; never read on test. Copy the folder before changing it."""
    folder = tmp_path_factory.mktemp("subgroup-study")
    path = images.manifest(folder / "data", with_split=True, groups=True, count=120)
    storage = f"sqlite:///{folder / 'v.db'}"
    common = ["--storage", storage, "--dataset", str(path), "--data-dir", str(folder / "cache")]
    args = [*common, "--subgroups", "sex,site", "--accept", ACCEPT, *TINY]
    assert main(["run", *args]) == 0
    return folder


def _copy(folder: Path, tmp_path: Path) -> str:
    copy = shutil.copytree(folder, tmp_path / "copy")
    return f"sqlite:///{copy / 'v.db'}"


def _study(storage: str) -> optuna.Study:
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage)


def _pareto(storage: str, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    capsys.readouterr()
    args = ["pareto", "--json", "--storage", storage, "--resamples", "100", "--severities", "3"]
    assert main([*args, *extra]) == 0
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


def test_criteria_are_stored_when_the_study_is_made_and_judge_every_member(
    subgroup_study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = _copy(subgroup_study, tmp_path)
    attrs = _study(storage).user_attrs
    assert attrs["acceptance"]["criteria"] == ACCEPT and attrs["acceptance"]["fixed_at"]
    assert "test_first_read" not in attrs  # nothing was scored on test by `run`
    assert attrs["config"]["subgroups"] == ["sex", "site"] and "accept" not in attrs["config"]
    front = _pareto(storage, capsys)
    criteria = front["test"]["criteria"]
    assert criteria["criteria"] == ACCEPT and criteria["fixed"] == ACCEPT
    assert criteria["post_hoc"] is False and criteria["test_first_read"]
    assert _study(storage).user_attrs["test_first_read"] == criteria["test_first_read"]
    assert any(n.startswith("criteria fixed in advance") for n in front["test"]["notes"])
    for member in front["front"]:
        checks = {c["criterion"]: c for c in member["verdict_checks"]}
        assert set(checks) == set(ACCEPT.split(",")) or member["verdict"] == "1-class test"
        if "auc@severity3=-0.3" in checks:  # judged under every corruption at severity 3
            assert len(checks["auc@severity3=-0.3"]["intervals"]) >= 10
        assert member["non_inferior"] is all(c["passed"] for c in checks.values())
        assert 0.0 <= member["flip_rate"] <= 1.0
        assert [c["class"] for c in member["per_class"]] == [0, 1]
        groups = {(g["column"], g["value"]): g for g in member["subgroups"]}
        assert {k: g["n"] for k, g in groups.items()} == {
            ("sex", "F"): 12,
            ("sex", "M"): 12,
            ("site", "A"): 8,
            ("site", "B"): 16,
        }
        kinds = ("non-inferior", "not shown", "too small to resolve", "one class only")
        assert all(g["verdict"].startswith(kinds) for g in member["subgroups"])
        assert {r["severity"] for r in member["robustness"]} == {3}
    assert {r["corruption"] for r in front["robustness"]["teacher"]} >= {"gaussian_noise"}
    assert "saturate" in front["robustness"]["skipped"]  # a colour corruption, grey images


def test_other_criteria_are_a_post_hoc_analysis_and_the_fixed_ones_cannot_move(
    subgroup_study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = _copy(subgroup_study, tmp_path)
    fixed = _pareto(storage, capsys)["test"]["criteria"]
    later = _pareto(storage, capsys, "--accept", "auc=-0.5")
    criteria = later["test"]["criteria"]
    assert criteria["post_hoc"] is True and criteria["criteria"] == "auc=-0.5"
    assert criteria["test_first_read"] == fixed["test_first_read"]
    (note,) = [n for n in later["test"]["notes"] if n.startswith("POST-HOC")]
    assert ACCEPT in note and fixed["test_first_read"] in note
    capsys.readouterr()
    args = ["pareto", "--storage", storage, "--resamples", "100", "--margin", "0.3"]
    assert main(args) == 0
    assert "POST-HOC analysis" in capsys.readouterr().out
    study = _study(storage)
    before = study.user_attrs["acceptance"]
    dataset = str(subgroup_study / "data" / "labels.csv")  # the path the study stored
    run = ["run", "--storage", storage, "--dataset", dataset, "--subgroups", "sex,site"]
    run += ["--data-dir", str(subgroup_study / "cache"), *TINY, "--accept", "auc=-0.5"]
    assert main([*run, "--study", study.study_name]) == 2
    err = capsys.readouterr().err.strip()
    assert "fixed its acceptance criteria" in err and len(err.splitlines()) == 1
    assert _study(storage).user_attrs["acceptance"] == before


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--accept", "auc=0.01"], "write the sign of auc=0.01"),
        (["--accept", "f1=-0.1"], "unknown metric 'f1'"),
        (["--accept", "kappa=-0.1"], "kappa needs a ordinal-regression task"),
        (["--subgroups", "ward"], "no column 'ward' for --subgroups"),
        (["--subgroups", "split"], "is the manifest's split column"),
        (["--subgroups", "sex,sex"], "--subgroups lists one twice"),
    ],
)
def test_bad_accept_and_subgroups_exit_2_and_write_nothing(
    tmp_path: Path,
    images: Any,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    path = images.manifest(tmp_path, with_split=True, groups=True)
    storage = f"sqlite:///{tmp_path / 's.db'}"
    subgroups = [] if "--subgroups" in extra else ["--subgroups", "sex,site"]
    args = ["run", "--storage", storage, "--dataset", str(path), *TINY, *subgroups, *extra]
    assert main([*args, "--data-dir", str(tmp_path / "cache")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "s.db").exists() and not (tmp_path / ".medslim").exists()


def test_pareto_refuses_criteria_the_task_cannot_have(
    subgroup_study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = _copy(subgroup_study, tmp_path)
    capsys.readouterr()
    assert main(["pareto", "--storage", storage, "--accept", "kappa=-0.1"]) == 2
    assert (
        main(["pareto", "--storage", storage, "--corruptions", "ultrasound", "--robustness"]) == 2
    )
    err = capsys.readouterr().err
    assert "kappa needs" in err and "is not a corruption set" in err
    assert "test_first_read" not in _study(storage).user_attrs  # refused before reading


def test_report_sections_and_the_model_card(
    subgroup_study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = _copy(subgroup_study, tmp_path)
    out = tmp_path / "report.html"
    report = ["report", "--storage", storage, "--out", str(out), "--resamples", "100"]
    assert main([*report, "--severities", "3"]) == 0
    text = out.read_text(encoding="utf-8")
    for title in (
        "Acceptance criteria",
        "Robustness to corrupted images",
        "What the compressed models forget",
        "Subgroups",
        "Model card",
    ):
        assert f"<h2>{title}</h2>" in text
    assert "data:image/png;base64," in text  # flipped test images, when a member flips any
    assert "--card --intended-use" in text
    front = _pareto(storage, capsys)
    trial = front["front"][-1]["trial"]
    model = tmp_path / "member.pt"
    export = ["export", "--storage", storage, "--trial", str(trial), "--out", str(model)]
    cached = ["--resamples", "100", "--severities", "3"]  # what pareto scored: read, not redone
    assert main([*export, *cached, "--card", "--intended-use", "Triage of test patterns"]) == 0
    card = json.loads((tmp_path / "member.card.json").read_text())
    assert set(card) >= {
        "intended_use",
        "data",
        "teacher",
        "member",
        "criteria",
        "calibration",
        "robustness",
        "flips",
        "per_class",
        "subgroups",
        "seeds",
        "versions",
        "checklist",
    }
    assert card["intended_use"] == "Triage of test patterns"
    assert card["criteria"]["fixed"] == ACCEPT and card["criteria"]["post_hoc"] is False
    assert card["data"]["splits"] == {"train": 72, "val": 24, "test": 24}
    assert card["member"]["file_sha256"] and card["member"]["weights_fingerprint"]
    assert {c["status"] for c in card["checklist"]} >= {"covered", "user"}
    markdown = (tmp_path / "member.card.md").read_text()
    for heading in ("## Intended use", "## Acceptance criteria and verdict", "## Calibration"):
        assert heading in markdown
    assert "## Robustness to corrupted images" in markdown and "## Subgroups" in markdown
    assert "TRIPOD+AI and CLAIM 2024" in markdown
    capsys.readouterr()
    assert main([*export[:-2], "--out", str(tmp_path / "x.pt"), "--trial", "999", "--card"]) == 2
    assert not (tmp_path / "x.pt").exists()


def test_a_flipped_volume_is_shown_as_its_three_middle_slices_and_an_image_as_it_is() -> None:
    import base64
    import io

    from PIL import Image

    from medslim.search.inspection.report_validation import _thumbnail

    flip = {"index": 3, "label": 1, "outcome": "lost", "teacher_decision": 1}
    flip |= {"teacher_score": 0.9, "member_decision": 0, "member_score": 0.2}
    volume = np.zeros((16, 20, 24, 1), np.uint8)
    volume[8] = 200  # the axial middle slice is bright, the others dark at their middles
    image = np.full((28, 28, 1), 90, np.uint8)
    shown = {}
    for name, sample in (("volume", volume), ("image", image)):
        thumb = _thumbnail(sample, flip, ("normal", "pneumonia"))
        shown[name] = np.asarray(Image.open(io.BytesIO(base64.b64decode(thumb.png))))
        assert "teacher pneumonia (0.90) → member normal (0.20)" in thumb.caption
    height, width = shown["volume"].shape[:2]
    assert width > 3 * height * 0.95, "three square views side by side"
    assert shown["volume"][:, : width // 4].mean() > 150  # the bright axial slice first
    assert shown["image"].shape[0] == shown["image"].shape[1]
    assert np.all(shown["image"] == 90)
