"""Pruned teachers and distilled students in one study, on breast-cancer."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import medslim.objectives.distill as distill
from medslim.errors import UsageError
from medslim.search.config import StudyConfig
from medslim.search.inspection.front_table import front_table, render_text
from medslim.search.inspection.pareto import compute_front
from medslim.search.inspection.verdict import NonInferiority
from medslim.search.loop import run_trials
from medslim.search.methods import STUDENT_CHANCES, STUDENTS_STOPPED_ATTR, students_lost
from medslim.search.records import trial_record
from medslim.search.session import prepare
from medslim.spaces.families import build_model, spec_from_dict

pytestmark = pytest.mark.e2e

FAST = {"teacher_epochs": 20, "epochs": 1, "student_epochs": 3, "baselines": 2}


def _study(tmp_path: Path, **changes) -> optuna.Study:
    config = StudyConfig(storage=f"sqlite:///{tmp_path / 'm.db'}", **{**FAST, **changes})
    session = prepare(config)
    run_trials(session, progress=False)
    return session.study


def test_both_yields_pruned_and_distilled_trials_on_one_front(tmp_path: Path) -> None:
    study = _study(tmp_path, method="both", trials=8)
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 8
    assert {trial_record(t)["method"] for t in done} == {"prune", "distill"}
    assert all(t.params["method"] == trial_record(t)["method"] for t in done)
    seeds = [t for t in study.trials if t.user_attrs.get("baseline") == "scaled"]
    assert [spec_from_dict(trial_record(t)["student_spec"]).hidden for t in seeds] == [
        (128, 64, 32),
        (64, 32, 16),
        (32, 16, 8),
    ]
    for trial in done:
        if trial_record(trial)["method"] == "distill":
            assert not any(k.startswith("sparsity.") for k in trial.params)
            model = build_model(spec_from_dict(trial_record(trial)["student_spec"]), (30,), 2)
            assert sum(p.numel() for p in model.parameters()) == trial_record(trial)["params"]
        else:
            assert not any(k.startswith(("student.", "distill.")) for k in trial.params)
    front = compute_front(study)
    assert {m.method for m in front.members} <= {"prune", "distill"}
    table = render_text(front_table(front, None, NonInferiority(), None, storage="sqlite://"))
    for member in front.members:
        assert member.as_json()["method"] == member.method
        assert member.kind == {"prune": "uniform" if member.baseline else "pruned"}.get(
            member.method, "distilled"
        )
        if member.method == "distill":
            assert "mlp " in table and "T=" in table and " distilled " in table


def test_students_above_the_flops_bound_are_pruned_before_training(tmp_path: Path) -> None:
    study = _study(tmp_path, method="distill", trials=2, max_flops=0.1, sampler="nsga2")
    rejected = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert rejected, "the 1/2-width seed exceeds 10% of the teacher's FLOPs"
    assert all("--max-flops" in t.user_attrs["rejected"] for t in rejected)
    assert all("val_auc" not in trial_record(t) for t in rejected)
    assert not any(t.state == TrialState.FAIL for t in study.trials)


@pytest.mark.parametrize("sampler", ["cmaes", "nsga2"])
def test_single_objective_structure_search_runs(tmp_path: Path, sampler: str) -> None:
    study = _study(
        tmp_path,
        method="both",
        trials=6,
        objectives=("val_auc",),
        sampler=sampler,
        max_flops=0.5,
        baselines=1,
    )
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 6
    assert not any(t.state == TrialState.FAIL for t in study.trials)


def test_kd_fine_tunes_pruned_models_on_soft_labels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(distill, "_LOGITS", {})  # as in a fresh process
    study = _study(tmp_path, kd=True, trials=2)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert list((tmp_path / ".medslim" / "teachers").glob("logits-*.pt"))


def test_unknown_method_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown method 'quantize'.*prune, distill.*all, both"):
        StudyConfig(method="quantize")
    with pytest.raises(UsageError, match=r"unknown method 'distil' \(did you mean 'distill'\?\)"):
        StudyConfig(method="prune,distil")


def test_students_stop_being_proposed_once_enough_never_reach_the_front() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])

    def add(method: str, auc: float, flops: float) -> None:
        study.add_trial(
            optuna.trial.create_trial(values=[auc, flops], user_attrs={"method": method})
        )

    add("prune", 0.95, 10.0)
    add("prune", 0.90, 2.0)
    for index in range(STUDENT_CHANCES - 1):
        add("distill", 0.6, 3.0 + index)  # each beaten by the pruned model at 2.0 FLOPs
    assert not students_lost(study), "too few students yet to tell"
    add("distill", 0.7, 5.0)
    assert students_lost(study)
    assert study.user_attrs[STUDENTS_STOPPED_ATTR] == STUDENT_CHANCES + 2
    add("distill", 0.8, 1.0)  # one student on the front: students stay in the search
    assert not students_lost(study)
