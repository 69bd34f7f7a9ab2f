"""The `medslim` command line (`main`), a thin layer over `medslim.search.api`."""

from medslim.search.cli.app import main

__all__ = ["main"]
