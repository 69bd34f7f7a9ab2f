"""Run the real `medslim` command in a subprocess, with its caches inside the test's tmp dir."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


class Medslim:
    """Starts `python -m search.cli ...` in `cwd` with the user cache redirected to `cwd`."""

    # The smallest real study: breast-cancer, a 5-epoch teacher, one fine-tune epoch a trial.
    TINY = ("--teacher-epochs", "5", "--epochs", "1", "--baselines", "2", "--no-progress")

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.env = {**os.environ, "XDG_CACHE_HOME": str(cwd / "cache")}

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "medslim.search.cli", *args],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        process = self.start(*args)
        out, err = process.communicate(timeout=timeout)
        return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.fixture
def medslim(tmp_path: Path) -> Medslim:
    return Medslim(tmp_path)


@pytest.fixture(scope="session")
def tiny_study_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 5-trial study in `m.db` (models and teacher cached beside it), run once per
    session; copy the folder before changing it."""
    from medslim.search.cli import main

    folder = tmp_path_factory.mktemp("tiny-study")
    url = f"sqlite:///{folder / 'm.db'}"
    assert main(["run", "--storage", url, "--trials", "5", *Medslim.TINY]) == 0
    return folder
