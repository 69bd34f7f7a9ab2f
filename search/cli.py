"""The `medslim` command line: run, pareto, datasets, list."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

import optuna
import torch

from objectives.data import list_datasets
from search.config import DEFAULT_OBJECTIVES, METHODS, OBJECTIVES, StudyConfig
from search.dashboard import publish
from search.inspect_cli import add_inspect_commands, add_pareto_arguments, pareto_output
from search.pareto import compute_front, format_front
from search.samplers import SAMPLERS, sampler_names
from search.screening import DEFAULT_MARGIN, screened_out
from search.sensitivity import format_curves, study_curves
from search.storage import open_storage, study_names
from search.study import finished_count, prepare
from search.workers import (
    Interrupts,
    join_study,
    publish_target,
    run_here,
    run_workers,
    work,
)
from spaces.architectures import get_preset, preset_names, spec_to_dict
from spaces.criteria import CRITERIA, criterion_names
from spaces.errors import UsageError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
DEFAULTS = StudyConfig()


def _add_storage(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage",
        default=DEFAULTS.storage,
        help="Optuna storage URL (sqlite:///file.db, postgresql://..., mysql://...) or a "
        "journal file ending in .log (default: %(default)s)",
    )
    parser.add_argument("--study", help="study name (default: derived from dataset, model, space)")


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    _add_storage(parser)
    parser.add_argument(
        "--dataset",
        default=DEFAULTS.dataset,
        help="a registered name (see `medslim datasets`) or a MedMNIST-layout "
        ".npz path (default: %(default)s)",
    )
    parser.add_argument(
        "--data-dir",
        help="where MedMNIST files are cached (default: $MEDSLIM_DATA_DIR or the user cache)",
    )
    parser.add_argument(
        "--model",
        help=f"teacher preset: {', '.join(preset_names())} "
        "(default: mlp for tabular data, resnet8 for images on CPU, resnet18 on CUDA)",
    )
    parser.add_argument(
        "--teacher", help="load the teacher's state dict from this file instead of training it"
    )
    parser.add_argument(
        "--teacher-epochs",
        type=int,
        help="teacher training epochs (default: 60 tabular, 10 images)",
    )
    parser.add_argument(
        "--pruning",
        default=DEFAULTS.pruning,
        choices=["structured", "unstructured"],
        help="channels removed (smaller model) or weights masked (default: %(default)s)",
    )
    parser.add_argument(
        "--criterion",
        default=DEFAULTS.criterion,
        help=f"importance criterion: {', '.join(criterion_names())}, or `search` "
        "to let each trial choose (default: %(default)s)",
    )
    parser.add_argument(
        "--max-ratio",
        type=float,
        default=DEFAULTS.max_ratio,
        help="largest pruning ratio of any group (default: %(default)s)",
    )
    parser.add_argument(
        "--max-offset",
        type=float,
        default=DEFAULTS.max_offset,
        help="largest per-group deviation from the trial's global ratio; 0 "
        "searches uniform ratios only (default: %(default)s)",
    )
    parser.add_argument(
        "--iterative-steps",
        type=int,
        default=DEFAULTS.iterative_steps,
        help="prune in K steps with fine-tuning after each (default: %(default)s)",
    )
    parser.add_argument(
        "--baselines",
        type=int,
        default=DEFAULTS.baselines,
        help="uniform-ratio trials enqueued first (default: %(default)s)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        help="fine-tune epochs after each pruning step (default: 3 tabular, 1 images)",
    )
    parser.add_argument(
        "--method",
        default=DEFAULTS.method,
        choices=METHODS,
        help="prune the teacher, distill searched students, or both on one front "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--student-epochs",
        type=int,
        help="training epochs of a distilled student (default: 60 tabular, 3 images)",
    )
    parser.add_argument(
        "--cv",
        type=int,
        default=DEFAULTS.cv,
        help="score each pruning trial by K-fold stratified cross-validation over train+val "
        "instead of the single val split (default: 0, the val split)",
    )
    parser.add_argument(
        "--screen",
        type=float,
        nargs="?",
        const=DEFAULT_MARGIN,
        metavar="MARGIN",
        help="fine-tune a pruned candidate only if no earlier one had fewer FLOPs and a val "
        "AUC more than MARGIN higher right after pruning (default margin with no value: "
        f"{DEFAULT_MARGIN}); stopped candidates are PRUNED trials and do not count as trials",
    )
    parser.add_argument(
        "--sensitivity-drop",
        type=float,
        help="cap each group's ratio at the largest one whose val AUC drop, pruned alone "
        "without fine-tuning, stays within this (see `medslim sensitivity`)",
    )
    parser.add_argument(
        "--kd",
        action=argparse.BooleanOptionalAction,
        help="fine-tune pruned models on the teacher's soft labels too (default: on for "
        "images without --cv, where it measured best in benchmarks/front_quality.py; off "
        "for tabular data)",
    )
    parser.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
    parser.add_argument(
        "--lr",
        type=float,
        default=DEFAULTS.lr,
        help="teacher learning rate; fine-tuning uses half (default: %(default)s)",
    )
    parser.add_argument(
        "--objectives",
        default=",".join(DEFAULT_OBJECTIVES),
        help=f"comma-separated subset of {', '.join(OBJECTIVES)} (default: %(default)s)",
    )
    parser.add_argument(
        "--max-flops",
        type=float,
        help="constraint: a number <= 1 is a fraction of the teacher's FLOPs, "
        "above 1 an absolute FLOPs count",
    )
    parser.add_argument("--min-auc", type=float, help="constraint: smallest acceptable val AUC")
    parser.add_argument(
        "--sampler",
        default=DEFAULTS.sampler,
        help=f"{', '.join(sampler_names())} (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed)
    parser.add_argument(
        "--trials",
        type=int,
        default=DEFAULTS.trials,
        help="finished trials the study should hold; a re-run continues up to "
        "this number (default: 200 tabular, 30 images)",
    )
    parser.add_argument(
        "--device", default=DEFAULTS.device, help="auto, cpu or cuda (default: auto)"
    )
    parser.add_argument(
        "--force-config",
        action="store_true",
        help="continue an existing study even though its stored config differs",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--workers",
        type=int,
        default=DEFAULTS.workers,
        help="worker processes on this machine, sharing its cores (default: %(default)s)",
    )
    _add_heartbeat(parser)


def _add_heartbeat(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--heartbeat",
        type=int,
        default=DEFAULTS.heartbeat,
        help="seconds between a running trial's heartbeats on an RDB storage; a trial "
        "silent for three is failed and retried (default: %(default)s)",
    )


def config_from_args(args: argparse.Namespace) -> StudyConfig:
    return StudyConfig(
        dataset=args.dataset,
        data_dir=args.data_dir,
        model=args.model,
        teacher=args.teacher,
        teacher_epochs=args.teacher_epochs,
        pruning=args.pruning,
        criterion=args.criterion,
        max_ratio=args.max_ratio,
        max_offset=args.max_offset,
        iterative_steps=args.iterative_steps,
        baselines=args.baselines,
        epochs=args.epochs,
        method=args.method,
        student_epochs=args.student_epochs,
        kd=args.kd,
        cv=args.cv,
        sensitivity_drop=args.sensitivity_drop,
        screen=args.screen,
        batch_size=args.batch_size,
        lr=args.lr,
        objectives=tuple(o.strip() for o in args.objectives.split(",") if o.strip()),
        max_flops=args.max_flops,
        min_auc=args.min_auc,
        sampler=args.sampler,
        seed=args.seed,
        trials=args.trials,
        storage=args.storage,
        study=args.study,
        device=args.device,
        force_config=args.force_config,
        workers=args.workers,
        heartbeat=args.heartbeat,
    )


def cmd_run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    log = (lambda message: None) if args.no_progress else (lambda m: print(m, file=sys.stderr))
    session = prepare(config, log=log)
    config = session.config  # resolved: the data kind's defaults filled in
    study = session.study
    done = finished_count(study)
    log(
        f"study {study.study_name} in {config.storage}: {done} finished trials, "
        f"target {config.trials}"
    )
    publish_target(study, config.trials)
    try:
        if config.workers > 1:
            code = run_workers(session, progress=not args.no_progress)
            if code:
                return code
        else:
            run_here(session, progress=not args.no_progress)
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: {finished_count(study)} finished trials are kept in "
            f"{config.storage} (study {study.study_name}); run the same command again to resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    front = compute_front(study)
    if not front.members:
        reasons = {
            t.user_attrs.get("fail_reason")
            for t in study.trials
            if t.user_attrs.get("fail_reason")
        }
        print(
            f"no trial finished; failures: {'; '.join(sorted(reasons)) or 'unknown'}",
            file=sys.stderr,
        )
        return 1
    if config.screen is not None:
        log(f"screening stopped {screened_out(study)} candidates before their fine-tune")
    publish(study)  # figures and a summary note for optuna-dashboard
    print(format_front(front))
    return 0


def load_existing_study(storage_url: str, name: str | None) -> optuna.Study:
    storage = open_storage(storage_url)
    names = study_names(storage)
    if name is None:
        if len(names) != 1:
            listing = ", ".join(names) if names else "none"
            raise UsageError(
                f"{storage_url} holds {len(names)} studies ({listing}); pick one with --study"
            )
        name = names[0]
    if name not in names:
        raise UsageError(
            f"no study {name!r} in {storage_url}; studies there: {', '.join(names) or 'none'}"
        )
    return optuna.load_study(study_name=name, storage=storage)


def cmd_pareto(args: argparse.Namespace) -> int:
    study = load_existing_study(args.storage, args.study)
    print(pareto_output(study, args))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be 1 or more, got {args.threads}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    quiet = args.no_progress or args.managed
    log = (lambda message: None) if quiet else (lambda m: print(m, file=sys.stderr))
    try:
        with Interrupts() as interrupts:
            with interrupts.allowed():  # no trial of ours runs yet: stop at once
                study = load_existing_study(args.storage, args.study)
                session = join_study(
                    study,
                    storage=args.storage,
                    trials=args.trials,
                    seed=args.seed,
                    log=log,
                    device=args.device,
                    data_dir=args.data_dir,
                    heartbeat=args.heartbeat,
                )
            log(f"worker joined {study.study_name}: {finished_count(study)} trials finished")
            ran = work(session, interrupts)
    except KeyboardInterrupt:
        if not args.managed:  # a managed worker's parent prints the one line
            print(
                "\ninterrupted: this worker left the study, its finished trials are kept; "
                "run the same command again to rejoin",
                file=sys.stderr,
            )
        return EXIT_INTERRUPTED
    log(f"worker ran {ran} trials; the study holds {finished_count(study)} finished")
    return 0


def _add_worker_command(commands: argparse._SubParsersAction) -> None:
    worker = commands.add_parser(
        "worker", help="join an existing study (from any machine) and run its trials"
    )
    _add_storage(worker)
    worker.add_argument(
        "--trials", type=int, help="finished trials to reach (default: the run's --trials)"
    )
    worker.add_argument("--device", default=DEFAULTS.device, help="auto, cpu or cuda")
    worker.add_argument("--data-dir", help="where this machine keeps MedMNIST files")
    worker.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    worker.add_argument("--seed", type=int, help="sampler seed (default: random per worker)")
    worker.add_argument("--no-progress", action="store_true", help="no log lines")
    worker.add_argument("--managed", action="store_true", help=argparse.SUPPRESS)
    _add_heartbeat(worker)
    worker.set_defaults(handler=cmd_worker)


def cmd_datasets(args: argparse.Namespace) -> int:
    from pathlib import Path

    rows = list_datasets(Path(args.data_dir) if args.data_dir else None)
    print(f"{'name':<16} {'task':<26} {'channels':>8} {'outputs':>7} {'cached':>6}  description")
    for row in rows:
        channels = "-" if row.channels is None else str(row.channels)
        print(
            f"{row.name:<16} {row.task:<26} {channels:>8} {row.n_outputs:>7} "
            f"{'yes' if row.cached else 'no':>6}  {row.description}"
        )
    return 0


def cmd_sensitivity(args: argparse.Namespace) -> int:
    """Prune one group at a time, print the AUC-drop curves, keep them in the study."""
    config = config_from_args(args)
    log = (lambda message: None) if args.no_progress else (lambda m: print(m, file=sys.stderr))
    session = prepare(config, log=log)
    curves = study_curves(
        session.study,
        session.teacher,
        session.data,
        session.unit_names,
        teacher_auc=session.teacher_scores.val_auc,
        criterion=session.space.criterion or "l1",
        pruning=session.space.pruning,
        seed=config.seed,
        log=log,
    )
    ceilings = dict(session.space.ceilings) if config.sensitivity_drop is not None else None
    print(format_curves(curves, ceilings))
    publish(session.study)
    print(
        f"curves kept in study {session.study.study_name}; `medslim run` with the same flags "
        "and --sensitivity-drop D caps each group's ratio by them"
    )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    print("models:")
    for name in preset_names():
        print(f"  {name:<10} {spec_to_dict(get_preset(name))}")
    print("samplers:")
    for name, entry in SAMPLERS.items():
        print(f"  {name:<10} {entry.summary}")
    print("criteria:")
    for name, criterion in CRITERIA.items():
        print(f"  {name:<10} {criterion.summary}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medslim",
        description="Search pruned and distilled medical-imaging classifiers with Optuna, "
        "scored by validated AUC, accuracy and FLOPs.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser("run", help="run (or resume) a search study")
    _add_run_arguments(run)
    run.set_defaults(handler=cmd_run)
    pareto = commands.add_parser("pareto", help="print a study's Pareto front")
    _add_storage(pareto)
    pareto.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    add_pareto_arguments(pareto)
    pareto.set_defaults(handler=cmd_pareto)
    add_inspect_commands(commands, _add_storage, load_existing_study)
    datasets = commands.add_parser("datasets", help="list datasets and whether each is cached")
    datasets.add_argument("--data-dir")
    datasets.set_defaults(handler=cmd_datasets)
    sensitivity = commands.add_parser(
        "sensitivity", help="val AUC drop per group pruned alone (same flags as run)"
    )
    _add_run_arguments(sensitivity)
    sensitivity.set_defaults(handler=cmd_sensitivity)
    listing = commands.add_parser("list", help="list models, samplers and criteria")
    listing.set_defaults(handler=cmd_list)
    _add_worker_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        argv = ["run"]
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return EXIT_USAGE
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return handler(args)
    except UsageError as error:
        print(f"medslim: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # the reader (e.g. `head`) closed the pipe early: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python docs' recipe
        return 0


if __name__ == "__main__":
    sys.exit(main())
