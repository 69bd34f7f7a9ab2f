"""`medslim list` and `medslim datasets`: what the registries hold. `list` imports no
torch (the registries load their implementations on first use)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_listing_commands(commands: argparse._SubParsersAction) -> None:
    listing = commands.add_parser("list", help="list models, samplers and criteria")
    listing.add_argument(
        "source",
        nargs="?",
        help="a model source (torchvision, timm, monai, family): every name it offers "
        "(imports the library)",
    )
    listing.set_defaults(handler=cmd_list)
    datasets = commands.add_parser("datasets", help="list datasets and whether each is cached")
    datasets.add_argument("--data-dir")
    datasets.set_defaults(handler=cmd_datasets)


def cmd_list(args: argparse.Namespace) -> int:
    from medslim.search.methods import METHODS
    from medslim.search.samplers import SAMPLERS
    from medslim.spaces.criteria import CRITERIA
    from medslim.spaces.families import FAMILIES, PRESETS, preset_names, spec_to_dict
    from medslim.spaces.sources import SOURCES

    if args.source is not None:
        return _list_source(args.source)
    print("models (--model PRESET):")
    for name in preset_names():
        print(f"  {name:<10} {spec_to_dict(PRESETS[name])}")
    print("model sources (--model SOURCE:NAME, --model-args JSON):")
    for source in SOURCES.values():
        names = f": {', '.join(source.known)}" if source.known else ""
        extra = f" [pip install 'medslim[{source.extra}]']" if source.extra else ""
        print(f"  {source.syntax:<24} {source.summary}{extra}{names}")
    print("model families (students: --method distill|both):")
    for name, family in FAMILIES.items():
        student = "teacher only"
        if family.student is not None:
            student = "student" if family.student.any_teacher else "student of foreign teachers"
        print(f"  {name:<11} {family.input_kind} data, {student}")
    print("methods (--method NAME[,NAME...], all):")
    for name, method in METHODS.items():
        print(f"  {name:<14} {method.summary}")
    print("samplers (--sampler):")
    for name, sampler in SAMPLERS.items():
        print(f"  {name:<10} {sampler.summary}")
    print("criteria (--criterion):")
    for name, criterion in CRITERIA.items():
        print(f"  {name:<10} {criterion.summary}")
    _list_validation()
    return 0


def _list_validation() -> None:
    """What `--accept` can name, and the corruption sets of `--corruptions`."""
    from medslim.objectives.acceptance import METRICS
    from medslim.objectives.corruptions import GENERIC, MEDMNISTC_DATASETS

    print("acceptance criteria (run/pareto --accept METRIC[@POINT]=BOUND, sign written):")
    for name, rule in METRICS.items():
        where = f", {' or '.join(rule.tasks)} only" if rule.tasks else ""
        points = [f"@{p}0.90" for p in rule.points] + (["@severity1-5"] if rule.corrupted else [])
        extra = f", points {' '.join(points)}" if points else ""
        print(f"  {name:<12} {rule.better} is better{where}{extra}")
    print("corruption sets (--corruptions):")
    print(f"  {GENERIC:<12} medslim's modality-neutral set")
    print(f"  MedMNIST-C   {', '.join(MEDMNISTC_DATASETS)} [pip install 'medslim[robustness]']")


def _list_source(prefix: str) -> int:
    """Every name one source offers; imports its library."""
    from medslim.errors import UsageError
    from medslim.spaces.sources import get_source, missing_library

    source = get_source(prefix)
    if source.names is None:
        raise UsageError(f"source {prefix!r} has no list of names: {source.summary}")
    try:
        names = source.names()
    except ImportError as error:
        raise missing_library(source, error) from error
    for name in names:
        print(f"{prefix}:{name}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from medslim.objectives.data import default_data_dir, list_datasets, local_sources

    directory = Path(args.data_dir) if args.data_dir else default_data_dir()
    rows = list_datasets(directory)
    print(f"data dir: {directory}")
    print(
        f"{'name':<16} {'task':<26} {'channels':>8} {'outputs':>7} {'sizes':<15} "
        f"{'cached':<15} description"
    )
    for row in rows:
        channels = "-" if row.channels is None else str(row.channels)
        sizes = ",".join(map(str, row.sizes)) or "-"
        cached = ",".join(map(str, row.cached_sizes)) or ("yes" if row.cached else "no")
        print(
            f"{row.name:<16} {row.task:<26} {channels:>8} {row.n_outputs:>7} {sizes:<15} "
            f"{cached:<15} {row.description}"
        )
    found = local_sources(directory)
    if found:
        print(f"\nalso in {directory} (use the path with --dataset):")
        for name, kind in found:
            print(f"  {name:<30} {kind}")
    return 0
