"""`medslim dashboard` in a real browser (headless Debian Chromium driven by Selenium) and
over plain HTTP: trial columns, saved figures in order, notes, model downloads, a busy port."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import optuna
import optuna_dashboard
import pytest
import torch

from medslim.search.records import trial_record
from medslim.search.stored import open_study
from medslim.search.trial_models import model_artifact_id

pytestmark = pytest.mark.e2e


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


def _get(url: str) -> tuple[bytes, str]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read(), response.headers.get("Content-Type", "")


def test_dashboard_shows_trial_columns_figures_notes_and_serves_models(
    tiny_study_dir: Path, medslim: Any, chromium: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    port = _free_port()
    storage = f"sqlite:///{tiny_study_dir / 'm.db'}"
    server = medslim.start(
        "dashboard", "--storage", storage, "--host", "127.0.0.1", "--port", str(port)
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(f"{base}/api/studies", server)
        meta = json.loads(_get(f"{base}/api/meta")[0])
        assert meta["artifact_is_available"] is True
        # Every front member's model downloads as binary data that loads as a bundle.
        ref = open_study(storage)
        study_id = ref.storage.get_study_id_from_name(ref.name)
        trial = ref.study.best_trials[0]
        trial_id = ref.storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        artifact = model_artifact_id(ref.storage, trial)
        body, mime = _get(f"{base}/artifacts/{study_id}/{trial_id}/{artifact}")
        assert mime == "application/octet-stream"
        bundle = torch.load(io.BytesIO(body), weights_only=True)
        assert {"state_dict", "spec"} <= set(bundle)
        # Saved figures come in a fixed order, whatever order the dashboard keeps them in.
        detail = json.loads(_get(f"{base}/api/studies/{study_id}")[0])
        ids = [g["id"] for g in detail["plotly_graph_objects"]]
        assert ids == ["auc-vs-flops", "acc-vs-flops", "ratio-profile"]

        driver = chromium(1400, 1600)
        wait = WebDriverWait(driver, 60)
        driver.get(f"{base}/dashboard/studies/{study_id}")
        # The dashboard's own Pareto-front plot, drawn by plotly (an svg inside .js-plotly-plot).
        wait.until(
            expected_conditions.presence_of_element_located(
                (By.CSS_SELECTOR, "#graph-pareto-front.js-plotly-plot svg.main-svg")
            )
        )
        for graph_id in ids:  # the figures `medslim run` saved with save_plotly_graph_object
            wait.until(
                expected_conditions.presence_of_element_located(
                    (By.CSS_SELECTOR, f"[id='user-defined-plot:{graph_id}'] svg.main-svg")
                )
            )
        body_text = driver.find_element(By.TAG_NAME, "body").text
        assert "breast-cancer" in body_text and "val AUC vs FLOPs" in body_text
        driver.save_screenshot(str(tmp_path / "dashboard.png"))
        assert (tmp_path / "dashboard.png").stat().st_size > 10_000

        # The trial table (Smart Selection): one short column per scalar attribute.
        driver.get(f"{base}/dashboard/studies/{study_id}/smartSelection")
        wait.until(
            lambda d: "UserAttribute flops_ratio" in d.find_element(By.TAG_NAME, "body").text
        )
        headers = [h.text.split("\n")[0] for h in driver.find_elements(By.CSS_SELECTOR, "th")]
        for column in ("flops_ratio", "params", "latency_ms", "val_auc", "ratio.body.0"):
            assert f"UserAttribute {column}" in headers, (column, headers)
        assert "UserAttribute result" not in headers
        assert "Param flops.target" in headers  # parameters named for what they are
        heights = driver.execute_script(
            "return [...document.querySelectorAll('tbody tr')].map(r => r.offsetHeight)"
        )
        assert heights and max(heights) < 90, heights  # no row holds a wrapped JSON blob

        # The store is served read-only: a browser can neither delete nor upload.
        url = f"{base}/api/artifacts/{study_id}/{trial_id}/{artifact}"
        for method, data in (("DELETE", None), ("POST", b'{"file": "data:,x"}')):
            target = url if method == "DELETE" else f"{base}/api/artifacts/{study_id}"
            request = urllib.request.Request(target, data=data, method=method)
            request.add_header("Content-Type", "application/json")
            try:
                urllib.request.urlopen(request, timeout=30)
            except urllib.error.HTTPError as refused:
                assert refused.code == 403 and b"read-only" in refused.read()
            else:
                raise AssertionError(f"{method} {target} was served")
        assert _get(f"{base}/artifacts/{study_id}/{trial_id}/{artifact}")[0] == body
    finally:
        server.terminate()
        server.communicate(timeout=30)


def test_distilled_trials_are_one_line_rows_of_scalar_columns(
    tiny_both_dir: Path, medslim: Any, chromium: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    storage = f"sqlite:///{tiny_both_dir / 'm.db'}"
    ref = open_study(storage)
    students = [t for t in ref.study.trials if trial_record(t)["method"] == "distill"]
    assert students, "the study has distilled trials"
    for trial in students:
        nested = {k: v for k, v in trial.user_attrs.items() if isinstance(v, dict | list)}
        assert not nested, f"trial {trial.number} stores JSON attributes: {nested}"
    port = _free_port()
    server = medslim.start("dashboard", "--storage", storage, "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(f"{base}/api/studies", server)
        study_id = ref.storage.get_study_id_from_name(ref.name)
        driver = chromium(1400, 1600)
        driver.get(f"{base}/dashboard/studies/{study_id}/smartSelection")
        WebDriverWait(driver, 60).until(
            lambda d: (
                "UserAttribute student.widths" in d.find_element(By.TAG_NAME, "body").text
                or "UserAttribute student.hidden" in d.find_element(By.TAG_NAME, "body").text
            )
        )
        heights = driver.execute_script(
            "return [...document.querySelectorAll('tbody tr')].map(r => r.offsetHeight)"
        )
        # every row one line high (a JSON dict in a cell made a student's row 130 px high)
        assert heights and max(heights) - min(heights) <= 4 and max(heights) < 90, heights
    finally:
        server.terminate()
        server.communicate(timeout=30)


def test_the_summary_and_each_front_member_carry_a_note(tiny_study_dir: Path) -> None:
    ref = open_study(f"sqlite:///{tiny_study_dir / 'm.db'}")
    note = optuna_dashboard.get_note(ref.study)
    assert "Models on the front" in note and "| FLOPs× |" in note
    study = optuna.load_study(
        study_name=ref.name, storage=ref.storage, sampler=optuna.samplers.RandomSampler()
    )
    study_id = ref.storage.get_study_id_from_name(ref.name)
    for member in ref.study.best_trials:
        trial_id = ref.storage.get_trial_id_from_study_id_trial_number(study_id, member.number)
        text = optuna_dashboard.get_note(optuna.Trial(study, trial_id))
        assert f"Trial {member.number}:" in text
        assert "--storage sqlite:///" in text and f"--study {ref.name}" in text
        assert f"--trial {member.number} --format onnx" in text


def test_a_busy_port_is_one_line_and_exit_2(tiny_study_dir: Path, medslim: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = medslim.run(
            "dashboard",
            *("--storage", f"sqlite:///{tiny_study_dir / 'm.db'}", "--port", str(port)),
            command=[sys.executable, "-c", REPORT_IMPORTS],
        )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "--port" in lines[0]
    assert result.stdout.split() == ["False"] * 4, "said before the heavy imports"


REPORT_IMPORTS = """
import sys
from medslim.search.cli import main
code = main(sys.argv[1:])
print(*(m in sys.modules for m in ("optuna_dashboard", "plotly", "torch", "optuna")))
sys.exit(code)
"""


def test_models_are_stored_as_binary_and_older_pt_types_are_served_as_binary(
    tiny_study_dir: Path,
) -> None:
    from optuna.artifacts import get_all_artifact_meta

    from medslim.search.inspection.dashboard import WRONG_MIME, display_fixes

    ref = open_study(f"sqlite:///{tiny_study_dir / 'm.db'}")
    for trial in ref.study.trials:
        metas = get_all_artifact_meta(trial, storage=ref.storage)
        (model,) = [m for m in metas if not m.filename.endswith(".json")]  # beside: screening
        assert model.mimetype == "application/octet-stream"

    def older_study(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        """What optuna-dashboard sends for a model an older medslim uploaded."""
        start_response("200 OK", [("Content-Type", WRONG_MIME), ("X-Kept", "1")])
        return [b"weights"]

    seen: dict[str, Any] = {}
    app = display_fixes(older_study)
    body = app({"PATH_INFO": "/artifacts/1/2/abc"}, lambda s, h, *e: seen.update(headers=h))
    assert list(body) == [b"weights"]
    assert dict(seen["headers"]) == {"Content-Type": "application/octet-stream", "X-Kept": "1"}
