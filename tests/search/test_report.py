"""`medslim report`: the computed data first, then the HTML, then the page in a real browser."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import optuna_dashboard
import pytest
from optuna.trial import TrialState

from medslim.search.api import StoredStudy, load_study
from medslim.search.cli import main
from medslim.search.inspection.hypervolume import hypervolume, hypervolume_history
from medslim.search.inspection.report_data import Point, proxy_check, report_data, staircase
from medslim.search.inspection.report_figures import sections
from medslim.search.records import trial_record
from medslim.spaces.families import build_model, get_preset

WIDTHS = (800, 1400, 1920)


def _stored(folder: Path) -> StoredStudy:
    return load_study(f"sqlite:///{folder / 'm.db'}")


def test_staircase_keeps_the_points_nothing_beats_on_both_axes() -> None:
    points = [
        Point(n, flops, value, "pruned", False, "")
        for n, flops, value in [
            (0, 10, 0.5),
            (1, 20, 0.7),
            (2, 30, 0.6),
            (3, 5, 0.4),
            (4, 40, 0.9),
        ]
    ]
    assert [p.trial for p in staircase(points)] == [3, 0, 1, 4]  # trial 2: more FLOPs, worse


def test_hypervolume_matches_hand_computed_boxes() -> None:
    # Minimise both; reference (4, 4): (1, 3) adds 3×1, (2, 2) adds 2×2 − overlap 1×... by hand:
    # union of [1,4]×[3,4] and [2,4]×[2,4] = 3 + 4 − 2 = 5.
    assert hypervolume(np.array([[1.0, 3.0], [2.0, 2.0]]), np.array([4.0, 4.0])) == 5.0
    cube = hypervolume(np.array([[0.0, 0.0, 0.0]]), np.array([1.0, 2.0, 3.0]))
    assert cube == 6.0
    # Two 3-D boxes: [0,2]×[0,1]×[0,1] and [0,1]×[0,2]×[0,1] to (2,2,1) overlap in 1×1×1.
    two = hypervolume(np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]), np.array([2.0, 2.0, 1.0]))
    assert two == 3.0
    assert hypervolume(np.array([[5.0, 5.0]]), np.array([4.0, 4.0])) == 0.0  # beyond the box


def test_normalised_hypervolume_is_optunas_divided_by_the_teachers_box(
    tiny_study_dir: Path,
) -> None:
    study = _stored(tiny_study_dir).study
    teacher = study.user_attrs["teacher"]
    history = hypervolume_history(study, ["val_auc", "val_acc", "flops"])
    assert history is not None and history.trials == sorted(t.number for t in study.trials)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        raw = optuna.visualization.plot_hypervolume_history(study, [0.0, 0.0, teacher["flops"]])
    box = teacher["val_auc"] * teacher["val_acc"] * teacher["flops"]
    assert np.array(history.values) == pytest.approx(np.array(raw.data[0].y) / box, rel=1e-3)
    assert history.baselines is not None and history.baselines <= history.values[-1] + 1e-12


def test_report_data_draws_every_trial_per_method_and_each_plots_own_front(
    tiny_both_dir: Path,
) -> None:
    stored = _stored(tiny_both_dir)
    study = stored.study
    data = report_data(stored.ref, stored.table(test=False))
    front = stored.front()
    done = study.get_trials(states=(TrialState.COMPLETE,))
    kinds = {t.number: _kind(trial_record(t)) for t in done}
    assert set(kinds.values()) >= {"pruned", "distilled"}
    for trade_off in data.trade_offs:
        assert sorted(p.trial for p in trade_off.points) == sorted(kinds)  # each trial once
        assert all(p.kind == kinds[p.trial] for p in trade_off.points)
        assert {p.trial for p in trade_off.points if p.on_front} == {
            m.trial for m in front.members
        }
        steps = trade_off.front_2d
        assert [p.flops for p in steps] == sorted(p.flops for p in steps)
        assert all(a.value < b.value for a, b in zip(steps, steps[1:], strict=False))
        for point in trade_off.points:  # every trial is at or below the staircase
            assert any(s.flops <= point.flops and s.value >= point.value for s in steps)
        teacher = study.user_attrs["teacher"]
        assert trade_off.teacher.value == teacher[trade_off.metric]
        assert "FLOPs" in trade_off.teacher.label and "val AUC" in trade_off.teacher.label
    pruned = [m for m in front.members if m.kind != "distilled"]
    profile = data.profile
    assert [r.trial for r in profile.rows] == [m.trial for m in pruned]
    assert profile.groups == study.user_attrs["units"] and profile.cap == 0.9
    teacher_model = build_model(get_preset("mlp"), (30,), 2)
    widths = [teacher_model.get_submodule(g).out_features for g in profile.groups]
    assert profile.totals == widths and profile.unit == "channels"
    for row, member in zip(profile.rows, pruned, strict=True):
        assert row.ratios == [member.choices["ratios"][g] for g in profile.groups]
        for ratio, kept, total in zip(row.ratios, row.kept, profile.totals, strict=True):
            assert kept is not None and abs((total - kept) - ratio * total) <= 1.0
    distilled = [m.trial for m in front.members if m.kind == "distilled"]
    assert [s["trial"] for s in data.students] == distilled
    assert [i.method for i in data.importances] == ["prune", "distill"]
    for importances in data.importances:  # asked within one method: never `method` itself
        assert "method" not in importances.importances
        assert importances.importances or "at least" in importances.reason


def test_importances_ask_about_what_trials_choose(tiny_study_dir: Path) -> None:
    stored = _stored(tiny_study_dir)
    (pruned,) = report_data(stored.ref, stored.table(test=False)).importances
    assert set(pruned.importances) == {"flops.target"}  # one allocation: the target alone
    assert sum(pruned.importances.values()) == pytest.approx(1.0)


def _kind(record: dict[str, Any]) -> str:
    if record["method"] == "distill":
        return "distilled"
    return "uniform" if record.get("baseline") == "uniform" else "pruned"


def test_report_html_has_the_test_table_and_one_figure_per_section(
    tiny_study_dir: Path, tmp_path: Path
) -> None:
    folder = shutil.copytree(tiny_study_dir, tmp_path / "copy")
    out = tmp_path / "report.html"
    storage = f"sqlite:///{folder / 'm.db'}"
    assert main(["report", "--storage", storage, "--out", str(out), "--resamples", "200"]) == 0
    text = out.read_text(encoding="utf-8")
    stored = _stored(folder)
    titles = [s.title for s in sections(report_data(stored.ref, stored.table(resamples=200)))]
    assert titles[:6] == [
        "Models on the front",
        "val AUC vs FLOPs",
        "val ACC vs FLOPs",
        "Test AUC with 95% intervals",
        "Calibration on the test split",
        "Per-layer pruning ratios of the front",
    ]
    # The validation sections follow the calibration figure (tabular data: no robustness,
    # no subgroups without --subgroups).
    page = [t for t in text.split("<h2>")[1:]]
    assert [p.split("</h2>")[0] for p in page][5:9] == [
        "Acceptance criteria",
        "Robustness to corrupted images",
        "What the compressed models forget",
        "Model card",
    ]
    assert {"Optimisation history", "Hypervolume history (relative to the teacher)"} <= set(titles)
    assert text.count("<h2>") == len(titles) + 4
    assert "<table class='front'>" in text and ">reference<" in text
    assert "ΔAUC [95% CI]" in text and "verdict" in text and "non-inferior when" in text
    assert "positive class &#x27;malignant&#x27; (label 0)" in text  # the disease class
    assert text.count("plotly.js v") >= 1 and "<script src=" not in text  # inlined once
    assert '"type":"log"' in text  # FLOPs on a log axis
    # `medslim report` also wrote the notes for optuna-dashboard, with the test columns.
    study = stored.study
    note = optuna_dashboard.get_note(study)
    assert "Models on the front" in note and "breast-cancer" in note and "ΔAUC" in note


@pytest.mark.e2e
def test_report_in_a_browser_shows_methods_apart_and_never_scrolls_sideways(
    tiny_both_dir: Path, tmp_path: Path, chromium: Any
) -> None:
    from selenium.webdriver.common.by import By

    folder = shutil.copytree(tiny_both_dir, tmp_path / "copy")
    out = tmp_path / "report.html"
    storage = f"sqlite:///{folder / 'm.db'}"
    assert main(["report", "--storage", storage, "--out", str(out), "--resamples", "200"]) == 0
    for width in WIDTHS:
        driver = chromium(width, 1000)
        driver.get(out.as_uri())
        overflow = driver.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth"
        )
        assert overflow <= 0, f"the page is {overflow} px wider than a {width} px window"
        rows = driver.find_elements(By.CSS_SELECTOR, "table.front tbody tr:not(.details)")
        verdicts = {
            r.find_elements(By.TAG_NAME, "td")[_column(driver, "verdict")].text for r in rows
        }
        # the table leads with what a reader compares, and fits: the verdict is on screen
        headers = [h.text for h in driver.find_elements(By.CSS_SELECTOR, "table.front th")]
        assert headers == ["trial", "method", "FLOPs×", "test AUC [95% CI]", "verdict"]
        right = driver.execute_script(
            "return document.querySelector('table.front th:last-child')"
            ".getBoundingClientRect().right"
        )
        assert right <= width, f"the verdict ends at {right} px in a {width} px window"
        details = driver.find_elements(By.CSS_SELECTOR, "table.front tr.details details")
        assert len(details) == len(rows)
        details[1].find_element(By.TAG_NAME, "summary").click()
        opened = details[1].text
        assert "ECE [95% CI]" in opened and "ΔAUC [95% CI]" in opened and "export" in opened
        assert "reference" in verdicts and verdicts - {"reference"}
        assert verdicts - {"reference"} <= {"non-inferior", "not shown: AUC", "1-class test"} | {
            v for v in verdicts if v.endswith("*")
        }
        traces = driver.execute_script(
            "return document.querySelectorAll('.js-plotly-plot')[0].data.map("
            "t => [t.name, t.marker ? t.marker.symbol : null, t.marker ? t.marker.color : null])"
        )
        styles = {
            name.split(" · ")[0]: (symbol[0] if isinstance(symbol, list) else symbol, colour)
            for name, symbol, colour in traces
        }  # a trace's symbol may be one per point (an int8 member's is open)
        assert styles["pruned"] != styles["distilled"] != styles["teacher"]
        assert styles["distilled"] == ("diamond", "#2ca02c")
        labels = driver.execute_script(
            "return [...document.querySelectorAll('.js-plotly-plot')].slice(0, 3).map("
            "p => p.data.flatMap(t => Array.isArray(t.text) ? t.text : []).filter(x => x))"
        )
        members = {str(r.find_elements(By.TAG_NAME, "td")[0].text) for r in rows} - {""}
        for figure in labels:  # each front point labelled with its trial number
            named = {n.strip() for label in figure for n in label.split(",")}
            assert members <= named, (members, figure)
        curves = driver.execute_script(
            "const plots = [...document.querySelectorAll('.js-plotly-plot')];"
            "const c = plots.find(p => (p.layout.title.text || '').startsWith('Reliability'));"
            "return c.data.map(t => t.name)"
        )
        assert 2 <= len(curves) <= 2 + 3, curves  # the diagonal, the teacher, the picked
        legend = {e.text for e in driver.find_elements(By.CSS_SELECTOR, ".legendtext")}
        assert any(t.startswith("distilled") for t in legend)
        assert any(t.startswith("pruned") or t.startswith("uniform") for t in legend)
        if width == 1400:
            driver.save_screenshot(str(tmp_path / "report.png"))
    assert (tmp_path / "report.png").stat().st_size > 10_000


def _column(driver: Any, header: str) -> int:
    from selenium.webdriver.common.by import By

    headers = [h.text for h in driver.find_elements(By.CSS_SELECTOR, "table.front thead th")]
    return headers.index(header)


def test_the_proxy_check_ranks_within_bands_of_similar_flops() -> None:
    def trial(number: int, flops: float, proxy: float, auc: float) -> optuna.trial.FrozenTrial:
        attrs = {"fidelity": proxy, "flops_ratio": flops, "val_auc": auc, "method": "prune"}
        made = optuna.trial.create_trial(values=[auc], user_attrs=attrs)
        made.number = number
        return made

    # Within each band a higher proxy means a higher AUC; across bands AUC falls with FLOPs.
    trials = [
        trial(i, flops, proxy, 0.5 + flops + proxy / 10)
        for i, (flops, proxy) in enumerate(
            (f, p) for f in (0.05, 0.2, 0.6) for p in (-0.3, -0.2, -0.1)
        )
    ]
    check = proxy_check(trials)
    assert check is not None and check.rho_within == pytest.approx(1.0)
    assert [p[0] for p in check.points] == list(range(9))
    assert proxy_check(trials[:4]).rho_within is None, "too few a band to rank"
    assert proxy_check([]) is None
