"""Optuna storages from a URL: SQLite by default, any RDB URL, or a journal file.

Writers (`run`, `worker`) may create a storage; readers (`pareto`, `report`, `export`,
`dashboard`) open only one that exists. A URL is only ever shown through `display_url`, and
error text through `redact`, so a database password never reaches a terminal or a log.
"""

from __future__ import annotations

import random
import re
import sqlite3
import time
import warnings
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

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

from medslim.errors import DiskFull, StorageError
from medslim.files import disk_full

JOURNAL_SUFFIXES = (".log", ".jsonl", ".journal")
IN_MEMORY = ("sqlite://", "sqlite:///:memory:")
# A trial whose worker died is failed after this many missed heartbeats, then retried (twice).
GRACE_HEARTBEATS = 3
MAX_RETRY = 2
# Two first runs on a new database both create its tables; the loser retries this often.
SCHEMA_ATTEMPTS = 6
_CONCURRENT_SCHEMA = re.compile(r"already exists|UNIQUE constraint|duplicate key", re.I)
# The driver SQLAlchemy picks for a URL without one, and the extra that installs it.
_DRIVER_HINTS = {
    "postgresql": "pip install 'medslim[postgres]' (psycopg), or write postgresql+psycopg2://",
    "mysql": "pip install pymysql and write mysql+pymysql://",
}


def check_storage_url(url: str) -> None:
    """Refuse a malformed URL, an in-memory database, a journal file in a missing folder or a
    missing driver, without connecting (nothing is created)."""
    if "://" not in url:
        if not url.endswith(JOURNAL_SUFFIXES):
            raise _not_a_url(url)
        if not Path(url).expanduser().resolve().parent.is_dir():
            raise StorageError(
                f"cannot create journal file {url}: folder "
                f"{Path(url).expanduser().resolve().parent} does not exist"
            )
        return
    if url in IN_MEMORY:
        raise StorageError(
            f"storage {url} lives in one process's memory: the study and its models would "
            "vanish when the command ends; use a file (sqlite:///medslim.db), PostgreSQL or "
            "a journal file"
        )
    try:
        parsed = sqlalchemy.engine.make_url(url)
        dialect = parsed.get_dialect()
    except Exception as error:  # sqlalchemy raises several types for a bad URL or dialect
        raise _cannot_open(url, error) from error
    try:
        dialect.import_dbapi()
    except ImportError as error:
        hint = _DRIVER_HINTS.get(parsed.get_backend_name(), "install its Python driver")
        raise StorageError(
            f"cannot open storage {display_url(url)!r}: its driver is not installed "
            f"({error}); {hint}"
        ) from error


def open_storage(url: str, *, heartbeat: int | None = None, create: bool = True) -> BaseStorage:
    """A storage for `url`; a journal file for a path ending in .log/.jsonl/.journal.

    With `heartbeat` (seconds), an RDB storage records a heartbeat for each running trial, so
    the trial of a killed worker is failed after a grace period and retried by another.
    `create=False` (readers) opens only a storage that already holds Optuna's tables, and
    refuses a missing file instead of creating an empty one.
    """
    if "://" not in url and url.endswith(JOURNAL_SUFFIXES) and not create:
        if not Path(url).expanduser().is_file():
            raise StorageError(f"no journal file {url}; check the path (--storage)")
    check_storage_url(url)
    if "://" not in url:
        return JournalStorage(JournalFileBackend(str(Path(url).expanduser())))
    if not create:
        _check_exists(url)
    engine_kwargs = {}
    if url.startswith("sqlite"):
        # Wait for a busy database instead of failing when several workers write at once.
        engine_kwargs = {"connect_args": {"timeout": 60}}
    storage = _rdb_storage(url, engine_kwargs, heartbeat, create)
    if url.startswith("sqlite"):
        _begin_immediate(storage.engine)
    return storage


def _rdb_storage(
    url: str, engine_kwargs: dict[str, Any], heartbeat: int | None, create: bool
) -> RDBStorage:
    """Optuna's RDB storage; creating the tables is retried when another process creates
    them at the same moment (two first runs on a new file)."""
    attempt = 1
    while True:
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat,
                    grace_period=None if heartbeat is None else GRACE_HEARTBEATS * heartbeat,
                    heartbeat_stale_trial_callback=(
                        None if heartbeat is None else RetryHeartbeatStaleTrialCallback(MAX_RETRY)
                    ),
                    skip_table_creation=not create,
                )
        except Exception as error:  # sqlalchemy raises several types for a bad URL or driver
            if attempt == SCHEMA_ATTEMPTS or not _CONCURRENT_SCHEMA.search(_causes(error)):
                raise _cannot_open(url, error) from error
            time.sleep(random.uniform(0.05, 0.2) * attempt)
            attempt += 1


def _causes(error: BaseException) -> str:
    """The text of an error and of the errors it was raised from."""
    texts = []
    current: BaseException | None = error
    while current is not None:
        texts.append(str(current))
        current = current.__cause__ or current.__context__
    return " | ".join(texts)


def _check_exists(url: str) -> None:
    """A reader's storage must exist: a SQLite file on disk, a database with Optuna's tables."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.is_file():
            raise StorageError(f"no storage file {path} ({url}); check the path (--storage)")
    engine = sqlalchemy.create_engine(url)
    try:
        has_tables = sqlalchemy.inspect(engine).has_table("studies")
    except Exception as error:  # sqlalchemy raises several types for an unreachable server
        raise _cannot_open(url, error) from error
    finally:
        engine.dispose()
    if not has_tables:
        raise StorageError(f"{display_url(url)} holds no Optuna studies; check --storage")


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
        f"storage {display_url(url)!r} is not a URL: use e.g. sqlite:///medslim.db, "
        "postgresql://user:pass@host/db, or a journal file path ending in .log"
    )


def _cannot_open(url: str, error: Exception) -> StorageError:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return StorageError(f"cannot open storage {display_url(url)!r}: {redact(reason, url)}")


def display_url(url: str) -> str:
    """The URL as it may be printed: the password of a database URL masked (and whatever
    precedes an @ in a URL that lacks its scheme)."""
    if "://" not in url:
        return f"***@{url.rsplit('@', 1)[1]}" if "@" in url else url
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # sqlalchemy raises several types for a malformed URL
        return url.split("@")[-1] if "@" in url else url


def redact(text: str, url: str) -> str:
    """`text` with the URL, and its password wherever a URL or DSN would carry it, masked."""
    text = text.replace(url, display_url(url))
    if "://" not in url:
        return text
    try:
        password = sqlalchemy.engine.make_url(url).password
    except Exception:  # a malformed URL: its userinfo is the secret
        password = url.split("://", 1)[1].rsplit("@", 1)[0] if "@" in url else None
    if not password:
        return text
    for secret in {str(password), quote_plus(str(password))}:
        text = text.replace(f":{secret}@", ":***@").replace(f"password={secret}", "password=***")
        text = text.replace(f"password='{secret}'", "password='***'")
    return text


def storage_dir(url: str) -> Path:
    """Where files that belong with a study live: beside a SQLite/journal file, else the cache."""
    if url.startswith("sqlite:///") and url not in IN_MEMORY:
        return Path(url.removeprefix("sqlite:///")).resolve().parent / ".medslim"
    if "://" not in url:
        return Path(url).expanduser().resolve().parent / ".medslim"
    return Path(platformdirs.user_cache_dir("medslim"))


def storage_file(url: str) -> Path | None:
    """The file a SQLite or journal storage lives in (None: a database server)."""
    if url.startswith("sqlite:///") and url not in IN_MEMORY:
        return Path(url.removeprefix("sqlite:///")).resolve()
    if url and "://" not in url:
        return Path(url).expanduser().resolve()
    return None


@contextmanager
def removed_if_refused(url: str) -> Iterator[None]:
    """A SQLite or journal file that this command creates (enter before `open_storage`) is
    removed again if the command fails before the file holds a study: a refused command
    leaves nothing behind."""
    path = storage_file(url)
    new = path is not None and not path.exists()
    try:
        yield
    except BaseException:
        if new and path is not None and path.exists() and not _holds_studies(path, url):
            for leftover in (path, *(path.with_name(path.name + s) for s in SQLITE_SIDES)):
                leftover.unlink(missing_ok=True)
        raise


SQLITE_SIDES = ("-wal", "-shm", "-journal")


def _holds_studies(path: Path, url: str) -> bool:
    try:
        if url.startswith("sqlite"):
            with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60)) as db:
                return bool(db.execute("SELECT count(*) FROM studies").fetchone()[0])
        return path.stat().st_size > 0 and bool(study_names(open_storage(url, create=False)))
    except sqlite3.OperationalError as error:  # no tables: nothing of anyone's in it
        return "no such table" not in str(error)
    except (OSError, StorageError):
        return False


def full_disk_error(error: BaseException, url: str) -> DiskFull:
    """What to say of `error`, a write that found no space (`files.is_disk_full`): the
    `DiskFull` raised already, else the file an `OSError` names, else the storage's own file
    (SQLite says only "database or disk is full"), else the database server."""
    current: BaseException | None = error
    while current is not None:
        if isinstance(current, DiskFull):
            return current
        if isinstance(current, OSError) and current.filename:
            return disk_full(Path(str(current.filename)), None)
        current = current.__cause__ or current.__context__
    path = storage_file(url)
    if path is None:
        where = f"the database server of {display_url(url)}" if url else "an unnamed file"
        return DiskFull(where, None, None)
    return disk_full(path, None)


def is_server_url(url: str) -> bool:
    """A database server (PostgreSQL, MySQL): other machines may reach the study, but files
    kept beside it would stay on the machine that wrote them."""
    return "://" in url and not url.startswith("sqlite")


def study_names(storage: BaseStorage) -> list[str]:
    return [s.study_name for s in optuna.get_all_study_summaries(storage)]
