"""The acceptance criteria a study was made with, and when its test split was first read.

`medslim run --accept ...` stores the criteria (`objectives.acceptance`) in the study's
`acceptance` user attr when the study is made, before any front member meets the test split.
Re-scoring records the moment it first reads the test split (`test_first_read`), so that a
verdict under other criteria can say it is a post-hoc analysis, and since when the test
split could have informed it. Nothing here feeds test scores back into a study's sampler.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import optuna

from medslim.errors import UsageError
from medslim.objectives.acceptance import AcceptanceCriteria
from medslim.search.study_format import ACCEPTANCE_ATTR, TEST_FIRST_READ_ATTR, study_attrs


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def fixed_criteria(attrs: dict[str, Any]) -> tuple[AcceptanceCriteria, str] | None:
    """The criteria the study was made with, and when they were fixed (None: none were)."""
    stored = attrs.get(ACCEPTANCE_ATTR)
    if not isinstance(stored, dict) or not stored.get("criteria"):
        return None
    return AcceptanceCriteria.parse(str(stored["criteria"])), str(stored.get("fixed_at", "?"))


def test_first_read(attrs: dict[str, Any]) -> str | None:
    """When the test split was first read for the front, from attrs in today's shape
    (`study_format.study_attrs`; None: never)."""
    read = attrs.get(TEST_FIRST_READ_ATTR)
    return None if read is None else str(read)


def mark_test_read(study: optuna.Study) -> None:
    """Record the first reading of the test split; later readings leave it as it is."""
    if TEST_FIRST_READ_ATTR not in study.user_attrs:  # as stored, not as upgraded
        study.set_user_attr(TEST_FIRST_READ_ATTR, now())


def check_accept(text: str | None, task: str | None) -> None:
    """Refuse criteria the data's task has no metric or operating point for (before a
    study is made or anything is trained)."""
    if text is not None:
        AcceptanceCriteria.parse(text).check_task(task)


def check_criteria(study: optuna.Study, text: str | None) -> bool:
    """Whether a run's `--accept` is still to be stored in an existing study; refused when
    it differs from the criteria the study fixed, or comes after its test split was read
    (criteria fixed in advance cannot move: judge by others post hoc)."""
    if text is None:
        return False
    criteria = AcceptanceCriteria.parse(text)
    attrs = study_attrs(study)
    stored = fixed_criteria(attrs)
    if stored is not None:
        if not criteria.same_as(stored[0]):
            raise UsageError(
                f"study {study.study_name!r} fixed its acceptance criteria "
                f"{stored[0].text()} on {stored[1]}; they cannot change. Judge by others "
                f"post hoc with: medslim pareto --accept {criteria.text()}"
            )
        return False
    read = test_first_read(attrs)
    if read is not None:
        raise UsageError(
            f"study {study.study_name!r} has had its test split read ({read}), so criteria "
            f"given now are not fixed in advance; judge by them post hoc with: medslim pareto "
            f"--accept {criteria.text()}"
        )
    return True


def fix_criteria(study: optuna.Study, text: str | None) -> None:
    """Store a run's `--accept` in its study (when made, or before its test split is read);
    the same criteria again change nothing."""
    if check_criteria(study, text) and text is not None:
        criteria = AcceptanceCriteria.parse(text)
        study.set_user_attr(ACCEPTANCE_ATTR, {"criteria": criteria.text(), "fixed_at": now()})
