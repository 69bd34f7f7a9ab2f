"""Every registered method through one contract, in one study of `method=all` on
breast-cancer: its trials finish, store a model that rebuilds to their val scores, and are
described, labelled and drawn by their method; its seeds come first."""

from __future__ import annotations

import pytest
from optuna.trial import TrialState

from medslim.errors import UsageError
from medslim.objectives.data import load_dataset
from medslim.objectives.evaluate import split_scores
from medslim.search.config import StudyConfig
from medslim.search.inspection.pareto import member_of
from medslim.search.inspection.report_figures import STYLES
from medslim.search.loop import run_trials
from medslim.search.methods import METHOD_PARAM, METHODS, study_methods
from medslim.search.records import flat_record, trial_record
from medslim.search.session import prepare
from medslim.search.stored import StudyRef
from medslim.search.trial_models import load_trial_model


@pytest.fixture(scope="module")
def all_methods(tmp_path_factory: pytest.TempPathFactory) -> tuple[StudyRef, list[str]]:
    folder = tmp_path_factory.mktemp("all-methods")
    config = StudyConfig(
        storage=f"sqlite:///{folder / 'm.db'}",
        method="all",
        trials=10,  # the 5 seeds, one trial of each method, one sampled
        baselines=1,
        teacher_epochs=5,
        epochs=1,
        student_epochs=2,
        candidates=2,
    )
    session = prepare(config)
    seeded = [t.system_attrs["fixed_params"][METHOD_PARAM] for t in session.study.trials]
    for name in METHODS.names():  # one trial of each beyond the seeds, whatever is sampled
        session.study.enqueue_trial({METHOD_PARAM: name})
    run_trials(session, progress=False)
    return StudyRef(session.study, config.storage, session.storage), seeded


def test_all_runs_every_registered_method_and_seeds_them_first(
    all_methods: tuple[StudyRef, list[str]],
) -> None:
    ref, seeded = all_methods
    assert study_methods("all") == tuple(METHODS.names())
    assert seeded == ["distill"] * 3 + ["prune", "lowrank"]  # students, then uniform sweeps
    done = ref.study.get_trials(states=(TrialState.COMPLETE,))
    assert {trial_record(t)["method"] for t in done} == set(METHODS.names())
    assert not [
        t.user_attrs.get("fail_reason") for t in ref.study.trials if t.state.name == "FAIL"
    ]


@pytest.mark.parametrize("name", METHODS.names())
def test_each_method_stores_rebuilds_describes_and_draws_its_trials(
    all_methods: tuple[StudyRef, list[str]], name: str
) -> None:
    ref, _ = all_methods
    method = METHODS.get(name)
    assert method.summary and method.title and method.styles
    assert set(method.styles) <= set(STYLES)
    data = load_dataset("breast-cancer", seed=0)
    config = ref.study.user_attrs["config"]
    units = list(ref.study.user_attrs["units"])
    trials = [
        t
        for t in ref.study.get_trials(states=(TrialState.COMPLETE,))
        if trial_record(t)["method"] == name
    ]
    assert trials
    for trial in trials:
        model = load_trial_model(ref, trial)
        auc, _ = split_scores(model, data.val, data.task)
        assert trial_record(trial)["val_auc"] == round(auc, 4)
        member = member_of(trial, config, units)
        assert member.method == name and member.kind in method.styles
        assert member.description and member.summary
        assert flat_record(trial)["method"] == name
    if name in ("lowrank", "prune+lowrank"):  # the rank ratio each layer really got
        assert all(any(k.startswith("rank.") for k in t.user_attrs) for t in trials)


@pytest.mark.parametrize("method", ["lowrank", "prune+lowrank", "all"])
def test_methods_that_choose_a_flops_target_are_refused_in_a_space_of_offsets(
    method: str,
) -> None:
    with pytest.raises(UsageError, match=r"choose a FLOPs target, which --allocations offsets"):
        StudyConfig(method=method, allocations=("offsets",))
    StudyConfig(method="prune", allocations=("offsets",))  # pruning searches offsets
