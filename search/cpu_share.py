"""How many CPU threads a process that runs trials takes: the cores it may use (its CPU
affinity and its cgroup's CPU quota), shared with the medslim processes already running
trials on this machine, so that a worker joining a busy machine does not take every core
and leave one trial crawling while the study waits for it.

Each process that runs trials (`loop.run_trials`) keeps a file named by its pid in a folder
of the user's runtime directory while it runs; a file whose process is gone (killed) is
ignored and removed.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cores() -> int:
    """The cores this process may run on: its affinity, capped by a cgroup CPU quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
    except (OSError, ValueError):
        return cores
    if quota == "max":
        return cores
    return max(1, min(cores, math.ceil(int(quota) / int(period))))


def running_folder() -> Path:
    """In the user's runtime folder (`$XDG_RUNTIME_DIR`), else in the temporary folder
    (containers and batch nodes often have no per-user runtime folder)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    user = getattr(os, "getuid", lambda: "user")()
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "medslim" / "running"
    return Path(tempfile.gettempdir()) / f"medslim-{user}" / "running"


def others_running() -> int:
    """Other live processes on this machine that run medslim trials now."""
    folder = running_folder()
    if not folder.is_dir():
        return 0
    count = 0
    for entry in folder.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        if _same_process(int(entry.name), entry):
            count += 1
        else:
            entry.unlink(missing_ok=True)
    return count


def fair_threads(sharing: int = 1) -> int:
    """Threads for each of `sharing` processes about to start here, beside the ones running
    already: the usable cores divided among them all (at least one)."""
    return max(1, usable_cores() // (others_running() + sharing))


def share_cores(threads: int | None) -> int | None:
    """Set this process's torch threads: `threads`, else its fair share when other medslim
    processes run trials here (said in the log); else torch's default stays. Returns the
    number set."""
    if threads is None:
        others = others_running()
        if not others:
            return None
        threads = fair_threads()
        logger.info(
            "%d other medslim process(es) run trials on this machine: this one takes %d of "
            "its %d cores (--threads to choose)",
            others,
            threads,
            usable_cores(),
        )
    import torch

    torch.set_num_threads(threads)
    return threads


@contextmanager
def running_trials_here() -> Iterator[None]:
    """Mark this process as one that runs trials (others count it) while the block runs."""
    folder = running_folder()
    entry = folder / str(os.getpid())
    try:
        folder.mkdir(parents=True, exist_ok=True)
        entry.write_text(_start_time(os.getpid()) or "")
    except OSError:  # no writable runtime folder: this process goes uncounted
        yield
        return
    try:
        yield
    finally:
        entry.unlink(missing_ok=True)


def _same_process(pid: int, entry: Path) -> bool:
    """The process that wrote `entry` still runs (not another one that reused its pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    try:
        recorded = entry.read_text()
    except OSError:
        return False
    started = _start_time(pid)
    return not recorded or started is None or started == recorded


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), which tells a reused pid
    apart."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None
