"""The inspect-and-pick commands of `medslim`: pareto's test columns, report, dashboard,
export. `search.cli` owns the parser; this module adds these commands to it."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import optuna

from search.pareto import compute_front, format_front
from search.rescore import Bootstrap, format_tests, front_json_with_tests, rescore_front
from spaces.errors import UsageError

StudyLoader = Callable[[str, str | None], optuna.Study]
AddStorage = Callable[[argparse.ArgumentParser], None]


def add_pareto_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--margin",
        type=float,
        default=0.01,
        help="non-inferiority margin in AUC: a member is non-inferior when the lower bound "
        "of its AUC difference to the teacher is above -margin (default: %(default)s)",
    )
    parser.add_argument(
        "--resamples",
        type=int,
        default=Bootstrap.resamples,
        help="stratified bootstrap resamples for the 95%% intervals (default: %(default)s)",
    )
    parser.add_argument(
        "--no-test", action="store_true", help="validation columns only; skip test re-scoring"
    )
    parser.add_argument(
        "--data-dir", help="where this machine keeps MedMNIST files (for the test split)"
    )


def pareto_output(study: optuna.Study, args: argparse.Namespace) -> str:
    """The front as a table or JSON, re-scored on the test split unless --no-test."""
    front = compute_front(study)
    if args.margin < 0:
        raise UsageError(f"--margin must be 0 or more, got {args.margin}")
    if args.no_test or not front.members:
        return json.dumps(front.as_json(), indent=2) if args.json else format_front(front)
    data_dir = Path(args.data_dir) if args.data_dir else None
    bootstrap = Bootstrap(resamples=args.resamples)
    rescored = rescore_front(study, args.storage, front, bootstrap, data_dir=data_dir)
    if args.json:
        return json.dumps(front_json_with_tests(front.as_json(), rescored, args.margin), indent=2)
    return f"{format_front(front)}\n\n{format_tests(front, rescored, args.margin)}"


def add_inspect_commands(
    commands: argparse._SubParsersAction, add_storage: AddStorage, load_study: StudyLoader
) -> None:
    """`report`, `dashboard` and `export`, each reading a study from --storage/--study."""
    report = commands.add_parser("report", help="write a standalone HTML report of a study")
    add_storage(report)
    report.add_argument("--out", default="report.html", help="HTML file (default: %(default)s)")
    report.set_defaults(handler=lambda args: cmd_report(args, load_study))

    dashboard = commands.add_parser("dashboard", help="serve studies with optuna-dashboard")
    add_storage(dashboard)
    dashboard.add_argument("--host", default="127.0.0.1", help="(default: %(default)s)")
    dashboard.add_argument("--port", type=int, default=8080, help="(default: %(default)s)")
    dashboard.set_defaults(handler=cmd_dashboard)

    export = commands.add_parser("export", help="write a trial's model (.pt bundle or ONNX)")
    add_storage(export)
    export.add_argument("--trial", type=int, required=True, help="trial number")
    export.add_argument("--format", choices=("pt", "onnx"), default="pt")
    export.add_argument("--out", required=True, help="output file")
    export.set_defaults(handler=lambda args: cmd_export(args, load_study))


def cmd_report(args: argparse.Namespace, load_study: StudyLoader) -> int:
    from search.dashboard import publish
    from search.report import write_report

    study = load_study(args.storage, args.study)
    out = Path(args.out)
    data = write_report(study, out)
    publish(study)
    print(f"wrote {out} ({data.finished} finished trials); figures and note saved to the study")
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    from search.dashboard import serve

    print(f"optuna-dashboard on http://{args.host}:{args.port}/ (Ctrl-C stops)", file=sys.stderr)
    try:
        serve(args.storage, args.host, args.port)
    except KeyboardInterrupt:
        pass
    return 0


def cmd_export(args: argparse.Namespace, load_study: StudyLoader) -> int:
    from search.export import ExportMismatch, export_trial

    study = load_study(args.storage, args.study)
    out = Path(args.out)
    try:
        check = export_trial(study, args.storage, args.trial, args.format, out)
    except ExportMismatch as error:
        print(f"medslim: export failed: {error}", file=sys.stderr)
        return 1
    print(f"wrote trial {args.trial} to {out} ({args.format})")
    if check is not None:
        print(
            f"onnxruntime vs PyTorch on validation inputs: max abs diff {check.max_abs_diff:.3g}"
        )
        print(
            f"batch-1 latency: PyTorch {check.torch_latency_ms:.3f} ms, "
            f"onnxruntime {check.onnx_latency_ms:.3f} ms"
        )
    return 0
