"""The inspect-and-pick commands of `medslim`: pareto, report, dashboard, export; each a
thin handler over `medslim.load_study(...)` and its `StoredStudy`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from medslim.errors import ExportMismatch
from medslim.search.cli.study_commands import add_storage

logger = logging.getLogger("medslim")
EXIT_FAILED = 1
DEFAULT_MARGIN = 0.01
DEFAULT_RESAMPLES = 1000


def add_inspect_commands(commands: argparse._SubParsersAction) -> None:
    """`pareto`, `report`, `dashboard` and `export`, each reading a study."""
    pareto = commands.add_parser(
        "pareto", help="print a study's Pareto front with its test scores and verdicts"
    )
    add_storage(pareto)
    pareto.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    pareto.add_argument(
        "--wide",
        action="store_true",
        help="every column (CIs of every metric, operating points, calibration, latency "
        "quartiles, flags, export commands) instead of what fits 100 columns",
    )
    add_test_arguments(pareto)
    pareto.add_argument(
        "--robustness",
        action="store_true",
        help="score the corrupted test split too (MedMNIST-C's corruptions, or a generic set; "
        "seconds to minutes, cached in the study; on anyway when --accept names @severityN)",
    )
    pareto.set_defaults(handler=cmd_pareto)

    report = commands.add_parser("report", help="write a standalone HTML report of a study")
    add_storage(report)
    report.add_argument("--out", default="report.html", help="HTML file (default: %(default)s)")
    add_test_arguments(report)
    report.add_argument(
        "--no-robustness",
        dest="robustness",
        action="store_false",
        help="skip the corrupted test split (the report scores it by default)",
    )
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
    export.add_argument(
        "--original",
        action="store_true",
        help="the trial's own model even where `medslim refine` made a refined one",
    )
    add_data_dir(export, "for the validation inputs ONNX is checked on")
    export.add_argument(
        "--card",
        action="store_true",
        help="also write a model card beside the model (OUT.card.md and OUT.card.json): "
        "intended use, data, both models, the study's criteria and verdict, calibration, "
        "robustness, flips, subgroups, versions, and the TRIPOD+AI / CLAIM topics covered "
        "(front members only; scores the test split if not cached)",
    )
    export.add_argument(
        "--intended-use",
        metavar="TEXT",
        help="the card's intended use, in your words (else marked as missing)",
    )
    export.add_argument(
        "--resamples",
        type=int,
        default=DEFAULT_RESAMPLES,
        help="the card's bootstrap resamples (default: %(default)s)",
    )
    add_severities(export, "the card's corruption severities")
    export.set_defaults(handler=cmd_export)

    refine = commands.add_parser(
        "refine", help="fine-tune a front member longer and keep it beside its trial"
    )
    add_storage(refine)
    refine.add_argument("--trial", type=int, required=True, help="trial number")
    refine.add_argument(
        "--epochs",
        type=int,
        help="epochs on the teacher's soft labels, augmented, the best val epoch kept "
        "(default: 10)",
    )
    refine.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    add_data_dir(refine, "for the training and validation splits")
    refine.set_defaults(handler=cmd_refine)


def add_test_arguments(parser: argparse.ArgumentParser) -> None:
    """How the front is judged on the test split (`pareto` and `report`)."""
    parser.add_argument(
        "--accept",
        metavar="CRITERIA",
        help="judge by these criteria instead of those the study fixed (`run --accept`); "
        "shown as a post-hoc analysis when they differ: e.g. "
        "auc=-0.01,sensitivity@spec0.90=-0.03,ece=+0.02 (see `medslim run --help`)",
    )
    parser.add_argument(
        "--non-inferior-on",
        metavar="METRICS",
        help="(older spelling of --accept) metrics the verdict needs, comma-separated, all "
        "must pass: auc, acc, sensitivity, specificity (default: the study's criteria, "
        "else auc)",
    )
    parser.add_argument(
        "--margin",
        help="(with --non-inferior-on) a member passes a metric when the lower bound of its "
        "paired difference to the teacher is above -margin; one number, or per metric "
        f"like auc=0.01,sensitivity=0.05 (default: {DEFAULT_MARGIN})",
    )
    parser.add_argument(
        "--positive-class",
        metavar="CLASS",
        help="binary tasks: the class sensitivity, specificity and operating points are "
        "about, by name or label (default: the dataset's disease class, e.g. malignant, "
        "pneumonia; else label 1; its name is printed)",
    )
    parser.add_argument(
        "--corruptions",
        metavar="SET",
        help="corruption set for robustness: generic, or a MedMNIST dataset whose modality "
        "fits the images, e.g. chestmnist (default: the dataset's own MedMNIST-C set, else "
        "generic)",
    )
    add_severities(parser, "corruption severities to score, 1 (mild) to 5")
    parser.add_argument(
        "--resamples",
        type=int,
        default=DEFAULT_RESAMPLES,
        help="stratified bootstrap resamples for the 95%% intervals (default: %(default)s)",
    )
    parser.add_argument(
        "--no-test", action="store_true", help="validation columns only; skip test re-scoring"
    )
    add_data_dir(parser, "for the test split")


def test_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of `StoredStudy.table` the test flags set."""
    return {
        "test": not args.no_test,
        "accept": args.accept,
        "non_inferior_on": args.non_inferior_on,
        "margin": args.margin,
        "positive_class": args.positive_class,
        "resamples": args.resamples,
        "robustness": args.robustness,
        "corruptions": args.corruptions,
        "severities": args.severities,
        "data_dir": args.data_dir,
    }


def add_severities(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--severities",
        type=_severities,
        default=(1, 2, 3, 4, 5),
        metavar="N,...",
        help=f"{what} (default: 1,2,3,4,5)",
    )


def _severities(text: str) -> tuple[int, ...]:
    try:
        values = tuple(sorted({int(v) for v in text.split(",") if v.strip()}))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not a list of numbers 1-5: {text}") from error
    if not values or not set(values) <= {1, 2, 3, 4, 5}:
        raise argparse.ArgumentTypeError(f"severities are 1 to 5, got {text}")
    return values


def add_data_dir(parser: argparse.ArgumentParser, why: str) -> None:
    parser.add_argument(
        "--data-dir", help=f"where this machine keeps the data ({why}; default: the study's)"
    )


def cmd_pareto(args: argparse.Namespace) -> int:
    """The front as one table (or JSON), re-scored on the test split unless --no-test."""
    from medslim.search.api import load_study
    from medslim.search.inspection.front_table import front_json, render_text

    stored = load_study(args.storage, args.study)
    table = stored.table(**test_settings(args))
    if args.json:
        print(json.dumps(front_json(table, stored.front().as_json()), indent=2))
    else:
        head = stored.front()
        failed = f", {head.failed} failed" if head.failed else ""
        print(f"study {head.study}: {head.finished} finished trials{failed}")
        print(render_text(table, wide=args.wide))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from medslim.search.api import load_study

    stored = load_study(args.storage, args.study)
    settings = test_settings(args)
    out = stored.report(args.out, **settings)
    finished = stored.front().finished
    print(f"wrote {out} ({finished} finished trials); figures and notes saved to the study")
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    """optuna-dashboard over the storage, with the study's artifact store for downloads
    (read-only). The port is taken first, before the heavy imports."""
    from medslim.search.inspection.serving import bind

    server = bind(args.host, args.port)
    from medslim.search.inspection.dashboard import serve
    from medslim.search.stored import open_any_study

    try:
        ref = open_any_study(args.storage, args.study)
    except BaseException:
        server.server_close()
        raise

    def ready() -> None:
        print(
            f"optuna-dashboard on http://{args.host}:{args.port}/ (Ctrl-C stops)",
            file=sys.stderr,
        )

    try:
        serve(ref, server, ready=ready)
    except KeyboardInterrupt:
        pass
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from medslim.search.api import load_study
    from medslim.search.refined import refined_record

    stored = load_study(args.storage, args.study)
    out = Path(args.out)
    if args.card:
        stored.on_front(args.trial)  # refused before anything is written
    try:
        check = stored.export(
            args.trial, out, format=args.format, data_dir=args.data_dir, original=args.original
        )
    except ExportMismatch as error:
        print(f"medslim: export failed: {error}", file=sys.stderr)
        return EXIT_FAILED
    refined = None if args.original else refined_record(stored.study, args.trial)
    which = f"refined for {refined['epochs']} epochs" if refined else "as the trial left it"
    print(f"wrote trial {args.trial}'s model ({which}) to {out} ({args.format})")
    if check is not None:
        if check.measured:
            print(f"it is the {check.precision} ONNX file the trial was measured and scored as")
        against = "the fp32 PyTorch model" if check.precision != "fp32" else "PyTorch"
        print(
            f"onnxruntime vs {against} on validation inputs: max abs diff {check.max_abs_diff:.3g}"
        )
        print(
            f"batch-1 latency: PyTorch {check.torch_latency_ms:.3f} ms, "
            f"onnxruntime {check.onnx_latency_ms:.3f} ms"
        )
    if args.card:
        paths = stored.card(
            args.trial,
            out,
            intended_use=args.intended_use,
            data_dir=args.data_dir,
            resamples=args.resamples,
            severities=args.severities,
        )
        print(f"wrote the model card: {paths[0]} and {paths[1]}")
    return 0


def cmd_refine(args: argparse.Namespace) -> int:
    from medslim.search.api import load_study

    stored = load_study(args.storage, args.study)
    done = stored.refine(
        args.trial, epochs=args.epochs, device=args.device, data_dir=args.data_dir
    )
    record = done.record
    print(
        f"refined trial {done.trial} for {done.epochs} epochs (best val epoch "
        f"{done.best_epoch}): val AUC {done.before['val_auc']:.4f} → {record['val_auc']:.4f}, "
        f"val ACC {done.before['val_acc']:.4f} → {record['val_acc']:.4f}; kept beside the "
        "trial: pareto, report, dashboard and export use it"
    )
    return 0
