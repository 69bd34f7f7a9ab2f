"""No code from the working directory, no password where others can read it: workers start
from the installed package with the working directory off the import path, and get the
storage URL through their environment, never their command line."""

from __future__ import annotations

import sysconfig
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

PLANTED = ("medslim", "search", "optuna", "torch", "sqlalchemy")
"""Packages a working directory might hold (or an attacker might plant there)."""


def _plant(folder: Path, marker: Path) -> None:
    for name in PLANTED:
        package = folder / name
        package.mkdir()
        code = f"open({str(marker / name)!r}, 'w').write('ran')\n"
        (package / "__init__.py").write_text(code)
        (package / "cli.py").write_text(code)
        (package / "__main__.py").write_text(code)


def _installed_medslim() -> list[str]:
    script = Path(sysconfig.get_path("scripts")) / "medslim"
    if not script.is_file():
        pytest.skip(f"the console script is not installed at {script} (pip install -e .)")
    return [str(script)]


def test_workers_never_run_code_from_the_working_directory(medslim, tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    _plant(tmp_path, markers)
    done = medslim.run(
        *("run", "--storage", f"sqlite:///{tmp_path / 'w.db'}", "--trials", "4"),
        *("--workers", "2", *medslim.TINY),
        command=_installed_medslim(),  # what a user types; it never imports from the cwd
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in markers.iterdir()) == [], "planted code ran"


def test_the_password_is_never_printed_nor_on_a_command_line(
    medslim, database: str, tmp_path: Path
) -> None:
    secret = "Sup3r-S3cret-pw"
    url = database.replace("medslim@", f"medslim:{secret}@")  # trust auth ignores it
    run = medslim.start(
        *("run", "--storage", url, "--study", "s", "--trials", "6", "--workers", "2"),
        *("--teacher-epochs", "5", "--epochs", "20", "--baselines", "2"),  # INFO lines too
    )
    command_lines = _children_command_lines(run.pid, until=lambda: run.poll() is not None)
    out, err = run.communicate(timeout=240)
    assert run.returncode == 0, err
    assert len(command_lines) == 2, command_lines
    assert not [line for line in command_lines.values() if secret in line]
    assert "study s in postgresql+psycopg2://medslim:***@" in err, err
    assert secret not in out + err
    wrong = f"postgresql+psycopg2://medslim:{secret}@127.0.0.1:1/nodb"  # nothing listens
    refused = medslim.run("worker", "--storage", wrong, "--study", "s")
    assert refused.returncode == 2 and "cannot open storage" in refused.stderr
    assert secret not in refused.stdout + refused.stderr, refused.stderr


def _children_command_lines(parent: int, until: Callable[[], bool]) -> dict[int, str]:
    """The command lines of `parent`'s child processes, watched until `until()`."""
    seen: dict[int, str] = {}
    while not until():
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
                if ppid == parent:
                    raw = (stat.parent / "cmdline").read_bytes()
                    seen[int(stat.parent.name)] = raw.replace(b"\0", b" ").decode()
            except (OSError, ValueError, IndexError):  # the process ended meanwhile
                continue
        time.sleep(0.1)
    return seen
