"""The one error type for mistakes a user can fix: the CLI prints it in one line, exit code 2."""

from __future__ import annotations


class UsageError(ValueError):
    """Bad user input (a name, a file, a flag); its message says what is wrong and the fix."""
