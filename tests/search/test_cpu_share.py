"""Stragglers and threads: a process that runs trials takes its share of the machine's cores,
counting the medslim processes already running trials here, and `run`'s progress names the
trials still running, where and for how long. Real processes."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from medslim.search import cpu_share


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "runtime"
    folder.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(folder))
    return folder


@pytest.fixture
def two_others(runtime: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Two live processes registered as running trials, and one that has gone."""
    sleepers = [subprocess.Popen(["sleep", "300"]) for _ in range(2)]
    gone = subprocess.Popen(["true"])
    gone.wait()
    folder = cpu_share.running_folder()
    folder.mkdir(parents=True)
    for process in (*sleepers, gone):
        (folder / str(process.pid)).write_text(cpu_share._start_time(process.pid) or "")
    yield sleepers
    for process in sleepers:
        process.kill()
        process.wait()


def test_other_processes_running_trials_are_counted_and_the_cores_shared(
    two_others: list[subprocess.Popen[bytes]],
) -> None:
    assert cpu_share.others_running() == 2
    assert len(list(cpu_share.running_folder().iterdir())) == 2, "the dead one's file went"
    cores = cpu_share.usable_cores()
    assert cpu_share.fair_threads() == max(1, cores // 3)
    assert cpu_share.fair_threads(sharing=2) == max(1, cores // 4)
    with cpu_share.running_trials_here():
        assert (cpu_share.running_folder() / str(os.getpid())).is_file()
        assert cpu_share.others_running() == 2, "a process does not count itself"
    assert not (cpu_share.running_folder() / str(os.getpid())).exists()


@pytest.mark.e2e
def test_a_worker_on_a_busy_machine_takes_its_share_and_run_names_the_running_trials(
    medslim, runtime: Path, two_others: list[subprocess.Popen[bytes]]
) -> None:
    env = {"XDG_RUNTIME_DIR": str(runtime)}
    medslim.env.update(env)
    storage = "sqlite:///c.db"
    made = medslim.run(
        *("run", "--storage", storage, "--study", "c", "--trials", "6", "--workers", "2"),
        # trials of seconds: the second worker is up (torch imported) before the first is done
        *("--teacher-epochs", "5", "--epochs", "1000", "--baselines", "2"),
    )
    assert made.returncode == 0, made.stderr
    lines = made.stderr.splitlines()
    finished = [line for line in lines if re.match(r"trial \d+ finished \(\d of 6\)", line)]
    assert len(finished) == 6, made.stderr
    assert any(re.search(r"; running #\d+ on \S+:\d+ for \d+s", line) for line in finished), (
        "a finished trial's line names the trials still running, where and for how long"
    )
    joined = medslim.run("worker", "--storage", storage, "--study", "c", "--trials", "7")
    assert joined.returncode == 0, joined.stderr
    cores = cpu_share.usable_cores()
    share = max(1, cores // 3)
    assert (
        f"2 other medslim process(es) run trials on this machine: this one takes {share} of "
        f"its {cores} cores" in joined.stderr
    ), joined.stderr
