"""DICOM pixels as a viewer shows them (needs `pip install 'medslim[dicom]'`, pydicom):
the modality LUT (rescale slope/intercept) and the VOI LUT or window applied, MONOCHROME1
inverted so that bright means dense in every image, then scaled to 0–255; a PALETTE COLOR
image through its palette, as RGB (or refused by name when its palette cannot be applied,
never read as raw palette indices). Pixel spacing is ignored (images are resized to the
study's size like any other)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medslim.errors import DataError, UsageError

if TYPE_CHECKING:
    from PIL import Image

SUFFIXES = (".dcm", ".dicom")
_INSTALL = "pip install 'medslim[dicom]'"
PALETTE = "PALETTE COLOR"


def is_dicom(path: Path) -> bool:
    return path.suffix.lower() in SUFFIXES


def load_pydicom() -> Any:
    try:
        import pydicom
        import pydicom.pixels
    except ImportError as error:
        raise UsageError(f"reading DICOM files needs pydicom: {_INSTALL}") from error
    return pydicom


def channels(path: Path) -> int:
    """1 or 3, from the header (SamplesPerPixel)."""
    pydicom = load_pydicom()
    try:
        header = pydicom.dcmread(path, stop_before_pixels=True)
    except (OSError, pydicom.errors.InvalidDicomError) as error:
        raise undecodable(path, error) from error
    colour = int(header.get("SamplesPerPixel", 1)) == 3
    return 3 if colour or header.get("PhotometricInterpretation") == PALETTE else 1


def decode(path: Path) -> Image.Image:
    """One 2D frame as a Pillow image (L, or RGB for colour files)."""
    from PIL import Image

    from medslim.objectives.imagefiles import to_uint8

    pydicom = load_pydicom()
    try:
        dataset = pydicom.dcmread(path)
        pixels = dataset.pixel_array
    except Exception as error:  # pydicom raises many kinds for data it cannot decode
        raise undecodable(path, error) from error
    if int(dataset.get("NumberOfFrames", 1)) > 1:
        raise DataError(
            f"{path}: a multi-frame DICOM ({dataset.NumberOfFrames} frames); "
            "medslim reads 2D images: export one frame per file"
        )
    if int(dataset.get("SamplesPerPixel", 1)) == 3:
        return Image.fromarray(to_uint8(np.asarray(pixels, np.float64)), "RGB")
    if dataset.get("PhotometricInterpretation") == PALETTE:
        return Image.fromarray(_through_palette(path, pydicom, pixels, dataset), "RGB")
    values = pydicom.pixels.apply_modality_lut(pixels, dataset)
    values = pydicom.pixels.apply_voi_lut(values, dataset)
    values = np.asarray(values, np.float64)
    if dataset.get("PhotometricInterpretation") == "MONOCHROME1":
        values = values.max() - values  # MONOCHROME1: low values are bright
    return Image.fromarray(to_uint8(values), "L")


def _through_palette(path: Path, pydicom: Any, pixels: np.ndarray, dataset: Any) -> np.ndarray:
    """A palette image's RGB pixels, 8 bits a channel (16-bit palettes scaled down)."""
    try:
        rgb = np.asarray(pydicom.pixels.apply_color_lut(pixels, dataset))
    except Exception as error:  # a missing or malformed palette: pydicom raises several types
        reason = " ".join(str(error).split()) or type(error).__name__
        raise DataError(
            f"{path}: a PALETTE COLOR DICOM whose palette cannot be applied ({reason}); "
            "convert it to RGB or MONOCHROME2 first"
        ) from error
    if rgb.dtype != np.uint8:  # a 16-bit palette
        rgb = np.round(rgb.astype(np.float64) * (255 / 65535)).astype(np.uint8)
    return rgb


def undecodable(path: Path, error: Exception) -> DataError:
    reason = " ".join(str(error).split()) or type(error).__name__
    return DataError(
        f"{path}: pydicom cannot decode this file ({reason}); a compressed transfer syntax "
        "may need pylibjpeg or gdcm installed, or convert the file"
    )
