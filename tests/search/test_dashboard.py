"""`medslim dashboard` in a real browser: headless Debian Chromium driven by Selenium."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

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
    "--window-size=1400,1600",
)

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()),
    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_server(url: str, process: subprocess.Popen[str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"dashboard exited: {process.communicate()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"no dashboard at {url} after {timeout} s")


def test_dashboard_shows_the_study_its_pareto_front_and_saved_figures(
    tiny_study_dir: Path, medslim: Any, tmp_path: Path
) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    port = _free_port()
    storage = f"sqlite:///{tiny_study_dir / 'm.db'}"
    server = medslim.start(
        "dashboard", "--storage", storage, "--host", "127.0.0.1", "--port", str(port)
    )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path)}")
    driver = None
    try:
        _wait_for_server(f"http://127.0.0.1:{port}/api/studies", server)
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        driver.get(f"http://127.0.0.1:{port}/dashboard/studies/1")
        wait = WebDriverWait(driver, 60)
        # The dashboard's own Pareto-front plot, drawn by plotly (an svg inside .js-plotly-plot).
        wait.until(
            expected_conditions.presence_of_element_located(
                (By.CSS_SELECTOR, "#graph-pareto-front.js-plotly-plot svg.main-svg")
            )
        )
        # The figures `medslim run` saved into the study with save_plotly_graph_object.
        for graph_id in ("auc-vs-flops", "acc-vs-flops", "ratio-profile"):
            wait.until(
                expected_conditions.presence_of_element_located(
                    (By.CSS_SELECTOR, f"[id='user-defined-plot:{graph_id}'] svg.main-svg")
                )
            )
        points = driver.find_elements(By.CSS_SELECTOR, "#graph-pareto-front .scatterlayer .point")
        assert points, "the Pareto-front plot draws no points"
        body = driver.find_element(By.TAG_NAME, "body").text
        assert "breast-cancer" in body
        assert "val AUC vs FLOPs" in body
        driver.save_screenshot(str(tmp_path / "dashboard.png"))
        assert (tmp_path / "dashboard.png").stat().st_size > 10_000
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.communicate(timeout=30)
