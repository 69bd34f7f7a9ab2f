"""What a running study shows, where people look. On a terminal: a bar for the teacher's
epochs, then one for finished trials whose postfix names the trials still running, where
and for how long. Elsewhere (a log file, a batch job): one log line per teacher epoch and
per finished trial, and a line naming the running trials while the study waits for them,
so a redirected run is never silent for long. Rejected students and failed trials are one
line each in both."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from medslim.objectives.teacher import EpochReport
from medslim.search.records import trial_record
from medslim.search.screening import was_screened_out

logger = logging.getLogger(__name__)

WAITING_LINE_S = 60.0
"""Off a terminal, how often a study that waits for running trials says which."""
SHOWN_RUNNING = 3
"""Running trials named in the bar's postfix (the longest-running first)."""


def on_terminal(show: bool | None) -> bool:
    """`show`, or by default whether stderr is a terminal."""
    return sys.stderr.isatty() if show is None else show


def progress_bar(done: int, target: int, show: bool | None, desc: str = "finished trials") -> Any:
    """A tqdm bar on stderr; `show=None` shows it only on a terminal, so a bar never lands in
    a log file."""
    from tqdm.auto import tqdm

    unit = "epoch" if desc == "teacher" else "trial"
    return tqdm(total=target, initial=done, desc=desc, unit=unit, disable=not on_terminal(show))


@contextmanager
def lines_above_bar(visible: bool) -> Iterator[None]:
    """While a bar is shown, medslim's log lines print above it instead of through it."""
    if not visible:
        yield
        return
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm(loggers=[logging.getLogger("medslim")]):
        yield


def running_trials(study: optuna.Study) -> list[str]:
    """`#12 on host:4711 for 3m05s` per running trial, the longest-running first."""
    now = datetime.now()
    trials = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    started = sorted((t.datetime_start or now, t.number, t) for t in trials)
    return [
        f"#{number} on {t.user_attrs.get('worker', 'an unknown process')} for "
        f"{duration((now - start).total_seconds())}"
        for start, number, t in started
    ]


def duration(seconds: float) -> str:
    """`42s`, `3m05s`, `1h02m`."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def outcome(trial: FrozenTrial) -> str:
    """One trial's result in a few words: its scores, why it was rejected or why it failed."""
    record = trial_record(trial)
    if trial.state == TrialState.COMPLETE:
        seconds = trial.duration.total_seconds() if trial.duration else float("nan")
        return (
            f"val AUC {record.get('val_auc', float('nan')):.4f}, FLOPs× "
            f"{record.get('flops_ratio', float('nan')):.3f}, {seconds:.1f} s"
        )
    if trial.state == TrialState.PRUNED:
        if "rejected" in record:
            return f"student rejected before training: {record['rejected']}"
        return "screened out before its fine-tune" if was_screened_out(trial) else "not needed"
    return f"failed: {record.get('fail_reason', 'no reason recorded')}"


class TrialProgress:
    """Finished trials of one study as they come: the bar's count (and the running trials
    in its postfix) on a terminal; off it, a log line per finished trial. Rejected students
    and failed trials get a line either way."""

    def __init__(self, study: optuna.Study, done: int, target: int, show: bool | None) -> None:
        self.study = study
        self.target = target
        self.bar = progress_bar(done, target, show)
        self.visible = not self.bar.disable
        self._said_waiting = 0.0
        self.screened = 0

    def trial(self, trial: FrozenTrial, finished: int | None = None) -> None:
        """`trial` ended (by this process or another); `finished` trials are complete
        (counted here when not given, and only if something will show it)."""
        talking = logger.isEnabledFor(logging.INFO)
        if not (self.visible or talking or trial.state == TrialState.FAIL):
            return  # nothing shows it: no storage read per trial (benchmarks, quiet runs)
        if finished is None:
            finished = self._finished()
        self.bar.update(finished - self.bar.n)
        if trial.state == TrialState.COMPLETE:
            if self.visible:
                self.bar.set_postfix_str(self._postfix(trial), refresh=False)
            elif talking:
                logger.info(
                    "trial %d finished (%d of %d): %s%s",
                    trial.number,
                    finished,
                    self.target,
                    outcome(trial),
                    self._running_note(),
                )
            return
        record = trial_record(trial)
        if trial.state == TrialState.PRUNED and "rejected" in record:
            logger.info("trial %d: %s", trial.number, outcome(trial))
        elif was_screened_out(trial):
            self.screened += 1
            if not self.visible:
                logger.info("trial %d %s", trial.number, outcome(trial))
        elif trial.state == TrialState.FAIL:
            logger.warning("trial %d %s", trial.number, outcome(trial))

    def _finished(self) -> int:
        return len(self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))

    def waiting(self, finished: int) -> None:
        """The study waits for trials running elsewhere: name them (on a terminal in the
        postfix, elsewhere in a line at most every `WAITING_LINE_S`)."""
        self.bar.update(finished - self.bar.n)
        running = running_trials(self.study)
        if not running:
            return
        if self.visible:
            self.bar.set_postfix_str("running " + ", ".join(running[:SHOWN_RUNNING]))
        elif time.monotonic() - self._said_waiting >= WAITING_LINE_S:
            self._said_waiting = time.monotonic()
            waiting = ", ".join(running)
            logger.info("%d of %d trials finished; waiting for %s", finished, self.target, waiting)

    def close(self) -> None:
        """The bar at the study's final count (if the storage still answers), closed."""
        try:
            if self.visible:
                self.bar.update(self._finished() - self.bar.n)
        finally:
            self.bar.close()

    def _postfix(self, trial: FrozenTrial) -> str:
        record = trial_record(trial)
        text = (
            f"#{trial.number} AUC {record.get('val_auc', float('nan')):.3f} "
            f"FLOPs×{record.get('flops_ratio', float('nan')):.2f}"
        )
        if self.screened:
            text += f", {self.screened} screened out"
        running = running_trials(self.study)
        if running:
            text += "; running " + ", ".join(running[:SHOWN_RUNNING])
        return text

    def _running_note(self) -> str:
        running = running_trials(self.study)
        return f"; running {', '.join(running)}" if running else ""


@contextmanager
def teacher_progress(show: bool | None) -> Iterator[EpochReport]:
    """The teacher's training as it goes: a bar of epochs on a terminal, else a log line
    per epoch with its val AUC and time."""
    visible = on_terminal(show)
    bar: Any = None
    start = last = time.monotonic()

    def report(epoch: int, epochs: int, auc: float, best: float) -> None:
        nonlocal bar, last
        now = time.monotonic()
        if visible:
            if bar is None:
                bar = progress_bar(0, epochs, True, desc="teacher")
            bar.update(1)
            bar.set_postfix_str(f"val AUC {auc:.4f} (best {best:.4f})", refresh=False)
        else:
            logger.info(
                "teacher epoch %d/%d: val AUC %.4f (best %.4f), %.1f s (%.1f s in all)",
                epoch + 1,
                epochs,
                auc,
                best,
                now - last,
                now - start,
            )
        last = now

    try:
        yield report
    finally:
        if bar is not None:
            bar.close()
