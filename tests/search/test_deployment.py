"""Deployment: a study that quantizes (`quantize=search`), measures latency and bounds the
file size has both precisions among its trials, keeps each trial's measured ONNX file,
scores int8 trials as that file, re-scores and exports exactly it; and without the onnx
extra a run is refused in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from optuna.trial import TrialState

from medslim.objectives.evaluate import split_scores
from medslim.objectives.onnx_models import OnnxModule
from medslim.search.api import StoredStudy
from medslim.search.config import StudyConfig
from medslim.search.inspection.front_table import front_table, render_text
from medslim.search.inspection.pareto import compute_front
from medslim.search.inspection.rescore import member_model
from medslim.search.inspection.verdict import NonInferiority
from medslim.search.loop import run_trials
from medslim.search.records import trial_record
from medslim.search.session import prepare
from medslim.search.stored import StudyRef
from medslim.search.trial_models import load_trial_onnx

pytest.importorskip("onnxruntime")


def test_a_quantize_search_study_deploys_both_precisions_as_measured(tmp_path: Path) -> None:
    config = StudyConfig(
        storage=f"sqlite:///{tmp_path / 'm.db'}",
        method="prune,lowrank",
        quantize="search",
        objectives=("val_auc", "latency_ms"),
        max_size=0.9,
        trials=4,
        baselines=2,
        teacher_epochs=5,
        epochs=1,
        latency_rounds=10,
    )
    session = prepare(config)
    run_trials(session, progress=False)
    study = session.study
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 4
    records = {t.number: trial_record(t) for t in done}
    assert {r["precision"] for r in records.values()} == {"fp32", "int8"}
    assert {r["method"] for r in records.values()} == {"prune", "lowrank"}
    teacher_size = study.user_attrs["deployment"]["teacher_size_bytes"]
    ref = StudyRef(study, config.storage, session.storage)
    for trial in done:
        record = records[trial.number]
        assert trial.params["precision"] == record["precision"]
        data = load_trial_onnx(ref, trial)
        assert data is not None and len(data) == record["size_bytes"]
        assert trial.constraints == {"max_size": pytest.approx(len(data) - 0.9 * teacher_size)}
        assert trial.values[1] == pytest.approx(record["latency_ms"], rel=1e-2)
        assert record["latency_ratio"] > 0 and record["latency_spread"] >= 0
        if record["precision"] == "int8":  # scored on val as the int8 file
            auc, _ = split_scores(OnnxModule(data), session.data.val, session.data.task)
            assert record["val_auc"] == round(auc, 4) and "fp32_val_auc" in record
            assert len(data) < record["size_ratio"] * teacher_size + 1
            assert isinstance(member_model(ref, trial, refined=False), OnnxModule)
            assert isinstance(StoredStudy(ref).model(trial.number), OnnxModule)  # not refined
    int8 = next(n for n, r in records.items() if r["precision"] == "int8")
    out = tmp_path / "int8.onnx"
    check = StoredStudy(ref).export(int8, out, format="onnx")
    assert check is not None and check.measured and check.precision == "int8"
    assert out.read_bytes() == load_trial_onnx(ref, study.trials[int8])
    front = compute_front(study)
    table = front_table(front, None, NonInferiority(), None, storage=config.storage)
    assert table.deployed
    assert [row.precision for row in table.rows[1:]] == [m.precision for m in front.members]
    assert " prec " in render_text(table).splitlines()[0] + " "


def test_quantizing_without_the_onnx_extra_is_one_line_naming_it(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['onnxruntime'] = None; "
        "from medslim.search.cli import main; "
        "sys.exit(main(['run', '--quantize', 'int8', '--storage', 'sqlite:///x.db']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "--quantize int8 needs onnx and onnxruntime: pip install 'medslim[onnx]'" in done.stderr
    assert not (tmp_path / "x.db").exists()
