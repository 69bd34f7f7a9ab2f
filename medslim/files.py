"""Files written whole or not at all, and a full disk told in one line.

Every file medslim keeps (a trial's model in the artifact store, the teacher and its
logits in a cache) is written under a temporary name in its folder and renamed once
complete, so a full disk or a killed process never leaves a partial file under the real
name. A write that fails for lack of space raises `DiskFull`, which names the path, its
free space and what the write needed. Standard library only: every layer writes files.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import BinaryIO

from medslim.errors import DiskFull

NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
"""No space left, the quota reached, a file larger than the process may write."""
_NO_SPACE_TEXT = ("database or disk is full", "no space left on device", "disk quota exceeded")
"""The same, as SQLite (through SQLAlchemy) and some libraries word it."""


def is_disk_full(error: BaseException) -> bool:
    """Whether `error`, or an error it was raised from, is a write failing for lack of
    space."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DiskFull):
            return True
        if isinstance(current, OSError) and current.errno in NO_SPACE:
            return True
        if any(text in str(current).lower() for text in _NO_SPACE_TEXT):
            return True
        current = current.__cause__ or current.__context__
    return False


def free_bytes(path: Path) -> int | None:
    """Free space on the disk that holds `path` (or its nearest existing folder)."""
    for folder in (path, *path.parents):
        if folder.exists():
            try:
                return shutil.disk_usage(folder).free
            except OSError:
                return None
    return None


def disk_full(path: Path, needed: int | None) -> DiskFull:
    """The `DiskFull` of a write of `needed` bytes to `path` that found no space."""
    return DiskFull(str(path), needed, free_bytes(path))


def write_atomically(path: Path, content: BinaryIO | bytes) -> None:
    """Write `content` (bytes, or a readable binary file) as `path`: under a temporary name
    in the same folder first, renamed once complete. Raises `DiskFull` when space runs out
    (the partial file is removed)."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with open(partial, "wb") as handle:
            if isinstance(content, bytes):
                handle.write(content)
            else:
                shutil.copyfileobj(content, handle)
        os.replace(partial, path)
    except BaseException as error:
        partial.unlink(missing_ok=True)
        if isinstance(error, OSError) and is_disk_full(error):
            raise disk_full(path, _size_of(content)) from error
        raise


def _size_of(content: BinaryIO | bytes) -> int | None:
    if isinstance(content, bytes):
        return len(content)
    try:
        return os.fstat(content.fileno()).st_size
    except (OSError, AttributeError, ValueError):  # a stream without a file behind it
        return None
