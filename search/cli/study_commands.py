"""`medslim run`, `worker` and `sensitivity`: the flags of a study, and thin handlers over
`medslim.search.api` and `medslim.search.workers`. Nothing heavy is imported until a
handler runs."""

from __future__ import annotations

import argparse
import logging

from medslim.errors import UsageError
from medslim.search import signals
from medslim.search.cli.settings import (
    add_settings,
    config_from_args,
    heartbeat_setting,
    quiet_setting,
    storage_settings,
    study_settings,
)

logger = logging.getLogger("medslim")


def add_storage(parser: argparse.ArgumentParser) -> None:
    for setting in storage_settings():
        setting.add_to(parser)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    add_settings(parser, study_settings())


def cmd_run(args: argparse.Namespace) -> int:
    from medslim.search.api import run
    from medslim.search.inspection.front_table import render_text

    stored = run(config_from_args(args), progress=False if args.no_progress else None)
    front = stored.front()
    print(f"study {front.study}: {front.finished} finished trials")
    print(render_text(stored.table(test=False)))
    pick = front.smallest_within(0.01)
    why = "the fewest FLOPs within 0.01 of the teacher's val AUC"
    if pick is None:
        pick, why = max(front.members, key=lambda m: m.val_auc), "the best val AUC"
    print(next_steps(stored.storage, stored.name, pick.trial, why))
    return 0


def next_steps(storage: str, study: str, trial: int, why: str) -> str:
    """The commands that come after a run, ready to paste (a password masked)."""
    from medslim.search.inspection.commands import location_flags, storage_flag

    url = storage_flag(storage)
    where = location_flags(storage, study)
    return "\n".join(
        [
            "\nnext:",
            f"  medslim pareto{where}   # the front's test scores, 95% intervals",
            f"  medslim report{where} --out report.html",
            f"  medslim export{where} --trial {trial} --format onnx --out model.onnx   # {why}",
            f"  medslim dashboard{url}",
        ]
    )


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    """A worker's flags: the run's settings it shares, with a worker's own meaning."""
    shared = {s.name: s for s in study_settings()}
    add_storage(parser)
    shared["trials"].add_to(parser, help="finished trials to reach (default: the run's --trials)")
    shared["device"].add_to(parser, help="auto, cpu or cuda")
    shared["data_dir"].add_to(
        parser, help="where this machine keeps the data (default: the study's)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="CPU threads (default: the cores this worker may use, shared with the medslim "
        "processes already running trials here)",
    )
    shared["seed"].add_to(parser, default=None, help="sampler seed (default: random per worker)")
    quiet_setting().add_to(parser)
    # Set by `run --workers`: the parent's pid; the worker stops when that process dies.
    parser.add_argument("--parent", type=int, help=argparse.SUPPRESS)
    heartbeat_setting().add_to(parser)


def cmd_worker(args: argparse.Namespace) -> int:
    if args.parent is not None:
        signals.die_with_parent(args.parent)
    from medslim.search.workers import run_worker

    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be 1 or more, got {args.threads}")
    try:
        ran, finished, name = run_worker(
            args.storage,
            args.study,
            trials=args.trials,
            seed=args.seed,
            threads=args.threads,
            device=args.device,
            data_dir=args.data_dir,
            heartbeat=args.heartbeat,
            progress=False if args.no_progress else None,
            managed=args.parent is not None,
        )
    except KeyboardInterrupt:
        if args.parent is not None:  # a managed worker's parent prints the one line
            return signals.exit_code()
        raise
    logger.info("worker ran %d trials; study %s holds %d finished", ran, name, finished)
    return 0


def cmd_sensitivity(args: argparse.Namespace) -> int:
    """Prune one group at a time, print the AUC-drop curves, keep them in the study."""
    from medslim.search.api import sensitivity
    from medslim.search.sensitivity import format_curves

    config = config_from_args(args)
    analysis = sensitivity(config)
    print(format_curves(analysis.curves, analysis.ceilings))
    print(
        f"curves kept in study {analysis.study.name}; `medslim run` with the same flags "
        "and --sensitivity-drop D caps each group's ratio by them"
    )
    return 0
