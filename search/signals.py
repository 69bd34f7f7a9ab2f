"""Stop signals: Ctrl-C (SIGINT) and SIGTERM (`kill`, a batch scheduler, a dying parent) stop
a command the same way, as a KeyboardInterrupt where it is safe, and the exit code says which
one arrived (130 or 143). A worker started by `run --workers` also stops when its parent dies.

Standard library only: the CLI installs these before anything heavy is imported.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_received: list[int] = []


def note(signum: int) -> None:
    """Remember a stop signal, so the command's exit code can name it."""
    _received.append(signum)


def exit_code() -> int:
    """128 + the last stop signal (130 for Ctrl-C, 143 for SIGTERM), as shells report it."""
    return 128 + (_received[-1] if _received else signal.SIGINT)


def in_main_thread() -> bool:
    """Python lets only the main thread install signal handlers."""
    return threading.current_thread() is threading.main_thread()


@contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """While a command runs, SIGTERM raises KeyboardInterrupt as Ctrl-C does (so `kill` and a
    scheduler's stop record the running trial as FAIL instead of leaving it RUNNING)."""
    _received.clear()
    if not in_main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        note(signum)
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, interrupt) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def die_with_parent(parent: int) -> None:
    """Send this process SIGTERM when `parent` dies, even by SIGKILL: the kernel's
    parent-death signal on Linux, a watching thread elsewhere. Called first thing in a worker
    that `run --workers` started, with the parent's pid."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) == 0:
            if os.getppid() != parent:  # it died before the signal was armed
                os.kill(os.getpid(), signal.SIGTERM)
            return
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _watch_parent(parent: int, every: float = 1.0) -> None:
    while os.getppid() == parent:
        time.sleep(every)
    os.kill(os.getpid(), signal.SIGTERM)
