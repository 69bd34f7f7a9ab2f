"""The `medslim` command line: argparse over the Python API, one line per expected error.

Exit codes: 0 done, 1 a run or check that failed, 2 bad input (nothing written), 130
interrupted by Ctrl-C, 143 stopped by SIGTERM. Log lines go to stderr through the `medslim`
logger; results go to stdout. A storage URL's password never appears in either.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import NoReturn

from medslim.errors import MedslimError, UsageError
from medslim.files import is_disk_full
from medslim.search import signals
from medslim.search.cli.inspect_commands import add_inspect_commands
from medslim.search.cli.listing import add_listing_commands
from medslim.search.cli.study_commands import (
    add_run_arguments,
    add_worker_arguments,
    cmd_run,
    cmd_sensitivity,
    cmd_worker,
)
from medslim.search.config import implied_storage

EXIT_FAILED = 1
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: `medslim run: error: ...` and where the help is,
    not the usage block first (20 lines for `run`). Exit code 2, as argparse's."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    return _parser_and_commands()[0]


def command_parsers() -> dict[str, argparse.ArgumentParser]:
    """Each command's parser by name, in the order `medslim --help` lists them."""
    return dict(_parser_and_commands()[1].choices)


def _parser_and_commands() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    parser = _Parser(
        prog="medslim",
        description="Search pruned and distilled medical-imaging classifiers with Optuna, "
        "scored by validated AUC, accuracy and FLOPs.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser("run", help="run (or resume) a search study")
    add_run_arguments(run)
    run.set_defaults(handler=cmd_run)
    add_inspect_commands(commands)
    add_listing_commands(commands)
    sensitivity = commands.add_parser(
        "sensitivity", help="val AUC drop per group pruned alone (same flags as run)"
    )
    add_run_arguments(sensitivity)
    sensitivity.set_defaults(handler=cmd_sensitivity)
    worker = commands.add_parser(
        "worker", help="join an existing study (from any machine) and run its trials"
    )
    add_worker_arguments(worker)
    worker.set_defaults(handler=cmd_worker)
    return parser, commands


def main(argv: Sequence[str] | None = None) -> int:
    argv = joined_values(list(sys.argv[1:] if argv is None else argv))
    if not argv:
        argv = ["run"]
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return EXIT_USAGE
    if hasattr(args, "storage") and args.storage is None:
        args.storage = implied_storage()
    secret = getattr(args, "storage", "")
    quiet = getattr(args, "no_progress", False)
    with _logging_to_stderr(quiet=quiet, secret=secret), signals.stop_signals_interrupt():
        try:
            return handler(args)
        except UsageError as error:
            print(f"medslim: error: {redact(str(error), secret)}", file=sys.stderr)
            return EXIT_USAGE
        except MedslimError as error:
            print(f"medslim: {redact(str(error), secret)}", file=sys.stderr)
            return EXIT_FAILED
        except KeyboardInterrupt as interrupt:
            print(f"\n{redact(_interrupted(interrupt), secret)}", file=sys.stderr)
            return signals.exit_code()
        except BrokenPipeError:  # the reader (e.g. `head`) closed the pipe early: not an error
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python docs' recipe
            return 0
        except Exception as error:  # a full disk anywhere (a cache, the storage): one line
            if not is_disk_full(error):
                raise
            from medslim.search.storage import full_disk_error

            full = full_disk_error(error, secret)
            print(f"medslim: error: {redact(str(full), secret)}", file=sys.stderr)
            return EXIT_USAGE


NEGATIVE_VALUED = ("--window",)
"""Flags whose value may start with a minus sign (`--window -160,240`)."""


def joined_values(argv: list[str]) -> list[str]:
    """`--window -160,240` as `--window=-160,240`: argparse would take a value that starts
    with '-' and is not a plain number for a flag of its own."""
    joined: list[str] = []
    for arg in argv:
        if joined and joined[-1] in NEGATIVE_VALUED and arg.startswith("-") and "," in arg:
            joined[-1] = f"{joined[-1]}={arg}"
        else:
            joined.append(arg)
    return joined


def _interrupted(interrupt: KeyboardInterrupt) -> str:
    """A run says what it kept (`StudyInterrupted`); anything else, that nothing was lost."""
    text = str(interrupt)
    return text if text else "interrupted: finished trials are kept; run the same command again"


def redact(text: str, url: str) -> str:
    """`storage.redact`, without importing SQLAlchemy for a URL that holds no password."""
    if "@" not in url:
        return text
    from medslim.search.storage import redact as redact_url

    return redact_url(text, url)


class _Redacting(logging.Formatter):
    """Log lines with the storage URL's password masked (a library's message may quote it)."""

    def __init__(self, secret: str) -> None:
        super().__init__("%(message)s")
        self.secret = secret

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self.secret)


class _LibraryToDebug(logging.Handler):
    """Python warnings and the log records of libraries (pydicom's "value length exceeds",
    torch's deprecations) as debug lines of `medslim.library`: a normal run's stderr holds
    medslim's own lines only. (Without a handler on the root logger, Python would print
    them through its last-resort handler.)"""

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("medslim"):
            return
        library = logging.getLogger("medslim.library")
        library.debug("%s: %s", record.name, record.getMessage().strip())


@contextmanager
def _logging_to_stderr(*, quiet: bool, secret: str) -> Iterator[None]:
    """The `medslim` logger's lines on stderr while a command runs (warnings only with
    --no-progress), the storage URL's password masked; library warnings kept off it."""
    logger = logging.getLogger("medslim")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Redacting(secret))
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    library = _LibraryToDebug()
    logging.getLogger().addHandler(library)
    logging.captureWarnings(True)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        logging.getLogger().removeHandler(library)
        logger.removeHandler(handler)
        logger.setLevel(previous)
