"""`medslim report`: the computed data, then the HTML (one figure per section)."""

from __future__ import annotations

import shutil
from pathlib import Path

import optuna
import optuna_dashboard
import pytest

from medslim.search.cli import main
from medslim.search.inspection.pareto import compute_front
from medslim.search.inspection.report import figures, report_data
from medslim.search.records import trial_record


def _study(folder: Path) -> optuna.Study:
    storage = f"sqlite:///{folder / 'm.db'}"
    (name,) = optuna.get_all_study_names(storage)
    return optuna.load_study(study_name=name, storage=storage)


def test_report_data_holds_front_baselines_teacher_and_ratio_profiles(
    tiny_study_dir: Path,
) -> None:
    study = _study(tiny_study_dir)
    data = report_data(study)
    front = compute_front(study)
    teacher = study.user_attrs["teacher"]
    baselines = {t.number for t in study.trials if t.user_attrs.get("baseline") == "uniform"}
    assert [t.metric for t in data.trade_offs] == ["val_auc", "val_acc"]
    for trade_off in data.trade_offs:
        assert [p.trial for p in trade_off.front] == [m.trial for m in front.members]
        assert [p.value for p in trade_off.front] == [
            getattr(m, trade_off.metric) for m in front.members
        ]
        assert {p.trial for p in trade_off.baselines} == baselines and len(baselines) == 2
        assert trade_off.teacher.flops == teacher["flops"]
        assert trade_off.teacher.value == teacher[trade_off.metric]
        # Every trial is drawn once: off the front, or on it.
        drawn = [p.trial for p in trade_off.trials + trade_off.front]
        assert sorted(drawn) == sorted(t.number for t in study.trials)
        assert all("g=" in p.label and f"trial {p.trial}" in p.label for p in trade_off.front)
    profile = data.profile
    assert profile.units == study.user_attrs["units"]
    assert profile.trials == [m.trial for m in front.members]
    for number, row in zip(profile.trials, profile.ratios, strict=True):
        plan = trial_record(study.trials[number])["plan"]["ratios"]
        assert row == [plan[u] for u in profile.units]
    assert data.students == []  # a pruning study has no distilled member
    assert data.hypervolume_reference == [0.0, 0.0, pytest.approx(teacher["flops"] * 1.05)]


def test_report_html_has_one_figure_per_section_and_no_server(
    tiny_study_dir: Path, tmp_path: Path
) -> None:
    folder = shutil.copytree(tiny_study_dir, tmp_path / "copy")
    out = tmp_path / "report.html"
    storage = f"sqlite:///{folder / 'm.db'}"
    assert main(["report", "--storage", storage, "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    sections = figures(_study(folder), report_data(_study(folder)))
    titles = [s.title for s in sections]
    assert titles[:4] == [
        "val AUC vs FLOPs",
        "val ACC vs FLOPs",
        "Per-layer pruning ratios of the front",
        "Student specs of distilled front members",
    ]
    assert {"Optimisation history", "Hypervolume history"} <= set(titles)
    drawn = [s for s in sections if s.figure is not None]
    assert len(drawn) == 6  # all but the (empty) student table
    assert text.count("<h2>") == len(sections)
    assert text.count('class="plotly-graph-div"') == len(drawn)
    assert "No distilled member." in text
    assert text.count("plotly.js v") >= 1 and "<script src=" not in text  # inlined once
    assert '"type":"log"' in text  # FLOPs on a log axis
    # `medslim report` also wrote the note for optuna-dashboard.
    note = optuna_dashboard.get_note(_study(folder))
    assert "Best trade-offs" in note and "breast-cancer" in note
