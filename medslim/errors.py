"""medslim's error types, under one base. This module imports nothing heavy (no torch), so
the CLI can catch them without paying for torch at start-up."""

from __future__ import annotations


class MedslimError(Exception):
    """Base of every error medslim raises on purpose; the CLI prints it in one line."""


class UsageError(MedslimError, ValueError):
    """Bad user input (a name, a file, a flag); the message says what is wrong and the fix.
    The CLI exits with code 2 and writes nothing to the storage."""


class DataError(UsageError):
    """A dataset that cannot be used as given: a missing, corrupt or inconsistent file."""


class StorageError(UsageError):
    """A storage URL that cannot be opened, or a study that is not in it."""


class DiskFull(StorageError):
    """A write failed for lack of space (the artifact store, the storage file, a cache): the
    study stops at the first one. The message names the path, its free space, what the write
    needed and, once the loop knows it, about what the trials still to run need."""

    def __init__(
        self,
        path: str,
        needed: int | None,
        free: int | None,
        *,
        per_trial: int | None = None,
        trials_left: int = 0,
    ) -> None:
        super().__init__(path, needed, free, per_trial, trials_left)
        self.path = path
        self.needed = needed
        self.free = free
        self.per_trial = per_trial if per_trial is not None else needed
        self.trials_left = trials_left

    def with_trials_left(self, trials: int, per_trial: int | None = None) -> DiskFull:
        """The same failure, saying what the `trials` still to run would need (each about
        `per_trial`, by default what this write needed)."""
        each = self.per_trial if per_trial is None else per_trial
        return DiskFull(self.path, self.needed, self.free, per_trial=each, trials_left=trials)

    def __str__(self) -> str:
        text = f"no space left on the disk of {self.path}"
        if self.free is not None:
            text += f" ({_size(self.free)} free)"
        if self.needed is not None:
            text += f"; this write needed {_size(self.needed)}"
        if self.per_trial is not None and self.trials_left > 0:
            text += (
                f"; the {self.trials_left} trials still to run need about "
                f"{_size(self.per_trial * self.trials_left)} more"
            )
        return (
            f"{text}: free space there (finished trials are kept), then run the same command again"
        )


def _size(count: int) -> str:
    """`512 B`, `12.3 kB`, `4.1 MB`, `2.0 GB`."""
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


class TrainingDiverged(MedslimError, RuntimeError):
    """A loss or a prediction became NaN or infinite. In a trial it is recorded as FAIL and
    the study goes on; for the teacher it becomes a `UsageError` naming `--lr`."""


class ExportMismatch(MedslimError, RuntimeError):
    """An exported model does not reproduce the PyTorch outputs (the CLI exits 1)."""


class StudyInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGINT) during a run: every finished trial is kept, and running the same
    thing again resumes the study. A KeyboardInterrupt, so it stops a notebook cell as one."""

    def __init__(self, study: str, where: str, finished: int) -> None:
        super().__init__(study, where, finished)
        self.study = study
        self.where = where
        self.finished = finished

    def __str__(self) -> str:
        return (
            f"interrupted: {self.finished} finished trials are kept in {self.where} "
            f"(study {self.study}); run the same command again to resume"
        )
