"""What the benchmark scripts share: where the real data lies and where teachers are cached."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import platformdirs

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
"""../shared/data beside the project (never copied into it)."""


def show_progress(prefix: str = "  ") -> None:
    """medslim's log lines (teacher trained or loaded, study opened) on stdout, indented."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(f"{prefix}%(message)s"))
    logger = logging.getLogger("medslim")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def add_cache_argument(parser: argparse.ArgumentParser, what: str = "teachers") -> None:
    """`--cache DIR`: kept between runs so a teacher is trained once for all benchmarks."""
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(platformdirs.user_cache_dir("medslim")) / "benchmarks",
        help=f"where {what} are kept between benchmark runs",
    )
