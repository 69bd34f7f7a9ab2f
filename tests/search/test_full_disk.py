"""A full disk, for real: a small tmpfs mounted in a user namespace (`unshare -Urm`, no root
needed) holds the artifact store or the SQLite file while a real `medslim run` fills it.
The first failed write stops the study in one line (exit 2), the trial is FAIL with its
reason, no partial file stays in the store, and the study resumes once there is room."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.artifacts import get_all_artifact_meta
from optuna.trial import TrialState

from medslim.errors import DiskFull
from medslim.files import is_disk_full

pytestmark = pytest.mark.e2e
MEDSLIM = [sys.executable, "-m", "medslim.search.cli"]


def _can_mount() -> bool:
    try:
        probe = subprocess.run(
            ["unshare", "-Urm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
            capture_output=True,
            timeout=30,
        )
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


needs_mount = pytest.mark.skipif(
    not _can_mount(), reason="needs `unshare -Urm` (user namespaces) to mount a small tmpfs"
)


def _in_namespace(medslim, script: str) -> None:
    """Run `script` (sh) in a fresh user and mount namespace, in the test's "machine"."""
    shell = subprocess.run(
        ["unshare", "-Urm", "sh", "-c", script],
        cwd=medslim.cwd,
        env=medslim.env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert shell.returncode == 0, shell.stderr


def _run(medslim, storage: str, trials: int, *extra: str) -> str:
    """`medslim run` of study `s` (the tiny settings) as a shell command."""
    run = ("run", "--storage", storage, "--study", "s", "--trials", str(trials), *medslim.TINY)
    return shlex.join([*MEDSLIM, *run, *extra])


def _kept(command: str, folder: Path, name: str) -> str:
    """`command` in sh, its stderr and exit code kept in `folder` as NAME.err, NAME.rc."""
    return f"{{ {command} 2> {folder / f'{name}.err'}; echo $? > {folder / f'{name}.rc'}; }}"


def _one_line_exit_2(folder: Path, name: str) -> list[str]:
    """The kept run exited 2 with one `medslim:` line and no traceback: that line."""
    err = (folder / f"{name}.err").read_text()
    assert (folder / f"{name}.rc").read_text().strip() == "2", err
    lines = [line for line in err.splitlines() if line.startswith("medslim: ")]
    assert "Traceback" not in err and len(lines) == 1, err
    return lines


@needs_mount
def test_a_full_artifact_store_stops_the_study_in_one_line_and_leaves_no_partial_file(
    medslim, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    storage = f"sqlite:///{tmp_path / 's.db'}"
    run = _run(medslim, storage, 12, "--artifacts", str(store))
    # the teacher (213 kB) and a few trials' models (12-86 kB) fit in 400 kB
    script = (
        f"mount -t tmpfs -o size=400k tmpfs {store} && {_kept(run, tmp_path, 'first')}; "
        f"find {store} -type f -printf '%f %s\\n' > {tmp_path / 'files'}"
    )
    _in_namespace(medslim, script)
    (line,) = _one_line_exit_2(tmp_path, "first")
    assert f"no space left on the disk of the artifact store {store}" in line, line
    assert "trials still to run need about" in line, line
    trials = optuna.load_study(study_name="s", storage=storage).trials
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 1, "the first failed write stopped the study"
    assert failed[0].user_attrs["fail_reason"].startswith("DiskFull: no space left"), failed
    assert trials[-1].number == failed[0].number, "no trial ran after it"
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert complete, "the trials before it finished and kept their models"
    files = dict(line.split() for line in (tmp_path / "files").read_text().splitlines())
    assert all(int(size) > 0 for size in files.values()), files
    assert not [name for name in files if name.endswith(".part")], files
    rdb = optuna.storages.RDBStorage(storage)
    stored = {m.artifact_id: t for t in trials for m in get_all_artifact_meta(t, storage=rdb)}
    assert len(set(files) - set(stored)) == 1, "besides the trials' files, only the teacher"
    assert {t.number for t in stored.values()} >= {t.number for t in complete}


@needs_mount
def test_a_full_sqlite_disk_stops_in_one_line_and_the_study_resumes_once_there_is_room(
    medslim, tmp_path: Path
) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    storage = f"sqlite:///{folder / 's.db'}"
    run = _run(medslim, storage, 6, "--artifacts", str(tmp_path / "store"), "--heartbeat", "1")
    check = shlex.join(
        [
            sys.executable,
            "-c",
            "import json, optuna, sys; s = optuna.load_study(study_name='s', storage=sys.argv[1])"
            "; print(json.dumps([[t.state.name, t.user_attrs.get('fail_reason')] "
            "for t in s.trials]))",
            storage,
        ]
    )
    # the teacher's cache file (213 kB) and the study's first rows fit in 600 kB; then, with
    # room again, the same command finishes the study
    script = (
        f"mount -t tmpfs -o size=600k tmpfs {folder} && {_kept(run, tmp_path, 'first')}; "
        f"mount -o remount,size=8m {folder} && {_kept(run, tmp_path, 'again')}; "
        f"{check} > {tmp_path / 'trials.json'}"
    )
    _in_namespace(medslim, script)
    (line,) = _one_line_exit_2(tmp_path, "first")
    assert f"no space left on the disk of {folder / 's.db'}" in line, line
    again = (tmp_path / "again.err").read_text()
    assert (tmp_path / "again.rc").read_text().strip() == "0", again
    states = [state for state, _ in json.loads((tmp_path / "trials.json").read_text())]
    assert states.count("COMPLETE") == 6 and "RUNNING" not in states, states


def test_full_disk_errors_are_recognised_through_their_causes() -> None:
    import errno
    import sqlite3

    try:
        try:
            raise sqlite3.OperationalError("database or disk is full")
        except sqlite3.OperationalError as inner:
            raise RuntimeError("commit failed") from inner
    except RuntimeError as outer:
        assert is_disk_full(outer)
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert not is_disk_full(OSError(errno.ENOENT, "No such file or directory"))
    full = DiskFull("/data/store", 80_000, 1_000).with_trials_left(5)
    assert str(full).startswith("no space left on the disk of /data/store (1.0 kB free)")
    assert "the 5 trials still to run need about 400.0 kB more" in str(full)
    assert "\n" not in str(full)
