"""Run the real `medslim` command in a subprocess, with its caches inside the test's tmp dir."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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


@pytest.fixture(scope="session")
def tiny_both_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 8-trial `--method both` study (pruned teachers and distilled students on
    one front) in `m.db`, run once per session; copy the folder before changing it."""
    from medslim.search.cli import main

    folder = tmp_path_factory.mktemp("tiny-both")
    url = f"sqlite:///{folder / 'm.db'}"
    extra = ("--method", "both", "--student-epochs", "5", "--seed", "1")
    assert main(["run", "--storage", url, "--trials", "8", *Medslim.TINY, *extra]) == 0
    return folder


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROME_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[Callable[[int, int], Any]]:
    """Opens headless Debian Chromium (Selenium) at a window size; closed after the test."""
    if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
        pytest.skip("needs Debian's chromium and chromium-driver (.ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    drivers = []

    def open_browser(width: int = 1400, height: int = 1600) -> Any:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (*CHROME_FLAGS, f"--window-size={width},{height}"):
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path)}")
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        drivers.append(driver)
        return driver

    yield open_browser
    for driver in drivers:
        driver.quit()
