"""`--screen`: candidates whose pruned, un-fine-tuned proxy is beaten by an earlier one stop
before fine-tuning; the rest are scored as usual."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from medslim.objectives.data import load_dataset
from medslim.objectives.evaluate import Budget, prune_model
from medslim.objectives.metrics import flops_by_module
from medslim.objectives.training import Recipe
from medslim.search.cli import main
from medslim.search.records import trial_record
from medslim.search.screening import PROXY_KEY, Proxy
from medslim.spaces.families import build_model, get_preset
from medslim.spaces.sparsity import PruningPlan

FAST = ["--teacher-epochs", "20", "--epochs", "1", "--baselines", "3"]


def test_a_proxy_beats_another_only_with_no_more_flops_and_more_than_the_margin() -> None:
    other = Proxy(val_auc=0.90, flops=1000)
    assert Proxy(0.93, 1000).beats(other, margin=0.02)
    assert not Proxy(0.92, 1000).beats(other, margin=0.02)  # within the margin
    assert not Proxy(0.99, 1001).beats(other, margin=0.02)  # more FLOPs
    assert not other.beats(other, margin=0.0)


@pytest.mark.parametrize("steps", [1, 3])
def test_the_screen_sees_the_fully_pruned_model_once_before_its_last_fine_tune(
    steps: int,
) -> None:
    data = load_dataset("breast-cancer", seed=0)
    torch.manual_seed(0)
    teacher = build_model(get_preset("mlp"), data.input_shape, data.n_outputs).eval()
    units = ["body.0", "body.4", "body.8"]
    plan = PruningPlan({u: 0.5 for u in units}, "l1", "structured", iterative_steps=steps)
    seen: list[tuple[int, torch.Tensor]] = []

    def screen(model: torch.nn.Module) -> None:
        flops = sum(flops_by_module(model, data.input_shape).values())
        seen.append((flops, model.head.weight.detach().clone()))

    budget = Budget(finetune=Recipe(epochs=1))
    model = prune_model(teacher, plan, data, budget, screen=screen)
    final_flops = sum(flops_by_module(model, data.input_shape).values())
    assert [flops for flops, _ in seen] == [final_flops]
    assert not torch.equal(seen[0][1], model.head.weight), "fine-tuning ran after the screen"


def _trials(storage: str) -> list[optuna.trial.FrozenTrial]:
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage).trials


@pytest.mark.e2e
def test_screened_out_candidates_are_beaten_by_an_earlier_proxy_and_cost_no_trial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = f"sqlite:///{tmp_path / 'screen.db'}"
    assert main(["run", "--storage", storage, "--trials", "14", "--screen", "0", *FAST]) == 0
    trials = _trials(storage)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    screened = [t for t in trials if t.state == TrialState.PRUNED]
    assert len(complete) == 14, "the target counts fine-tuned trials only"
    assert screened, "with margin 0 some of the sampled candidates lose to earlier ones"
    assert all(t.user_attrs.get("baseline") != "uniform" for t in screened)
    assert f"screening stopped {len(screened)} candidates" in capsys.readouterr().err

    def proxy(trial: optuna.trial.FrozenTrial) -> Proxy:
        return Proxy(**trial_record(trial)[PROXY_KEY])

    def earlier(trial: optuna.trial.FrozenTrial) -> list[Proxy]:
        return [
            proxy(t)
            for t in trials
            if t.state != TrialState.FAIL and t.datetime_complete < trial.datetime_start
        ]

    for trial in screened:
        assert "val_auc" not in trial_record(trial), "a screened trial is not fine-tuned"
        assert any(p.beats(proxy(trial), 0.0) for p in earlier(trial))
    for trial in complete:
        assert trial_record(trial)["flops"] >= proxy(trial).flops  # same structure
        if trial.user_attrs.get("baseline") != "uniform":
            assert not any(p.beats(proxy(trial), 0.0) for p in earlier(trial))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--screen", "2"], "--screen margin"),
        (["--screen", "--cv", "3"], "neither --cv"),
        (["--screen", "--method", "distill"], "neither --cv"),
    ],
)
def test_bad_screen_flags_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    storage = f"sqlite:///{tmp_path / 'bad.db'}"
    assert main(["run", "--storage", storage, *args, *FAST]) == 2
    assert message in capsys.readouterr().err
