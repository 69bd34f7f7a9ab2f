"""The commands a reader copies next: where a study lives as flags, and the export line of
a trial (a stored password masked)."""

from __future__ import annotations

import shlex

from medslim.search.config import implied_storage
from medslim.search.storage import display_url


def storage_flag(storage: str) -> str:
    """` --storage URL`, or nothing for the storage a command finds by itself (the
    `MEDSLIM_STORAGE` environment variable, else the default)."""
    return (
        "" if storage == implied_storage() else f" --storage {shlex.quote(display_url(storage))}"
    )


def location_flags(storage: str, study: str) -> str:
    """` --storage URL --study NAME` (no --storage for the default storage)."""
    return f"{storage_flag(storage)} --study {shlex.quote(study)}"


def export_command(
    storage: str, study: str, trial: int | str, *, lines: bool = False, card: bool = False
) -> str:
    """The `medslim export` line that writes trial `trial` as checked ONNX (with `card`: as
    a .pt bundle with its model card); with `lines`, split over three shell lines (for
    notes shown in a narrow box)."""
    what = (
        "--format pt --out trial-{0}.pt --card" if card else "--format onnx --out trial-{0}.onnx"
    )
    parts = [
        f"medslim export{storage_flag(storage)}",
        f"--study {shlex.quote(study)}",
        f"--trial {trial} {what.format(trial)}",
    ]
    return " \\\n    ".join(parts) if lines else " ".join(parts)
