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
