"""One teacher per study. A study records its teacher's weight fingerprint (in its `teacher`
user attr) and keeps the weights as its study file `teacher.pt`; every process that runs or
reads the study uses exactly that teacher: from this machine's cache, fetched from the
study's store, or trained again (reproducibly) and checked against the fingerprint. A
teacher that still differs is refused with one line that says what differs and what to do.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
from torch import nn

from medslim.errors import StorageError, UsageError
from medslim.objectives.data import Dataset
from medslim.objectives.determinism import weights_fingerprint
from medslim.objectives.teacher import (
    EpochReport,
    SparsityTraining,
    TeacherScores,
    obtain_teacher,
    teacher_cache_path,
)
from medslim.objectives.training import Recipe
from medslim.search.artifacts import Artifacts
from medslim.search.study_files import fetch_study_file, publish_study_file
from medslim.search.study_format import stored_teacher
from medslim.spaces.blueprints import Blueprint

logger = logging.getLogger(__name__)

TEACHER_FILE = "teacher.pt"
FINGERPRINT = "fingerprint"
SCORE_TOLERANCE = 1e-6
"""Val scores of one teacher agree to this across processes (a study made before teachers
had fingerprints is checked by its scores only)."""
DATA_TOLERANCE = 5e-3
"""The same weights scoring further apart than this were given other val data. Closer gaps
come from arithmetic: a study made on a GPU scores its teacher under bf16 autocast, a reader
on a CPU in float32 (seen: val AUC 0.840017 against 0.839599, resnet18 on BreastMNIST), and
another thread count can round a near-tie the other way."""


@dataclass(frozen=True)
class StudyTeacher:
    """The teacher a process uses, where it came from, and how long getting it took."""

    model: nn.Module
    scores: TeacherScores
    fingerprint: str
    source: str  # trained, loaded (this machine's cache), fetched (the study's store), given
    seconds: float
    file: Path  # its weights on this machine: the cache file, or the --teacher file

    def record(self, sizes: dict[str, Any]) -> dict[str, Any]:
        """The study's `teacher` user attr: scores, sizes, the weights' fingerprint and the
        cache file's name (`teacher_files` finds it by name when the recipe changes later)."""
        cache_file = None if self.source == "given" else self.file.name
        return {
            **asdict(self.scores),
            **sizes,
            FINGERPRINT: self.fingerprint,
            "cache_file": cache_file,
        }


@dataclass(frozen=True)
class TeacherSource:
    """What determines a teacher: the data, model, recipe and seed, or a --teacher file."""

    data: Dataset
    blueprint: Blueprint
    recipe: Recipe
    seed: int
    cache_dir: Path
    teacher_file: Path | None = None
    recorded_file: Path | None = None
    """The cached file a resumed study recorded (`teacher_files`): used instead of today's
    cache key, which changes when the default recipe does."""
    pretrained: bool = False  # trained from the library's weights
    sparsity: SparsityTraining | None = None
    """`--sparsity-training`: the teacher is its sparsity-trained variant."""

    @property
    def cache_file(self) -> Path:
        if self.recorded_file is not None:
            return self.recorded_file
        return teacher_cache_path(
            self.cache_dir,
            self.data,
            self.blueprint,
            self.recipe,
            self.seed,
            self.pretrained,
            self.sparsity,
        )

    def load(
        self, device: torch.device, report: EpochReport | None = None
    ) -> tuple[nn.Module, TeacherScores, bool]:
        recorded = (
            self.recorded_file if self.recorded_file and self.recorded_file.is_file() else None
        )
        return obtain_teacher(
            self.data,
            self.blueprint,
            self.recipe,
            seed=self.seed,
            cache_dir=self.cache_dir,
            device=device,
            teacher_file=self.teacher_file or recorded,
            pretrained=self.pretrained,
            sparsity=None if recorded else self.sparsity,  # a recorded file is the variant
            report=report,
        )


def obtain_study_teacher(
    source: TeacherSource,
    study: optuna.Study | None,
    store: Artifacts,
    device: torch.device,
    *,
    may_train: bool = True,
    report: EpochReport | None = None,
) -> StudyTeacher:
    """The teacher of `study` (None: a study about to be made) on `device`.

    This machine's cached teacher is used when its fingerprint matches the study's; a
    missing or different one is fetched from the study's store; failing that it is trained
    (`may_train`; readers never train; `report` sees its epochs) and must then match.
    Raises `UsageError` otherwise.
    """
    start = time.monotonic()
    expected = recorded_teacher(study)
    fetch = _Fetch(study, store, source)
    cached = source.teacher_file is not None or source.cache_file.is_file()
    if not cached:
        cached = fetch()
    if not may_train and not cached:
        raise UsageError(
            f"the teacher of study {fetch.name!r} is not cached at {source.cache_file}, and "
            f"its store cannot give it ({fetch.failure}); run `medslim run` on this storage "
            "again to rebuild it"
        )
    model, scores, trained = source.load(device, report)
    fingerprint = weights_fingerprint(model)
    problem = teacher_difference(expected, fingerprint, scores)
    if problem and not fetch.done and fetch():
        logger.warning("this machine's teacher differs (%s): using the study's", problem)
        model, scores, trained = source.load(device)
        fingerprint = weights_fingerprint(model)
        problem = teacher_difference(expected, fingerprint, scores)
    if problem:
        raise UsageError(_refusal(problem, fetch, source))
    given = source.teacher_file is not None
    origin = "given" if given else "fetched" if fetch.done else "trained" if trained else "loaded"
    file = source.teacher_file if source.teacher_file is not None else source.cache_file
    return StudyTeacher(model, scores, fingerprint, origin, time.monotonic() - start, file)


class _Fetch:
    """Fetch the study's teacher into this machine's cache, at most once; remembers why it
    could not (no study yet, a --teacher file, no copy in the store, the store failing)."""

    def __init__(self, study: optuna.Study | None, store: Artifacts, source: TeacherSource):
        self.study = study
        self.store = store
        self.source = source
        self.done = False
        self.failure = "the study is not made yet"
        self.name = study.study_name if study is not None else "?"

    def __call__(self) -> bool:
        if self.study is None or self.source.teacher_file is not None:
            return False
        self.failure = f"{self.store.url} holds no copy"
        try:
            self.done = fetch_study_file(
                self.study, self.store, TEACHER_FILE, self.source.cache_file
            )
        except StorageError as error:
            self.failure = str(error)
        return self.done


def recorded_teacher(study: optuna.Study | None) -> dict[str, Any] | None:
    """What the study recorded of its teacher, once it is set up."""
    if study is None:
        return None
    return stored_teacher(study)


def teacher_difference(
    expected: dict[str, Any] | None, fingerprint: str, scores: TeacherScores
) -> str | None:
    """How a teacher differs from the study's record (None: it is the same teacher)."""
    if expected is None:
        return None
    recorded = expected.get(FINGERPRINT)
    if recorded is None:  # a study older than fingerprints: its scores are all there is
        return ", ".join(_score_gaps(scores, expected, SCORE_TOLERANCE)) or None
    if recorded != fingerprint:
        gaps = _score_gaps(scores, expected, SCORE_TOLERANCE)
        return f"weights {fingerprint} vs {recorded}, " + (
            ", ".join(gaps) or "with the same val scores"
        )
    gaps = _score_gaps(scores, expected, DATA_TOLERANCE)
    return f"the same weights, but {', '.join(gaps)}: the data differs" if gaps else None


def _score_gaps(scores: TeacherScores, expected: dict[str, Any], tolerance: float) -> list[str]:
    return [
        f"val {name[4:].upper()} {getattr(scores, name):.6f} vs {expected[name]:.6f}"
        for name in ("val_auc", "val_acc")
        if name in expected and abs(getattr(scores, name) - expected[name]) > tolerance
    ]


def _refusal(problem: str, fetch: _Fetch, source: TeacherSource) -> str:
    if source.teacher_file is not None:
        return (
            f"teacher file {source.teacher_file} differs from study {fetch.name!r}'s teacher "
            f"({problem}); use the file the study was made with"
        )
    return (
        f"this machine's teacher differs from study {fetch.name!r}'s ({problem}), and the "
        f"study's store cannot give it ({fetch.failure}); copy {source.cache_file.name} from "
        f"the machine that made the study into {source.cache_dir}, or make the study with "
        "--artifacts (a shared folder or s3://bucket/prefix) so that every machine fetches it"
    )


def publish_teacher(study: optuna.Study, store: Artifacts, teacher: StudyTeacher) -> None:
    """Keep the teacher's weights in the study's store, for machines without it."""
    publish_study_file(study, store, teacher.file, TEACHER_FILE)


def describe_teacher(teacher: StudyTeacher) -> str:
    """One log line: where the teacher came from, how long that took, and its scores."""
    return (
        f"teacher {teacher.source} in {teacher.seconds:.1f} s: val AUC "
        f"{teacher.scores.val_auc:.4f}, val ACC {teacher.scores.val_acc:.4f} "
        f"(weights {teacher.fingerprint})"
    )
