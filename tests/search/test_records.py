"""How a trial's result is stored (scalar attrs the dashboard can sort) and read back, for
new trials and for studies made before: one `result` dict, `sparsity.<group>` offsets."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from medslim.search.cli import main
from medslim.search.config import ADDED_LATER
from medslim.search.records import RESULT_ATTR, flat_record, stored_attrs, trial_record
from medslim.search.stored import open_study
from medslim.search.study_format import LEGACY_OFFSET_PREFIX, OFFSET_PREFIX_ATTR
from medslim.spaces.sparsity import OFFSET_PREFIX, TARGET_PARAM


def test_stored_attrs_are_rounded_scalars_without_dense_duplicates() -> None:
    result = {
        "method": "prune",
        "plan": {"criterion": "l1", "global_ratio": 0.5, "ratios": {"a": 0.51234567, "b": 0.4}},
        "val_auc": 0.987654321,
        "val_acc": 0.9123456,
        "flops": 1000,
        "sparse_flops": 1000,
        "params": 50,
        "nonzero_params": 40,
        "latency_ms": 0.123456,
        "flops_ratio": 0.000123456,
    }
    assert stored_attrs(result) == {  # the method follows from the parameters
        "ratio.a": 0.5123,
        "ratio.b": 0.4,
        "val_auc": 0.9877,
        "val_acc": 0.9123,
        "flops": 1000,
        "params": 50,
        "nonzero_params": 40,  # differs from params: kept
        "latency_ms": 0.123,
        "flops_ratio": 0.0001235,
    }


def test_a_trial_stores_its_result_one_scalar_a_key(tiny_study_dir: Path) -> None:
    ref = open_study(f"sqlite:///{tiny_study_dir / 'm.db'}")
    units = ref.study.user_attrs["units"]
    assert ref.study.user_attrs[OFFSET_PREFIX_ATTR] == OFFSET_PREFIX
    for trial in ref.study.get_trials(states=(TrialState.COMPLETE,)):
        attrs = trial.user_attrs
        assert RESULT_ATTR not in attrs
        assert all(not isinstance(v, dict | list) for v in attrs.values())
        assert {"val_auc", "val_acc", "flops", "flops_ratio", "params"} <= set(attrs)
        assert "method" not in attrs and trial_record(trial)["method"] == "prune"
        assert {f"ratio.{u}" for u in units} <= set(attrs)
        assert set(trial.params) == {TARGET_PARAM}
        record = trial_record(trial)
        assert record["plan"]["ratios"] == {u: attrs[f"ratio.{u}"] for u in units}
        assert record["plan"]["target"] == trial.params[TARGET_PARAM]
        assert record["plan"]["allocation"] == attrs["allocation"]
        assert record["sparse_flops"] == record["flops"]
        assert record["val_auc"] == pytest.approx(trial.values[0], abs=5e-5)
        row = flat_record(trial)
        assert row["ratio." + units[0]] == attrs["ratio." + units[0]] and row["method"] == "prune"


def _legacy_copy(folder: Path) -> str:
    """The tiny study as an older medslim stored it, as study `legacy` in the same storage:
    one `result` dict per trial, offsets named `sparsity.<group>`, no `offset_prefix`."""
    url = f"sqlite:///{folder / 'm.db'}"
    source = open_study(url)
    legacy = optuna.create_study(
        study_name="legacy", storage=source.storage, directions=source.study.directions
    )
    for key, value in source.study.user_attrs.items():
        if key == "config":  # stored before the settings added later existed
            value = {k: v for k, v in value.items() if k not in ADDED_LATER}
        if key != OFFSET_PREFIX_ATTR and not key.startswith("test."):
            legacy.set_user_attr(key, value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        legacy.set_metric_names(["val_auc", "val_acc", "flops"])

    def old_name(name: str) -> str:
        return name.replace(OFFSET_PREFIX, LEGACY_OFFSET_PREFIX, 1)

    for trial in source.study.trials:
        record = trial_record(trial)
        result = {k: record[k] for k in ("method", "plan", "val_auc", "flops", "params")}
        result.update(val_acc=trial.values[1], flops_ratio=record["flops_ratio"])
        legacy.add_trial(
            optuna.trial.create_trial(
                params={old_name(k): v for k, v in trial.params.items()},
                distributions={old_name(k): d for k, d in trial.distributions.items()},
                values=trial.values,
                user_attrs={"baseline": trial.user_attrs.get("baseline"), RESULT_ATTR: result},
                system_attrs=trial.system_attrs,  # keeps the model artifact's meta
            )
        )
    return url


def test_an_older_study_still_opens_rescores_reports_and_resumes_with_its_names(
    tiny_offsets_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], medslim: Any
) -> None:
    folder = shutil.copytree(tiny_offsets_dir, tmp_path / "copy")
    url = _legacy_copy(folder)
    assert main(["pareto", "--storage", url, "--study", "legacy", "--no-test"]) == 0
    table = capsys.readouterr().out
    assert "g=0." in table and " l1 [" in table  # criterion from the config, ratios in order
    assert main(["pareto", "--json", "--storage", url, "--study", "legacy"]) == 0
    front = json.loads(capsys.readouterr().out)["front"]
    assert front and all("test_auc" in m and "verdict" in m for m in front)
    out = tmp_path / "legacy.html"
    assert main(["report", "--storage", url, "--study", "legacy", "--out", str(out)]) == 0
    assert "offset." in out.read_text(encoding="utf-8")  # importances name what they are
    capsys.readouterr()
    # Resuming keeps the parameter names its trials have, so its sampler sees one space.
    resumed = ["run", "--storage", url, "--study", "legacy", "--trials", "7", *medslim.TINY]
    assert main(resumed) == 0
    study = optuna.load_study(study_name="legacy", storage=url)
    new = [t for t in study.trials if t.number >= 5]
    assert len(new) == 2 and all(
        not any(k.startswith(OFFSET_PREFIX) for k in t.params) for t in new
    )
    assert all(
        any(k.startswith(LEGACY_OFFSET_PREFIX) and k != "sparsity.global" for k in t.params)
        for t in new
    )
