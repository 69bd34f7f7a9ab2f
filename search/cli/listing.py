"""`medslim list` and `medslim datasets`: what the registries hold. `list` imports no
torch (the registries load their implementations on first use)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_listing_commands(commands: argparse._SubParsersAction) -> None:
    listing = commands.add_parser("list", help="list models, samplers and criteria")
    listing.set_defaults(handler=cmd_list)
    datasets = commands.add_parser("datasets", help="list datasets and whether each is cached")
    datasets.add_argument("--data-dir")
    datasets.set_defaults(handler=cmd_datasets)


def cmd_list(args: argparse.Namespace) -> int:
    from medslim.search.samplers import SAMPLERS
    from medslim.spaces.criteria import CRITERIA
    from medslim.spaces.families import FAMILIES, PRESETS, preset_names, spec_to_dict

    print("models (--model):")
    for name in preset_names():
        print(f"  {name:<10} {spec_to_dict(PRESETS[name])}")
    print("model families (students: --method distill|both):")
    for name, family in FAMILIES.items():
        student = "student" if family.student is not None else "teacher only"
        print(f"  {name:<10} {family.input_kind} data, {student}")
    print("samplers (--sampler):")
    for name, sampler in SAMPLERS.items():
        print(f"  {name:<10} {sampler.summary}")
    print("criteria (--criterion):")
    for name, criterion in CRITERIA.items():
        print(f"  {name:<10} {criterion.summary}")
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
