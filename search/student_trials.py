"""The distillation side of a study (`methods.distill`), and the teacher's soft labels
that students and the fine-tuning of teacher-derived models (`kd`) learn from.

Student trials that cannot be built, or would cost more FLOPs than allowed, are pruned
(`optuna.TrialPruned`) before any training, with the reason in the user attr `rejected`: a
pruned trial has no values, so it never enters a front, NSGA-II and CMA-ES skip it, and
TPE counts it among the bad trials and steers away from it.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from functools import partial

import optuna
from torch import nn

from medslim.objectives.distill import (
    Distiller,
    TeacherSignal,
    evaluate_student,
    logits_path,
    teacher_train_logits,
)
from medslim.objectives.evaluate import Budget, Scores
from medslim.objectives.metrics import count_flops
from medslim.objectives.training import Recipe
from medslim.search.methods.base import Prepared
from medslim.search.records import record_result
from medslim.search.session import Session
from medslim.search.study_files import fetch_study_file, publish_study_file
from medslim.spaces.blueprints import Blueprint, blueprint_from_spec
from medslim.spaces.families import spec_to_dict
from medslim.spaces.students import (
    DistillSettings,
    StudentSpace,
    feature_stages,
    sample_student,
    structural_problem,
)

logger = logging.getLogger(__name__)

KD_FINETUNE = DistillSettings(temperature=4.0, alpha=0.5)
"""The soft-label term `--kd` adds to the fine-tuning of pruned models."""


def teacher_signal(session: Session) -> TeacherSignal:
    """The teacher and its training-split logits, cached next to the teacher's weights and
    kept in the study's store: computed once per study, fetched by other machines."""
    cache = session.files_dir / "teachers"
    path = logits_path(session.teacher, session.data, cache)
    if not path.is_file():
        fetch_study_file(session.study, session.artifacts, path.name, path)
    logits = teacher_train_logits(session.teacher, session.data, cache)
    if path.is_file():  # else they came from this process's memory, kept elsewhere already
        publish_study_file(session.study, session.artifacts, path, path.name)
    stages = feature_stages(session.teacher, session.teacher_blueprint)
    return TeacherSignal(session.teacher, stages, logits)


def kd_finetune_loss(session: Session) -> nn.Module:
    """The fine-tuning loss of pruned models under `--kd`: soft labels from the cache."""
    return Distiller(teacher_signal(session), KD_FINETUNE, session.data.task, augment=False)


class StudentTrials:
    """Sample a student, reject it early, train and score it."""

    def __init__(self, session: Session, budget: Budget, max_flops: float | None) -> None:
        config = session.config
        self.session = session
        self.space = StudentSpace.for_blueprint(session.teacher_blueprint, session.teacher)
        if self.space.feature_weights == (0.0,):
            logger.info(
                "%s has no feature map before its head to match: students learn from its "
                "soft labels only (no feature loss)",
                session.teacher_blueprint.model,
            )
        self.budget = budget
        self.recipe = Recipe(
            epochs=config.student_epochs, batch_size=config.batch_size, lr=config.lr
        )
        self.limits = {"the teacher's": float(session.teacher_flops)}
        if max_flops is not None:
            self.limits["--max-flops"] = max_flops
        self._signal: TeacherSignal | None = None

    def prepare(self, trial: optuna.Trial, screen: object = None) -> Prepared:
        """The trial's student (pruned here, untrained, if unusable) and its training."""
        blueprint, settings = self.sample(trial)
        return Prepared(partial(self.evaluate, blueprint, settings), {}, blueprint)

    def sample(self, trial: optuna.Trial) -> tuple[Blueprint, DistillSettings]:
        """The trial's student and knobs, stored on the trial; pruned if it cannot be used."""
        spec, settings = sample_student(trial, self.space)
        record_result(trial, {"student_spec": spec_to_dict(spec), "distill": asdict(settings)})
        data = self.session.data
        reason = structural_problem(spec, data.input_shape, self.space)
        blueprint = blueprint_from_spec(spec, data.input_shape, data.n_outputs)
        if reason is None:
            reason = self._too_costly(blueprint)
        if reason is not None:
            trial.set_user_attr("rejected", reason)
            raise optuna.TrialPruned(reason)
        return blueprint, settings

    def _too_costly(self, blueprint: Blueprint) -> str | None:
        flops = count_flops(blueprint.build(), blueprint.input_shape)
        for bound, limit in self.limits.items():
            if flops > limit:
                return (
                    f"student needs {flops:,} FLOPs, {flops / limit:.1f}× {bound} {int(limit):,}"
                )
        return None

    def evaluate(
        self, blueprint: Blueprint, settings: DistillSettings, *, seed: int
    ) -> tuple[nn.Module, Scores]:
        if self._signal is None:  # once per process, on the first student
            self._signal = teacher_signal(self.session)
        session = self.session
        return evaluate_student(
            blueprint, settings, self._signal, session.data, self.recipe, self.budget, seed=seed
        )
