"""The `size` setting: one number (a square image's side, or a cube's) or D,H,W for volumes.

Pure Python, so the CLI checks it before anything heavy is imported.
"""

from __future__ import annotations

from medslim.errors import UsageError

Size = int | tuple[int, int, int]
SMALLEST, LARGEST = 8, 2048
VOLUME_SIZE = 64
"""Default side of NIfTI and DICOM volumes (MedMNIST+'s larger 3-D size)."""


def split_size(text: str) -> int | tuple[int, ...]:
    """`64` or `32,64,64` as numbers (checked by `check_size`); ValueError if not numbers."""
    parts = tuple(int(part) for part in text.split(","))
    return parts[0] if len(parts) == 1 else parts


def check_size(
    size: int | tuple[int, ...] | list[int] | None, setting: str = "size"
) -> Size | None:
    """`size` as a study keeps it (a list read back from JSON becomes a tuple), refused in
    one line naming `setting` when it is out of range or has neither 1 nor 3 numbers."""
    if size is None:
        return None
    sides = (size,) if isinstance(size, int) else tuple(int(side) for side in size)
    if len(sides) not in (1, 3):
        raise UsageError(
            f"{setting} {_text(sides)} has {len(sides)} numbers; give one, or D,H,W for volumes"
        )
    if any(not SMALLEST <= side <= LARGEST for side in sides):
        raise UsageError(
            f"{setting} must be between {SMALLEST} and {LARGEST} pixels (or voxels) a side, "
            f"got {_text(sides)}"
        )
    return sides[0] if len(sides) == 1 else (sides[0], sides[1], sides[2])


def image_side(size: Size | None, source: str) -> int | None:
    """The side of a 2-D image; D,H,W is for volumes only."""
    if size is None or isinstance(size, int):
        return size
    raise UsageError(
        f"{source} holds 2-D images, which are resized to a square: give one size, not "
        f"{_text(size)}"
    )


def volume_shape(size: Size | None, default: int = VOLUME_SIZE) -> tuple[int, int, int]:
    """(D, H, W) of a volume: one number is a cube."""
    if size is None:
        size = default
    if isinstance(size, int):
        return (size, size, size)
    return size


def size_text(size: Size) -> str:
    """`64` or `32x64x64`, for names and messages."""
    return str(size) if isinstance(size, int) else _text(size, "x")


def _text(sides: tuple[int, ...], sep: str = ",") -> str:
    return sep.join(map(str, sides))
