"""Run the real `medslim` command in a subprocess, with its caches inside the test's tmp dir;
and real servers on 127.0.0.1 for the many-machine tests: PostgreSQL and an S3 endpoint."""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any, NamedTuple

import optuna
import pytest
from optuna.trial import TrialState


class Medslim:
    """Starts `python -m medslim.search.cli ...` in `cwd` with the user cache redirected to
    `cwd/cache` (one "machine": its own cache and working directory), plus `env`."""

    # The smallest real study: breast-cancer, a 5-epoch teacher, one fine-tune epoch a trial.
    TINY = ("--teacher-epochs", "5", "--epochs", "1", "--baselines", "2", "--no-progress")
    # After TINY: tabular trials of about a third of a second on an idle machine (30 epochs
    # take a tenth), long enough to be caught running, interrupted or killed mid-search,
    # short enough that a loaded machine finishes a resumed study within a command's timeout.
    SLOW = ("--epochs", "150")

    def __init__(self, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.cwd = cwd
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "XDG_CACHE_HOME": str(cwd / "cache"), **(env or {})}

    def start(self, *args: str, command: list[str] | None = None) -> subprocess.Popen[str]:
        """`command` replaces `python -m medslim.search.cli` (e.g. the installed script)."""
        return subprocess.Popen(
            [*(command or [sys.executable, "-m", "medslim.search.cli"]), *args],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(
        self, *args: str, timeout: float = 120, command: list[str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        process = self.start(*args, command=command)
        out, err = process.communicate(timeout=timeout)
        return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.fixture
def medslim(tmp_path: Path) -> Medslim:
    return Medslim(tmp_path)


@pytest.fixture
def machine(tmp_path: Path) -> Callable[..., Medslim]:
    """`machine(name, env)`: one more "machine", with its own cache and working directory."""

    def make(name: str, env: dict[str, str] | None = None) -> Medslim:
        return Medslim(tmp_path / name, env)

    return make


@pytest.fixture(scope="session")
def tiny_study_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 5-trial study in `m.db` (models and teacher cached beside it), run once per
    session; copy the folder before changing it."""
    from medslim.search.cli import main

    folder = tmp_path_factory.mktemp("tiny-study")
    url = f"sqlite:///{folder / 'm.db'}"
    screened = ("--candidates", "3")  # tabular data screens one by default: show screening
    assert main(["run", "--storage", url, "--trials", "5", *Medslim.TINY, *screened]) == 0
    return folder


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _postgres_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return versions[-1].parent if versions else None


@pytest.fixture(scope="session")
def postgres() -> Iterator[int]:
    """A throwaway server on 127.0.0.1 (trust authentication: any password is accepted); as
    root it runs as the `postgres` user in a dir it owns."""
    pytest.importorskip("psycopg2", reason="psycopg2 is needed to reach PostgreSQL")
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (.ci/run installs Debian's postgresql)")
    as_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="medslim-pg-"))
    if os.geteuid() == 0:  # initdb refuses root
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run the server")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    data = root / "data"
    quiet = {"check": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE}
    subprocess.run(
        [*as_user, bin_dir / "initdb", "-D", data, "-U", "medslim", "--auth=trust", "--no-sync"],
        **quiet,
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    start = [*as_user, bin_dir / "pg_ctl", "-D", data, "-l", root / "log", "-o", options]
    subprocess.run([*start, "-w", "start"], **quiet)
    try:
        yield port
    finally:
        subprocess.run([*start, "-m", "immediate", "stop"], **quiet)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def database(postgres: int, request: pytest.FixtureRequest) -> str:
    """A fresh database per test on the shared server, as an Optuna storage URL."""
    import psycopg2

    name = request.node.name.lower()[:60]
    admin = psycopg2.connect(host="127.0.0.1", port=postgres, user="medslim", dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    return f"postgresql+psycopg2://medslim@127.0.0.1:{postgres}/{name}"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[dict[str, str]]:
    """A real S3 endpoint on 127.0.0.1 (moto in server mode), as the AWS environment
    variables that boto3 reads."""
    server_module = pytest.importorskip("moto.server", reason="pip install 'moto[server]'")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=free_port())
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield {
            "AWS_ENDPOINT_URL": f"http://{host}:{port}",
            "AWS_ACCESS_KEY_ID": "medslim-test",
            "AWS_SECRET_ACCESS_KEY": "medslim-test-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the endpoint; the AWS variables are set for this process too."""
    import boto3

    for key, value in s3_endpoint.items():
        monkeypatch.setenv(key, value)
    name = f"medslim-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


def study_exists(storage: str, study: str) -> bool:
    """Asked with plain SQL: opening an Optuna storage here could race the run to make tables."""
    import psycopg2

    try:
        with closing(psycopg2.connect(storage.replace("+psycopg2", ""))) as db:
            with db.cursor() as cursor:
                cursor.execute("SELECT 1 FROM studies WHERE study_name = %s", (study,))
                return cursor.fetchone() is not None
    except psycopg2.Error:  # no tables yet
        return False


class Victim(NamedTuple):
    pid: int
    number: int


def freeze_a_worker_mid_trial(
    storage: str,
    study: str,
    alive: Callable[[], bool],
    among: Callable[[int], bool] = lambda pid: True,
) -> Victim:
    """SIGSTOP a worker (one whose pid `among` accepts) while the PostgreSQL storage shows its
    trial RUNNING, so the test can kill it mid-trial."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and alive():
        time.sleep(0.3)
        if not study_exists(storage, study):
            continue
        for trial in optuna.load_study(study_name=study, storage=storage).trials:
            if trial.state != TrialState.RUNNING or "worker" not in trial.user_attrs:
                continue
            pid = int(trial.user_attrs["worker"].rsplit(":", 1)[1])
            if not among(pid):
                continue
            os.kill(pid, signal.SIGSTOP)
            now = optuna.load_study(study_name=study, storage=storage).trials[trial.number]
            if now.state == TrialState.RUNNING:
                return Victim(pid, trial.number)
            os.kill(pid, signal.SIGCONT)  # it finished meanwhile; look again
    pytest.fail("no worker was caught mid-trial")


@pytest.fixture
def freeze_mid_trial() -> Callable[..., Victim]:
    """`freeze(storage, study, run, among=...)`: a worker stopped mid-trial while `run`
    goes on (see above)."""

    def freeze(
        storage: str,
        study: str,
        run: subprocess.Popen[str],
        among: Callable[[int], bool] = lambda pid: True,
    ) -> Victim:
        return freeze_a_worker_mid_trial(storage, study, lambda: run.poll() is None, among)

    return freeze


@pytest.fixture
def wait_for_study() -> Callable[[str, str, subprocess.Popen[str]], None]:
    """`wait(storage, study, run)`: until `run` has made the PostgreSQL study and set it up
    (its config is the last thing a first run writes), so that a worker may join."""

    def wait(storage: str, study: str, run: subprocess.Popen[str]) -> None:
        deadline = time.monotonic() + 180
        while (
            not study_exists(storage, study)
            or "config" not in optuna.load_study(study_name=study, storage=storage).user_attrs
        ):
            assert run.poll() is None, "the run ended before the study was set up"
            assert time.monotonic() < deadline, "the study was not set up in time"
            time.sleep(0.3)

    return wait


@pytest.fixture(scope="session")
def tiny_offsets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 5-trial study of the space studies had before FLOPs targets (a global
    ratio plus per-group offsets) in `m.db`; copy the folder before changing it."""
    from medslim.search.cli import main

    folder = tmp_path_factory.mktemp("tiny-offsets")
    url = f"sqlite:///{folder / 'm.db'}"
    extra = ("--allocations", "offsets")
    assert main(["run", "--storage", url, "--trials", "5", *Medslim.TINY, *extra]) == 0
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
