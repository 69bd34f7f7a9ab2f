"""The inspect-and-pick commands of `medslim`: pareto, report, dashboard, export; each a
thin handler over `medslim.load_study(...)` and its `StoredStudy`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from medslim.errors import ExportMismatch, UsageError
from medslim.search.cli.study_commands import add_storage

logger = logging.getLogger("medslim")
EXIT_FAILED = 1
DEFAULT_MARGIN = 0.01
DEFAULT_RESAMPLES = 1000


def add_inspect_commands(commands: argparse._SubParsersAction) -> None:
    """`pareto`, `report`, `dashboard` and `export`, each reading a study."""
    pareto = commands.add_parser("pareto", help="print a study's Pareto front")
    add_storage(pareto)
    pareto.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    pareto.add_argument(
        "--margin",
        type=float,
        default=DEFAULT_MARGIN,
        help="non-inferiority margin in AUC: a member is non-inferior when the lower bound "
        "of its AUC difference to the teacher is above -margin (default: %(default)s)",
    )
    pareto.add_argument(
        "--resamples",
        type=int,
        default=DEFAULT_RESAMPLES,
        help="stratified bootstrap resamples for the 95%% intervals (default: %(default)s)",
    )
    pareto.add_argument(
        "--no-test", action="store_true", help="validation columns only; skip test re-scoring"
    )
    add_data_dir(pareto, "for the test split")
    pareto.set_defaults(handler=cmd_pareto)

    report = commands.add_parser("report", help="write a standalone HTML report of a study")
    add_storage(report)
    report.add_argument("--out", default="report.html", help="HTML file (default: %(default)s)")
    report.set_defaults(handler=cmd_report)

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
    add_data_dir(export, "for the validation inputs ONNX is checked on")
    export.set_defaults(handler=cmd_export)


def add_data_dir(parser: argparse.ArgumentParser, why: str) -> None:
    parser.add_argument(
        "--data-dir", help=f"where this machine keeps the data ({why}; default: the study's)"
    )


def cmd_pareto(args: argparse.Namespace) -> int:
    """The front as a table or JSON, re-scored on the test split unless --no-test."""
    from medslim.search.api import load_study
    from medslim.search.inspection.pareto import format_front
    from medslim.search.inspection.rescore import format_tests, front_json_with_tests

    if args.margin < 0:
        raise UsageError(f"--margin must be 0 or more, got {args.margin}")
    stored = load_study(args.storage, args.study)
    front = stored.front()
    if args.no_test or not front.members:
        print(json.dumps(front.as_json(), indent=2) if args.json else format_front(front))
        return 0
    rescored = stored.rescore(resamples=args.resamples, data_dir=args.data_dir)
    if args.json:
        print(json.dumps(front_json_with_tests(front.as_json(), rescored, args.margin), indent=2))
    else:
        print(f"{format_front(front)}\n\n{format_tests(front, rescored, args.margin)}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from medslim.search.api import load_study

    stored = load_study(args.storage, args.study)
    out = stored.report(args.out)
    finished = stored.front().finished
    print(f"wrote {out} ({finished} finished trials); figures and note saved to the study")
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    from medslim.search.inspection.dashboard import serve

    try:
        serve(args.storage, args.host, args.port)
    except KeyboardInterrupt:
        pass
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from medslim.search.api import load_study

    stored = load_study(args.storage, args.study)
    out = Path(args.out)
    try:
        check = stored.export(args.trial, out, format=args.format, data_dir=args.data_dir)
    except ExportMismatch as error:
        print(f"medslim: export failed: {error}", file=sys.stderr)
        return EXIT_FAILED
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
