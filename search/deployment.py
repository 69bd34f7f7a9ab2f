"""The deployment stage of a trial: its fine-tuned model exported to ONNX, kept fp32 or
quantized (`methods.precision`), scored in onnxruntime on val where that changes its
outputs, and measured: the file's size, and its latency beside the teacher's in the same
process (batch 1 and `latency_batch`, warm-up, rounds, medians after outlier rejection).

Runs when a study quantizes, optimises `size_bytes` or `latency_ms`, or bounds either.
The measured file is kept as the trial's artifact `trial-N.onnx`: what `export` writes
and `pareto` re-scores.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import optuna
from torch import nn

from medslim.objectives.data import Dataset
from medslim.objectives.evaluate import split_scores
from medslim.objectives.onnx_latency import RANKABLE_SPREAD, Timing, side_by_side
from medslim.objectives.onnx_models import OnnxModule, onnx_session, to_onnx
from medslim.objectives.quantize import QuantSettings, calibration_inputs
from medslim.search.config import StudyConfig
from medslim.search.methods.precision import (
    FP32,
    PRECISION_PARAM,
    PRECISIONS,
    Calibration,
    Converted,
    Precision,
)
from medslim.search.session import Session
from medslim.search.study_format import DEPLOYMENT_ATTR

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deployed:
    """A trial's measured file and what its record keeps of it."""

    data: bytes
    record: dict[str, Any]


class Deployment:
    """One process's deployment stage: the teacher's session, the calibration sample."""

    def __init__(self, session: Session) -> None:
        config = session.config
        self.session = session
        self.example = session.data.train.batch(slice(0, 1)).cpu()
        teacher = to_onnx(session.teacher, self.example)
        self.teacher_size = len(teacher)
        self.teacher_session = onnx_session(teacher, config.latency_threads)
        study = session.study
        if DEPLOYMENT_ATTR not in study.user_attrs:
            study.set_user_attr(DEPLOYMENT_ATTR, self.describe())

    def describe(self) -> dict[str, Any]:
        config = self.session.config
        return {
            "teacher_size_bytes": self.teacher_size,
            "runtime": "onnxruntime",
            "threads": config.latency_threads,
            "batch": config.latency_batch,
            "rounds": config.latency_rounds,
            "rankable_spread": RANKABLE_SPREAD,
        }

    @cached_property
    def calibration(self) -> Calibration:
        return study_calibration(self.session.config, self.session.data)

    def precision(self, trial: optuna.Trial) -> Precision:
        """The study's precision, or the trial's choice under `quantize=search`."""
        quantize = self.session.config.quantize
        if quantize == "search":
            names = PRECISIONS.names()
            return PRECISIONS.get(str(trial.suggest_categorical(PRECISION_PARAM, names)))
        return FP32 if quantize == "none" else PRECISIONS.get(quantize)

    def measure(self, trial: optuna.Trial, model: nn.Module, precision: Precision) -> Deployed:
        """Export, convert, score (where the outputs change) and measure `model`."""
        session = self.session
        config = session.config
        converted, record = convert(model, precision, self.calibration, session.data)
        candidate = onnx_session(converted.data, config.latency_threads)
        sessions = [self.teacher_session, candidate]
        shape = session.data.input_shape
        teacher, mine = side_by_side(sessions, shape, rounds=config.latency_rounds)
        batch = side_by_side(
            sessions, shape, batch_size=config.latency_batch, rounds=config.latency_rounds
        )
        if not (teacher.rankable and mine.rankable):
            _say_noisy(trial.number, teacher, mine)
        record.update(
            size_bytes=len(converted.data),
            size_ratio=len(converted.data) / self.teacher_size,
            latency_ms=mine.median_ms,
            latency_spread=mine.spread,
            latency_ratio=mine.median_ms / teacher.median_ms,
            teacher_latency_ms=teacher.median_ms,
            teacher_latency_spread=teacher.spread,
            latency_batch_ms=batch[1].median_ms,
            latency_batch_ratio=batch[1].median_ms / batch[0].median_ms,
        )
        return Deployed(converted.data, record)

    def constraints(self, record: dict[str, Any]) -> dict[str, float]:
        """Each bound's constraint value (≤ 0: satisfied). A bound ≤ 1 is a share of the
        teacher's: its file, or its latency measured in the same turns."""
        config = self.session.config
        found = {}
        if config.max_size is not None:
            share = config.max_size <= 1.0
            limit = config.max_size * self.teacher_size if share else config.max_size
            found["max_size"] = float(record["size_bytes"]) - limit
        if config.max_latency is not None:
            key = "latency_ratio" if config.max_latency <= 1.0 else "latency_ms"
            found["max_latency"] = float(record[key]) - config.max_latency
        return found


def quant_settings(config: StudyConfig) -> QuantSettings:
    return QuantSettings(
        mode=config.quantize_mode,
        weights=config.quantize_weights,
        calibration=config.calibration,
        method=config.calibration_method,
        seed=config.seed,
    )


def study_calibration(config: StudyConfig, data: Dataset) -> Calibration:
    """The study's calibration: its seeded sample of training inputs and its settings."""
    settings = quant_settings(config)
    return Calibration(calibration_inputs(data.train, config.calibration, config.seed), settings)


def convert(
    model: nn.Module, precision: Precision, calibration: Calibration, data: Dataset
) -> tuple[Converted, dict[str, Any]]:
    """`model` exported and converted to `precision`, and what a record keeps of that: the
    precision it got, and where that changes the outputs, its own val scores."""
    example = data.train.batch(slice(0, 1))
    converted = precision.convert(to_onnx(model, example), calibration)
    record: dict[str, Any] = {"precision": converted.precision, **converted.record}
    if converted.changed:
        onnx_model = OnnxModule(converted.data, precision=converted.precision)
        auc, acc = split_scores(onnx_model, data.val, data.task)
        record.update(val_auc=auc, val_acc=acc)
    return converted, record


def _say_noisy(number: int, teacher: Timing, mine: Timing) -> None:
    logger.warning(
        "trial %d: latency too noisy to rank by (spread = interquartile range / median: "
        "%.0f%% for the model, %.0f%% for the teacher beside it; above %.0f%%): the machine "
        "is busy; the ratio to the teacher is the steadier figure",
        number,
        100 * mine.spread,
        100 * teacher.spread,
        100 * RANKABLE_SPREAD,
    )
