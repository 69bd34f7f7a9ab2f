"""Storages as users meet them: two first runs racing on a new SQLite file, readers that
must never create a storage, and storage mistakes that are one line and exit code 2."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from medslim.search.cli import main
from medslim.search.storage import display_url, redact


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


TINY = ["--teacher-epochs", "5", "--epochs", "1", "--baselines", "3", "--no-progress"]


@pytest.mark.e2e
def test_two_first_runs_on_a_new_sqlite_file_both_succeed(medslim, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'race.db'}"
    # A teacher that trains for a second or so, so that the second run meets the first still
    # setting the study up, however the two processes' start-up times fall.
    slow_teacher = ("--teacher-epochs", "200", *TINY[2:-1])
    command = ("run", "--storage", storage, "--study", "s", "--trials", "8", *slow_teacher)
    first, second = medslim.start(*command), medslim.start(*command)
    (_, err1), (_, err2) = first.communicate(timeout=180), second.communicate(timeout=180)
    assert (first.returncode, second.returncode) == (0, 0), err1 + err2
    assert "Traceback" not in err1 + err2
    trials = optuna.load_study(study_name="s", storage=storage).trials
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 8
    baselines = [t.user_attrs["baseline_ratio"] for t in trials if "baseline" in t.user_attrs]
    assert sorted(baselines) == [0.3, 0.6, 0.9], "the seeds were queued once, and each ran"
    # The second run joined a study in progress: it says so and samples with its own seed.
    assert "samples with seed" in err1 + err2
    # It waited for the first run's teacher instead of training the same one again.
    assert (err1 + err2).count("teacher trained in") == 1, err1 + err2
    assert "teacher loaded in" in err1 + err2 and "waiting" in err1 + err2


@pytest.mark.e2e
@pytest.mark.parametrize(
    "bad",
    [
        ["--artifacts", "ftp://example.org/models"],
        ["--artifacts", "/proc/medslim-models"],
        ["--lr", "1e12", "--teacher-epochs", "3"],  # refused after the study was made
    ],
)
def test_a_refused_run_leaves_no_storage_file_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], bad
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for storage, path in (
        ("sqlite:///medslim.db", tmp_path / "medslim.db"),
        ("m.log", tmp_path / "m.log"),
    ):
        assert main(["run", "--storage", storage, "--trials", "2", *TINY, *bad]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert not path.exists(), f"{' '.join(bad)} left {path.name} behind"
        assert not list(tmp_path.glob("medslim.db-*")), "nor its journal"


@pytest.mark.parametrize("command", ["pareto", "report", "export", "dashboard"])
def test_readers_never_create_a_storage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    extra = {
        "export": ["--trial", "0", "--out", str(tmp_path / "m.pt")],
        "dashboard": ["--port", str(free_port())],  # the port is taken before the storage
    }.get(command, [])
    for storage, path in (
        (f"sqlite:///{tmp_path / 'missing.db'}", tmp_path / "missing.db"),
        (str(tmp_path / "missing.log"), tmp_path / "missing.log"),
    ):
        assert main([command, "--storage", storage, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(path.name) in err, err
        assert not path.exists(), f"{command} created {path}"
    assert not (tmp_path / ".medslim").exists()


def test_a_reader_refuses_a_sqlite_file_without_optuna_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (text)")
    assert main(["pareto", "--storage", f"sqlite:///{path}"]) == 2
    assert "holds no Optuna studies" in capsys.readouterr().err
    with sqlite3.connect(path) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert tables == {"notes"}, "the reader wrote Optuna's tables into someone else's file"


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--storage", "sqlite:///:memory:"], "one process's memory"),
        (["run", "--storage", "NOFOLDER/x.log"], "does not exist"),
        (["pareto", "--storage", "sqlite:///:memory:"], "one process's memory"),
        (["pareto", "--storage", "STUDY_DB", "--study", ""], "non-empty name"),
        (["report", "--storage", "STUDY_DB", "--out", "NOFOLDER/r.html"], "does not exist"),
        (["run", "--storage", "postgresql+nosuchdriver://u:pw@h/db"], "cannot open storage"),
    ],
)
def test_storage_mistakes_are_one_line_and_exit_code_2(
    tiny_study_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    study_db = f"sqlite:///{tiny_study_dir / 'm.db'}"
    args = [
        study_db if a == "STUDY_DB" else a.replace("NOFOLDER", str(tmp_path / "nofolder"))
        for a in args
    ]
    assert (main([*args, *TINY]) if args[0] == "run" else main(args)) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert message in err and "Traceback" not in err, err
    assert "pw@" not in err
    assert not (tmp_path / "nofolder").exists()


def test_passwords_are_masked_in_urls_and_in_error_text() -> None:
    url = "postgresql+psycopg2://ms:s3cr%40t@db.example:5432/medslim"
    assert display_url(url) == "postgresql+psycopg2://ms:***@db.example:5432/medslim"
    leaked = f"could not connect to {url}; dsn: user=ms password=s3cr@t host=db.example"
    masked = redact(leaked, url)
    assert "s3cr" not in masked and "ms:***@db.example" in masked and "password=***" in masked
    no_scheme = "ms:s3cret@db.example/medslim"  # a URL typed without its scheme
    assert redact(f"storage {no_scheme!r} is not a URL", no_scheme) == (
        "storage '***@db.example/medslim' is not a URL"
    )
