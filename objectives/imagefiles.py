"""Decode one image file (PNG, JPEG, BMP, TIFF with Pillow; DICOM with pydicom) into uint8
H×W×C pixels at the study's size, grey or RGB.

Files are square-resized (the whole field of view kept, no crop) with Pillow's antialiased
bicubic filter; more-than-8-bit grey (16-bit PNG/TIFF exports, DICOM) is scaled to 0–255
from its own range.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from medslim.errors import DataError
from medslim.objectives import dicom

PIXEL_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
IMAGE_SUFFIXES = PIXEL_SUFFIXES + dicom.SUFFIXES
_HIGH_BIT_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
_GREY_MODES = _HIGH_BIT_MODES | {"1", "L", "LA"}
_DECODE_ERRORS = (OSError, UnidentifiedImageError, ValueError, SyntaxError)


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def probe_channels(path: Path) -> int:
    """1 (grey) or 3 (colour), from the file's header only."""
    if dicom.is_dicom(path):
        return dicom.channels(path)
    try:
        with Image.open(path) as image:
            return 1 if image.mode in _GREY_MODES else 3
    except _DECODE_ERRORS as error:
        raise unreadable(path, error) from error


def decode(path: Path, size: int, channels: int) -> np.ndarray:
    """size×size×channels uint8 pixels of one file."""
    try:
        image = dicom.decode(path) if dicom.is_dicom(path) else _open(path, size)
        return np.asarray(_resized(_as_channels(image, channels), size)).reshape(
            size, size, channels
        )
    except _DECODE_ERRORS as error:
        raise unreadable(path, error) from error


def resize_array(image: np.ndarray, size: int, channels: int) -> np.ndarray:
    """One uint8 H×W×C image at size×size×channels."""
    picture = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    return np.asarray(_resized(_as_channels(picture, channels), size)).reshape(
        size, size, channels
    )


def unreadable(path: Path, error: Exception) -> DataError:
    reason = " ".join(str(error).split()) or type(error).__name__
    return DataError(f"{path}: cannot read this image ({reason}); replace or remove the file")


def _open(path: Path, size: int) -> Image.Image:
    with Image.open(path) as image:
        image.draft(image.mode, (size, size))  # JPEG: decode at a reduced scale when larger
        image.load()
        return _to_8bit(image) if image.mode in _HIGH_BIT_MODES else image.copy()


def _to_8bit(image: Image.Image) -> Image.Image:
    """A more-than-8-bit grey image scaled from its own minimum–maximum to 0–255."""
    return Image.fromarray(to_uint8(np.asarray(image, dtype=np.float64)))


def to_uint8(values: np.ndarray) -> np.ndarray:
    """Values scaled linearly from their minimum–maximum to 0–255 (a flat image is 0)."""
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, np.uint8)
    return np.round((values - low) * (255.0 / (high - low))).astype(np.uint8)


def _as_channels(image: Image.Image, channels: int) -> Image.Image:
    if channels == 1:
        return image if image.mode == "L" else image.convert("L")
    return image if image.mode == "RGB" else image.convert("RGB")


def _resized(image: Image.Image, size: int) -> Image.Image:
    if image.size == (size, size):
        return image
    return image.resize((size, size), Image.Resampling.BICUBIC)
