"""Progress where people look: with stderr redirected (a log file, a batch job) a study says
each teacher epoch and each finished trial in a line; on a terminal the teacher has a bar;
rejected students, and a front without students, are said. Real `medslim` processes; the
terminal is a real pseudo-terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import time

import pytest

from medslim.search.progress import duration

pytestmark = pytest.mark.e2e


def test_a_redirected_run_says_each_teacher_epoch_and_each_finished_trial(medslim) -> None:
    done = medslim.run(
        *("run", "--storage", "sqlite:///p.db", "--trials", "3", "--baselines", "2"),
        *("--teacher-epochs", "4", "--epochs", "1"),
    )
    assert done.returncode == 0, done.stderr
    epochs = re.findall(
        r"^teacher epoch (\d)/4: val AUC 0\.\d{4} \(best 0\.\d{4}\), ", done.stderr, re.M
    )
    assert epochs == ["1", "2", "3", "4"], done.stderr
    finished = re.findall(r"^trial \d+ finished \((\d) of 3\): val AUC ", done.stderr, re.M)
    assert finished == ["1", "2", "3"], done.stderr
    assert "\r" not in done.stderr, "no bar in a log file"


def test_rejected_students_are_said_and_so_is_a_front_without_students(medslim) -> None:
    done = medslim.run(
        *("run", "--storage", "sqlite:///s.db", "--trials", "4", "--baselines", "2"),
        *("--teacher-epochs", "3", "--epochs", "1", "--method", "both"),
        *("--student-epochs", "2", "--max-flops", "0.05"),
    )
    assert done.returncode == 0, done.stderr
    rejected = re.findall(
        r"^trial \d+: student rejected before training: student needs [\d,]+ FLOPs, "
        r"\d+\.\d× --max-flops [\d,]+$",
        done.stderr,
        re.M,
    )
    assert len(rejected) >= 3, "the three seeds are far above 5% of the teacher's FLOPs"
    students_on_front = any(
        line.split()[1:2] == ["distilled"] for line in done.stdout.splitlines()
    )
    said = "no distilled student reached the front" in done.stderr
    assert said != students_on_front, done.stdout + done.stderr


def test_the_teachers_training_has_a_bar_on_a_terminal(medslim) -> None:
    main, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    command = ["run", "--storage", "sqlite:///t.db", "--trials", "2", "--baselines", "2"]
    run = subprocess.Popen(
        [sys.executable, "-m", "medslim.search.cli", *command, "--teacher-epochs", "20"],
        cwd=medslim.cwd,
        env=medslim.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=terminal,
    )
    os.close(terminal)
    shown = b""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the process closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    run.wait(timeout=60)
    os.close(main)
    text = shown.decode(errors="replace")
    assert run.returncode == 0, text
    assert re.search(r"teacher: +100%\|.*\| 20/20 \[.*val AUC 0\.\d{4}", text), text[-2000:]
    assert "teacher epoch" not in text, "a bar, not a line per epoch"


def test_durations_read_like_a_clock() -> None:
    assert [duration(s) for s in (4.2, 65, 3725)] == ["4s", "1m05s", "1h02m"]
