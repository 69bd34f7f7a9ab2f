"""A study stored in the oldest shape medslim still reads comes through `study_format` in
today's shape, in a real SQLite storage, and nothing is written back."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from medslim.errors import UsageError
from medslim.search import acceptance
from medslim.search.config import ADDED_LATER, ResolvedConfig, StudyConfig
from medslim.search.study_format import (
    OFFSET_PREFIX_ATTR,
    TEST_FIRST_READ_ATTR,
    UNRECORDED_READ,
    UPGRADES,
    stored_config,
    stored_offset_prefix,
    study_attrs,
    upgraded,
)
from medslim.spaces.sparsity import OFFSET_PREFIX


def _today() -> dict[str, object]:
    resolved = {"model": "resnet8", "kd": True, "epochs": 1, "teacher_epochs": 10}
    resolved |= {"student_epochs": 3, "trials": 30, "study": "x", "round_to": 1}
    resolved |= {"sampler": "tpe", "allocations": ("screened",)}
    defaults = StudyConfig(dataset="pneumoniamnist").__dict__
    return ResolvedConfig(**{**defaults, **resolved}).stored()


def _study(tmp_path: Path, name: str, attrs: dict[str, object]) -> optuna.Study:
    study = optuna.create_study(study_name=name, storage=f"sqlite:///{tmp_path / 'm.db'}")
    for key, value in attrs.items():
        study.set_user_attr(key, value)
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / 'm.db'}")


def test_the_oldest_stored_shape_reads_in_todays_shape(tmp_path: Path) -> None:
    today = _today()
    oldest = {k: v for k, v in today.items() if k not in ADDED_LATER}
    # Before settings were added, before offsets were named `offset.`, and with test scores
    # cached before medslim recorded when the test split was first read.
    study = _study(tmp_path, "old", {"config": oldest, "test.teacher": {"val_auc": 0.9}})
    config = stored_config(study)
    assert config is not None and set(config) == set(today)
    assert config == {**today, **ADDED_LATER}  # each missing setting at what it ran with
    assert stored_offset_prefix(study) == "sparsity."
    attrs = study_attrs(study)
    assert acceptance.test_first_read(attrs) == UNRECORDED_READ
    with pytest.raises(UsageError, match="test split read"):
        acceptance.check_criteria(study, "auc=-0.05")  # now they would not be fixed in advance
    assert upgraded(attrs) == attrs  # today's shape is a fixed point of every step
    stored = optuna.load_study(study_name="old", storage=f"sqlite:///{tmp_path / 'm.db'}")
    assert OFFSET_PREFIX_ATTR not in stored.user_attrs  # read only, never written back
    assert TEST_FIRST_READ_ATTR not in stored.user_attrs
    assert stored.user_attrs["config"] == oldest


def test_a_study_of_today_reads_as_stored(tmp_path: Path) -> None:
    today = _today()
    attrs = {"config": today, OFFSET_PREFIX_ATTR: OFFSET_PREFIX, TEST_FIRST_READ_ATTR: "t"}
    study = _study(tmp_path, "new", attrs)
    assert study_attrs(study) == attrs and stored_config(study) == today
    assert stored_offset_prefix(study) == OFFSET_PREFIX
    assert [step.__doc__ for step in UPGRADES if not step.__doc__] == []  # each says what
