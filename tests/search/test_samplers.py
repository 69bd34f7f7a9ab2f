"""Every registered sampler through one contract: a short study with both methods (so the
space is conditional) finishes its trials, none FAIL, and the sampler proposed most of them."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from medslim.errors import UsageError
from medslim.search.config import StudyConfig
from medslim.search.loop import run_trials
from medslim.search.records import trial_record
from medslim.search.samplers import SAMPLERS, make_sampler, sampler_names
from medslim.search.session import prepare

TRIALS = 12  # past the 10 start-up trials of TPE and GP, so their models run too


@pytest.mark.e2e
@pytest.mark.parametrize("name", sampler_names())
def test_every_sampler_runs_a_conditional_study(tmp_path: Path, name: str) -> None:
    objectives = (
        ("val_auc", "val_acc", "flops") if SAMPLERS[name].multi_objective else ("val_auc",)
    )
    config = StudyConfig(
        storage=f"sqlite:///{tmp_path / 's.db'}",
        sampler=name,
        objectives=objectives,
        method="both",
        trials=TRIALS,
        baselines=1,
        teacher_epochs=5,
        epochs=1,
        student_epochs=2,
    )
    session = prepare(config)
    run_trials(session, progress=False)
    trials = session.study.trials
    assert sum(t.state == TrialState.COMPLETE for t in trials) == TRIALS
    assert not [t.user_attrs.get("fail_reason") for t in trials if t.state == TrialState.FAIL]
    sampled = [t for t in trials if "fixed_params" not in t.system_attrs]
    assert len(sampled) >= TRIALS - 4, "the enqueued seeds are 1 baseline and 3 students"
    done = [t for t in sampled if t.state == TrialState.COMPLETE]
    assert {trial_record(t)["method"] for t in done} <= {"prune", "distill"}


@pytest.mark.parametrize("name", sampler_names())
def test_every_sampler_builds_with_a_seed(name: str) -> None:
    sampler = make_sampler(name, 1, seed=3)
    assert isinstance(sampler, optuna.samplers.BaseSampler)


def test_a_single_objective_sampler_refuses_several_objectives() -> None:
    single = [name for name, entry in SAMPLERS.items() if not entry.multi_objective]
    assert single, "cmaes is registered as single-objective"
    with pytest.raises(UsageError, match="one objective only"):
        make_sampler(single[0], 3, seed=0)
