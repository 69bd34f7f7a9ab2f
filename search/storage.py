"""Optuna storages from a URL: SQLite by default, any RDB URL, or a journal file."""

from __future__ import annotations

from pathlib import Path

import optuna
import platformdirs
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from spaces.errors import UsageError

JOURNAL_SUFFIXES = (".log", ".jsonl", ".journal")


def open_storage(url: str) -> BaseStorage:
    """A storage for `url`; a journal file for a path ending in .log/.jsonl/.journal."""
    if "://" not in url:
        if url.endswith(JOURNAL_SUFFIXES):
            return JournalStorage(JournalFileBackend(url))
        raise UsageError(
            f"storage {url!r} is not a URL: use e.g. sqlite:///medslim.db, "
            "postgresql://user:pass@host/db, or a journal file path ending in .log"
        )
    engine_kwargs = {}
    if url.startswith("sqlite"):
        # Wait for a busy database instead of failing when several workers write at once.
        engine_kwargs = {"connect_args": {"timeout": 60}}
    try:
        return RDBStorage(url, engine_kwargs=engine_kwargs)
    except Exception as error:  # sqlalchemy raises several types for a bad URL or driver
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UsageError(f"cannot open storage {url!r}: {reason}") from None


def storage_dir(url: str) -> Path:
    """Where files that belong with a study live: beside a SQLite/journal file, else the cache."""
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        return Path(url.removeprefix("sqlite:///")).resolve().parent / ".medslim"
    if "://" not in url:
        return Path(url).resolve().parent / ".medslim"
    return Path(platformdirs.user_cache_dir("medslim"))


def study_names(storage: BaseStorage) -> list[str]:
    return [s.study_name for s in optuna.get_all_study_summaries(storage)]
