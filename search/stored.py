"""A stored study and where it lives: what every reader (re-scoring, report, export, the
Python API) needs, found once from a storage URL and an optional study name."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from medslim.errors import StorageError, UsageError
from medslim.search.artifacts import Artifacts, study_artifacts
from medslim.search.config import ResolvedConfig
from medslim.search.storage import display_url, open_storage, storage_dir, study_names
from medslim.search.study_format import stored_config, target_trials


@dataclass(frozen=True)
class StudyRef:
    """An Optuna study of medslim's, with its storage URL and storage."""

    study: optuna.Study
    url: str
    storage: BaseStorage

    @property
    def name(self) -> str:
        return self.study.study_name

    @property
    def files_dir(self) -> Path:
        """This machine's cache of the study's files (teachers, logits): beside a SQLite or
        journal file, else the user cache."""
        return storage_dir(self.url)

    @cached_property
    def artifacts(self) -> Artifacts:
        """The study's artifact store (models, teacher, logits), as `--artifacts` chose it."""
        return study_artifacts(self.study, self.url)

    def config(self) -> ResolvedConfig:
        """The config the study was run with (an older study's missing settings default);
        its target is the last run's, else the trials it holds."""
        stored = stored_config(self.study)
        if stored is None:
            raise UsageError(f"study {self.name!r} stores no medslim config; was it made by run?")
        target = target_trials(self.study) or max(1, len(self.study.trials))
        return ResolvedConfig.from_stored(stored, storage=self.url, study=self.name, trials=target)

    def finished_trial(self, number: int) -> FrozenTrial:
        """Trial `number`, which must have finished (COMPLETE)."""
        trials = self.study.get_trials(deepcopy=False)
        if 0 <= number < len(trials) and trials[number].state == TrialState.COMPLETE:
            return trials[number]
        finished = [t.number for t in trials if t.state == TrialState.COMPLETE]
        raise UsageError(
            f"no finished trial {number} in study {self.name!r}; "
            f"finished: {', '.join(map(str, finished)) or 'none'}"
        )


def open_study(url: str, name: str | None = None) -> StudyRef:
    """The study `name` in the storage at `url`; without a name, the storage's only study.
    Only reads: a storage that does not exist is an error, never created."""
    if name is not None and not name.strip():
        raise UsageError("--study must be a non-empty name; leave it out for the only study")
    storage = open_storage(url, create=False)
    names = study_names(storage)
    shown = display_url(url)
    if name is None:
        if len(names) != 1:
            listing = ", ".join(names) if names else "none"
            raise StorageError(
                f"{shown} holds {len(names)} studies ({listing}); pick one with --study"
            )
        name = names[0]
    if name not in names:
        raise StorageError(
            f"no study {name!r} in {shown}; studies there: {', '.join(names) or 'none'}"
        )
    return StudyRef(optuna.load_study(study_name=name, storage=storage), url, storage)


def open_any_study(url: str, name: str | None = None) -> StudyRef:
    """Study `name`, or else the storage's first study: what `medslim dashboard` needs to
    find the artifact store beside a storage that may hold several studies."""
    if name is not None:
        return open_study(url, name)
    names = study_names(open_storage(url, create=False))
    if not names:
        raise StorageError(f"{display_url(url)} holds no study yet; run `medslim run` first")
    return open_study(url, names[0])
