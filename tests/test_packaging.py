"""What `pip install medslim` gives: one import package, a CLI that starts without torch."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q"] + ["-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("medslim-*.whl")
    return built


def test_the_wheel_holds_only_the_medslim_package(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"medslim"}
    for module in (
        "search/loop.py",
        "search/cli/app.py",
        "spaces/families.py",
        "objectives/data.py",
    ):
        assert f"medslim/{module}" in names
    assert "medslim/objectives/medmnist_info.json" in names and "medslim/py.typed" in names


def test_installed_only_medslim_imports(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target)]
        + [str(wheel)],
        check=True,
        capture_output=True,
    )
    probe = (
        "import importlib.util, medslim.search.cli, medslim.objectives.medmnist as m\n"
        f"assert medslim.search.cli.__file__.startswith({str(target)!r})\n"
        "assert m.DATASETS, 'package data read through importlib.resources'\n"
        "print([importlib.util.find_spec(n) is None for n in ('search', 'spaces', 'objectives')])"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r})\n{probe}"],
        cwd=tmp_path,  # nothing named search/, spaces/ or objectives/ here
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[True, True, True]"


@pytest.mark.parametrize("command", [["--help"], ["run", "--help"], ["list"]])
def test_help_and_list_do_not_import_torch(command: list[str]) -> None:
    probe = (
        "import sys\nfrom medslim.search.cli import main\n"
        f"try:\n    main({command!r})\nexcept SystemExit:\n    pass\n"
        "heavy = sorted({'torch', 'optuna', 'sklearn', 'plotly'} & set(sys.modules))\n"
        "print('heavy:', heavy, file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "heavy: []" in done.stderr
    assert "usage: medslim" in done.stdout or "criteria" in done.stdout
