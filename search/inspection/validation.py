"""The whole validation of a front, as one call: which criteria judge it (fixed in the study
or given now), its test scores, its robustness to corrupted images when asked for (or when
a criterion needs it), and the table that joins them. `pareto`, `report`, the dashboard
and the model card all start here.

Every setting is checked before the test split is read, so a bad `--accept` or corruption
set name is refused in one line with nothing written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from medslim.errors import UsageError
from medslim.objectives.corruptions import SEVERITIES, choose_set
from medslim.search.acceptance import fixed_criteria, test_first_read
from medslim.search.inspection.classes import positive_class
from medslim.search.inspection.front_table import FrontTable, front_table
from medslim.search.inspection.pareto import compute_front
from medslim.search.inspection.rescore import Rescored, rescore_front
from medslim.search.inspection.robustness import (
    Robustness,
    RobustnessSettings,
    robustness_front,
)
from medslim.search.inspection.scoring import SPECIFICITY_TARGETS, Bootstrap, RescoreSettings
from medslim.search.inspection.verdict import Judging, judging
from medslim.search.stored import StudyRef
from medslim.search.study_format import DATASET_ATTR, stored_dataset, study_attrs


@dataclass(frozen=True)
class ValidationSettings:
    """How a front is judged; every field is a flag of `pareto` and `report`."""

    test: bool = True
    accept: str | None = None
    """Criteria for this command (post hoc when they differ from the study's)."""
    non_inferior_on: str | None = None
    margin: str | float | None = None
    positive_class: str | None = None
    resamples: int = 1000
    robustness: bool = False
    """Score the corrupted test split too (also when a criterion names `@severityN`)."""
    corruptions: str | None = None
    severities: tuple[int, ...] = SEVERITIES
    data_dir: str | Path | None = None

    @property
    def folder(self) -> Path | None:
        return Path(self.data_dir) if self.data_dir is not None else None


def criteria_for(ref: StudyRef, settings: ValidationSettings) -> Judging:
    """The criteria this command judges by, checked against the study's task."""
    attrs = study_attrs(ref.study)
    found = judging(
        fixed_criteria(attrs),
        test_first_read(attrs),
        accept=settings.accept,
        on=settings.non_inferior_on,
        margin=settings.margin,
    )
    found.rule.check_task(attrs.get(DATASET_ATTR, {}).get("task"))
    return found


def validate(ref: StudyRef, settings: ValidationSettings = ValidationSettings()) -> FrontTable:  # noqa: B008
    """The front table with everything `settings` asks for."""
    dataset = stored_dataset(ref.study)
    rule = criteria_for(ref, settings).rule
    severities = tuple(sorted(set(settings.severities) | set(rule.criteria.severities)))
    images = len(dataset.get("input_shape", ())) == 3
    if rule.criteria.severities and not images:
        raise UsageError(
            f"--accept {rule.criteria.text()}: @severityN judges corrupted images; "
            f"{dataset.get('name', 'this data')} is not images"
        )
    robust = settings.test and images and (settings.robustness or bool(rule.criteria.severities))
    if robust:
        choose_set(str(dataset.get("name", "")), settings.corruptions)  # refuse a bad name now
    positive = positive_class(dataset, settings.positive_class)
    front = compute_front(ref.study)
    bootstrap = Bootstrap(settings.resamples)
    rescored: Rescored | None = None
    robustness: Robustness | None = None
    if settings.test and front.members:
        rescore = RescoreSettings(
            bootstrap,
            positive.index if positive else 1,
            specificity_targets=(*SPECIFICITY_TARGETS, *rule.criteria.targets("spec")),
            sensitivity_targets=rule.criteria.targets("sens"),
        )
        rescored = rescore_front(ref, front, rescore, data_dir=settings.folder)
        if robust:
            chosen = RobustnessSettings(settings.corruptions, severities)
            robustness = robustness_front(ref, front, bootstrap, chosen, data_dir=settings.folder)
    return front_table(
        front,
        rescored,
        rule,
        positive,
        storage=ref.url,
        task=dataset.get("task"),
        judging=criteria_for(ref, settings),  # after reading: when the test split was read
        robustness=robustness,
    )
