"""The CLI end to end on breast-cancer, on a real SQLite file."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import torch

from medslim.search.cli import main
from medslim.search.records import trial_record

FAST = ["--teacher-epochs", "20", "--epochs", "1", "--no-progress", "--baselines", "3"]


def _run(tmp_path: Path, *extra: str, trials: int = 5) -> int:
    storage = f"sqlite:///{tmp_path / 'm.db'}"
    return main(["run", "--storage", storage, "--trials", str(trials), *FAST, *extra])


@pytest.mark.e2e
def test_run_then_pareto_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(tmp_path) == 0
    out = capsys.readouterr().out
    assert "front chosen on the validation split" in out
    assert main(["pareto", "--json", "--storage", f"sqlite:///{tmp_path / 'm.db'}"]) == 0
    front = json.loads(capsys.readouterr().out)
    assert {"val_auc", "val_acc", "flops"} <= set(front["teacher"])
    assert front["front"], "the front is empty"
    for member in front["front"]:
        assert {"trial", "val_auc", "val_acc", "flops", "flops_ratio", "params"} <= set(member)
        assert 0 < member["flops_ratio"] <= 1.0
        assert member["method"] == "prune"
    study = optuna.load_study(study_name=front["study"], storage=f"sqlite:///{tmp_path / 'm.db'}")
    assert study.metric_names == ["val_auc", "val_acc", "flops"]
    baselines = [t for t in study.trials if t.user_attrs.get("baseline") == "uniform"]
    assert [t.user_attrs["baseline_ratio"] for t in baselines] == [0.3, 0.6, 0.9]
    assert all(
        set(trial_record(t)["plan"]["ratios"].values()) == {r}
        for t, r in zip(baselines, (0.3, 0.6, 0.9), strict=True)
    ), "a uniform baseline prunes every group at its ratio"
    units = set(study.user_attrs["units"])
    assert all(set(trial_record(t)["plan"]["ratios"]) == units for t in study.trials)
    assert {"test_auc", "test_acc"} <= set(study.user_attrs["teacher"])


@pytest.mark.e2e
def test_resume_continues_to_the_requested_total(tmp_path: Path) -> None:
    assert _run(tmp_path, trials=4) == 0
    storage = f"sqlite:///{tmp_path / 'm.db'}"
    (name,) = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    first = {
        t.number: t.params for t in optuna.load_study(study_name=name, storage=storage).trials
    }
    assert _run(tmp_path, trials=7) == 0
    trials = optuna.load_study(study_name=name, storage=storage).trials
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 7
    assert {t.number: t.params for t in trials if t.number in first} == first
    assert len(list((tmp_path / ".medslim" / "teachers").glob("*.pt"))) == 1


@pytest.mark.e2e
def test_interrupted_study_keeps_its_trials_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import medslim.search.pruning_trials as study_module

    calls = {"n": 0}
    originals = {
        name: getattr(study_module, name) for name in ("evaluate_pruning", "evaluate_candidates")
    }

    def interrupting(name: str):  # the third trial, baseline or screened, is interrupted
        def evaluate(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt
            return originals[name](*args, **kwargs)

        return evaluate

    for function in originals:
        monkeypatch.setattr(study_module, function, interrupting(function))
    assert _run(tmp_path, trials=6) == 130
    assert "run the same command again to resume" in capsys.readouterr().err
    storage = f"sqlite:///{tmp_path / 'm.db'}"
    (name,) = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    states = [t.state for t in optuna.load_study(study_name=name, storage=storage).trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 2
    for function, original in originals.items():
        monkeypatch.setattr(study_module, function, original)
    assert _run(tmp_path, trials=6) == 0
    states = [t.state for t in optuna.load_study(study_name=name, storage=storage).trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 6


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "nosuchdata"], "breast-cancer"),
        (["--dataset", "missing.npz"], "missing.npz"),
        (["--sampler", "annealing"], "valid samplers"),
        (["--sampler", "cmaes"], "one objective"),
        (["--criterion", "magic"], "valid criteria"),
        (["--model", "vgg"], "valid models"),
        (["--model", "resnet8"], "the model takes 2-D images"),
        (["--trials", "0"], "--trials"),
        (["--trials", "-3"], "--trials"),
        (["--workers", "0"], "--workers"),
        (["--workers", "2", "--storage", "sqlite:///:memory:"], "cannot be shared"),
        (["--heartbeat", "0"], "--heartbeat"),
        (["--objectives", "val_auc,speed"], "unknown objective"),
        (["--storage", "notaurl"], "not a URL"),
        (["--storage", "nosuchdb://x"], "cannot open storage"),
        (["--teacher", "nofile.pt"], "nofile.pt"),
        (["--teacher", "WRONG_TEACHER"], "does not fit --model mlp"),
        (["--max-ratio", "1.5"], "max-ratio"),
        (["--device", "tpu"], "unknown device"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    storage = ["--storage", f"sqlite:///{tmp_path / 'm.db'}"]
    wrong_teacher = tmp_path / "wrong.pt"  # a real state dict, of another model
    torch.save(torch.nn.Linear(3, 2).state_dict(), wrong_teacher)
    args = [str(wrong_teacher) if a == "WRONG_TEACHER" else a for a in args]
    assert main(["run", *storage, *FAST, *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "m.db").exists(), "the storage was touched before the refusal"
    assert not (tmp_path / ".medslim").exists(), "work (a teacher) started before the refusal"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--study", "nosuch"], "no study 'nosuch'"),
        (["--threads", "0"], "--threads"),
        (["--storage", "notaurl"], "not a URL"),
    ],
)
def test_bad_worker_input_is_one_line_and_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    storage = f"sqlite:///{tmp_path / 'm.db'}"
    optuna.create_study(study_name="other", storage=storage)
    assert main(["worker", "--storage", storage, *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


@pytest.mark.e2e
def test_changed_config_under_the_same_study_name_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(tmp_path, "--study", "s", trials=2) == 0
    assert _run(tmp_path, "--study", "s", "--max-ratio", "0.5", trials=3) == 2
    assert "max_ratio: 0.9 → 0.5" in capsys.readouterr().err
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'm.db'}")
    assert len(study.trials) == 2 and study.user_attrs["config"]["max_ratio"] == 0.9
    assert _run(tmp_path, "--study", "s", "--max-ratio", "0.5", "--force-config", trials=3) == 0


@pytest.mark.e2e
def test_unstructured_run_reports_sparse_flops(tmp_path: Path) -> None:
    assert _run(tmp_path, "--pruning", "unstructured", "--criterion", "lamp", trials=4) == 0
    storage = f"sqlite:///{tmp_path / 'm.db'}"
    (name,) = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    trials = optuna.load_study(study_name=name, storage=storage).trials
    assert all(trial_record(t)["sparse_flops"] < trial_record(t)["flops"] for t in trials)


@pytest.mark.e2e
def test_a_run_without_trials_publishes_the_data_kinds_default_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import medslim.search.pruning_trials as study_module
    from medslim.search.study_format import TARGET_ATTR

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(study_module, "evaluate_pruning", interrupt)  # the first baseline
    storage = f"sqlite:///{tmp_path / 't.db'}"
    run = ["run", "--storage", storage, "--teacher-epochs", "5", "--baselines", "2"]
    assert main(run) == 130
    assert "target 200" in capsys.readouterr().err  # the tabular default, not "None"
    (name,) = optuna.get_all_study_names(storage)
    assert optuna.load_study(study_name=name, storage=storage).user_attrs[TARGET_ATTR] == 200
