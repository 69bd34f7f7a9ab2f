"""Optuna storages from a URL: SQLite by default, any RDB URL, or a journal file."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import optuna
import platformdirs
import sqlalchemy
from optuna.storages import (
    BaseStorage,
    JournalStorage,
    RDBStorage,
    RetryHeartbeatStaleTrialCallback,
)
from optuna.storages.journal import JournalFileBackend

from medslim.errors import StorageError

JOURNAL_SUFFIXES = (".log", ".jsonl", ".journal")
# A trial whose worker died is failed after this many missed heartbeats, then retried (twice).
GRACE_HEARTBEATS = 3
MAX_RETRY = 2


def check_storage_url(url: str) -> None:
    """Refuse a malformed URL or a missing driver without connecting (nothing is created)."""
    if "://" not in url:
        if not url.endswith(JOURNAL_SUFFIXES):
            raise _not_a_url(url)
        return
    try:
        sqlalchemy.engine.make_url(url).get_dialect()
    except Exception as error:  # sqlalchemy raises several types for a bad URL or driver
        raise _cannot_open(url, error) from error


def open_storage(url: str, *, heartbeat: int | None = None) -> BaseStorage:
    """A storage for `url`; a journal file for a path ending in .log/.jsonl/.journal.

    With `heartbeat` (seconds), an RDB storage records a heartbeat for each running trial, so
    the trial of a killed worker is failed after a grace period and retried by another.
    """
    if "://" not in url:
        if url.endswith(JOURNAL_SUFFIXES):
            return JournalStorage(JournalFileBackend(url))
        raise _not_a_url(url)
    engine_kwargs = {}
    if url.startswith("sqlite"):
        # Wait for a busy database instead of failing when several workers write at once.
        engine_kwargs = {"connect_args": {"timeout": 60}}
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat,
                grace_period=None if heartbeat is None else GRACE_HEARTBEATS * heartbeat,
                heartbeat_stale_trial_callback=(
                    None if heartbeat is None else RetryHeartbeatStaleTrialCallback(MAX_RETRY)
                ),
            )
    except Exception as error:  # sqlalchemy raises several types for a bad URL or driver
        raise _cannot_open(url, error) from error
    if url.startswith("sqlite"):
        _begin_immediate(storage.engine)
    return storage


def _begin_immediate(engine: sqlalchemy.engine.Engine) -> None:
    """Start every SQLite transaction with BEGIN IMMEDIATE (SQLAlchemy's documented recipe),
    on a write-ahead log.

    SQLite ignores SELECT ... FOR UPDATE, so with the default deferred transactions two
    workers can both read a queued trial as WAITING and both run it. Taking the write lock at
    BEGIN makes Optuna's read-then-write steps atomic; the busy timeout queues the waiters.
    """

    def no_driver_transactions(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself
        # WAL with synchronous=NORMAL: a commit no longer waits for a disk sync (Optuna makes
        # ~25 per trial), yet a killed process loses nothing committed; only a power cut may
        # roll back the last trials. A file system without WAL keeps its default journal.
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    def begin(connection: sqlalchemy.engine.Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    sqlalchemy.event.listen(engine, "connect", no_driver_transactions)
    sqlalchemy.event.listen(engine, "begin", begin)
    engine.dispose()  # connections opened before the listeners are replaced by new ones


def _not_a_url(url: str) -> StorageError:
    return StorageError(
        f"storage {url!r} is not a URL: use e.g. sqlite:///medslim.db, "
        "postgresql://user:pass@host/db, or a journal file path ending in .log"
    )


def _cannot_open(url: str, error: Exception) -> StorageError:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return StorageError(f"cannot open storage {display_url(url)!r}: {reason}")


def display_url(url: str) -> str:
    """The URL as it may be printed: the password of a database URL masked."""
    if "://" not in url:
        return url
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # sqlalchemy raises several types for a malformed URL
        return url.split("@")[-1] if "@" in url else url


def storage_dir(url: str) -> Path:
    """Where files that belong with a study live: beside a SQLite/journal file, else the cache."""
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        return Path(url.removeprefix("sqlite:///")).resolve().parent / ".medslim"
    if "://" not in url:
        return Path(url).resolve().parent / ".medslim"
    return Path(platformdirs.user_cache_dir("medslim"))


def study_names(storage: BaseStorage) -> list[str]:
    return [s.study_name for s in optuna.get_all_study_summaries(storage)]
