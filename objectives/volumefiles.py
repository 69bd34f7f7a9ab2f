"""One CT or MRI volume (a NIfTI file, or a folder holding one DICOM series) into uint8
D×H×W×1 voxels at the study's size: read, turned to one orientation, windowed, resampled.

Every volume is turned to the radiological display orientation, whatever its file stores:
D runs from the feet to the head, H from the front (anterior) to the back, W from the
patient's right to left (a DICOM axial series as scanners write it), so NIfTI files and
DICOM series of one scan decode to the same array. Intensities go to 0–255 by the study's
`Window` (HU for CT, or per-volume percentiles), then the volume is resampled to the size
as a whole field of view (voxel spacing is not used, as a 2-D image's pixel spacing is not):
averaged where it shrinks, trilinear where it grows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from medslim.errors import DataError, UsageError
from medslim.objectives import series
from medslim.objectives.windows import Window

NIFTI_SUFFIXES = (".nii", ".nii.gz")
LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])
_INSTALL = "pip install 'medslim[nifti]'"
Shape = tuple[int, int, int]


def is_nifti(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(NIFTI_SUFFIXES) and not name.startswith(".")


def is_volume(path: Path) -> bool:
    """A NIfTI file, or a folder taken for a DICOM series (listed as one sample)."""
    return is_nifti(path) or path.is_dir()


def decode(path: Path, shape: Shape, window: Window) -> np.ndarray:
    """uint8 voxels (D, H, W, 1) of one volume at `shape`, windowed by `window`."""
    scan = series.read_series(path) if path.is_dir() else read_nifti(path)
    values = canonical(scan.values, scan.directions)
    unit = windowed(values, window)
    return to_uint8(resample(unit, shape))[..., np.newaxis]


def read_nifti(path: Path) -> series.Scan:
    """A 3-D NIfTI file's voxels and axis directions (in LPS); scaled by its slope/intercept."""
    nibabel = _nibabel()
    try:
        image = nibabel.load(path)
        values = np.asarray(image.get_fdata(dtype=np.float32))
    except Exception as error:  # nibabel raises many kinds for files it cannot read
        reason = " ".join(str(error).split()) or type(error).__name__
        raise DataError(
            f"{path}: nibabel cannot read this NIfTI file ({reason}); replace or remove it"
        ) from error
    values = np.squeeze(values, axis=tuple(range(3, values.ndim))) if values.ndim > 3 else values
    if values.ndim != 3 or min(values.shape) < 2:
        raise DataError(
            f"{path}: a NIfTI of shape {values.shape} is not a volume (a 2-D image among "
            "volumes, or a time series); give every sample as one 3-D volume"
        )
    axes = np.asarray(image.affine, float)[:3, :3]
    directions = (LPS_FROM_RAS @ axes).T  # row i: array axis i's direction in LPS
    return series.Scan(values, directions)


def canonical(values: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """`values` with its axes permuted and flipped so that they run to the head, to the back
    and to the patient's left (D, H, W); each array axis goes to the patient axis it is
    closest to."""
    closest = np.argmax(np.abs(directions), axis=1)  # array axis → patient axis (L, P, S)
    if sorted(closest) != [0, 1, 2]:
        raise DataError(
            "a volume whose axes are oblique to the patient by about 45°; reformat it to an "
            "axial, coronal or sagittal acquisition"
        )
    signs = directions[np.arange(3), closest]
    for axis in np.flatnonzero(signs < 0):
        values = np.flip(values, axis=int(axis))
    order = [int(np.flatnonzero(closest == patient)[0]) for patient in (2, 1, 0)]
    return np.ascontiguousarray(values.transpose(order))


def windowed(values: np.ndarray, window: Window) -> np.ndarray:
    """Values mapped linearly to 0–1 between the window's ends, clipped outside; a volume
    of one value maps to 0."""
    low, high = window.low, window.high
    if window.percentiles:
        low, high = (float(v) for v in np.percentile(values, [window.low, window.high]))
    if high <= low:
        return np.zeros(values.shape, np.float32)
    scaled = (values.astype(np.float32) - np.float32(low)) / np.float32(high - low)
    return np.clip(scaled, 0.0, 1.0)


def resample(values: np.ndarray, shape: Shape) -> np.ndarray:
    """A float volume at `shape`: block-averaged along axes that shrink (no aliasing),
    trilinear along those that grow."""
    if tuple(values.shape) == tuple(shape):
        return values.astype(np.float32, copy=False)
    tensor = torch.from_numpy(np.ascontiguousarray(values, np.float32))[None, None]
    smaller = [min(a, b) for a, b in zip(values.shape, shape, strict=True)]
    if smaller != list(values.shape):
        tensor = F.interpolate(tensor, size=smaller, mode="area")  # adaptive average pooling
    if smaller != list(shape):
        tensor = F.interpolate(tensor, size=shape, mode="trilinear", align_corners=False)
    return tensor[0, 0].numpy()


def to_uint8(unit: np.ndarray) -> np.ndarray:
    return np.round(np.clip(unit, 0.0, 1.0) * 255.0).astype(np.uint8)


def resize_uint8(volume: np.ndarray, shape: Shape) -> np.ndarray:
    """A stored uint8 volume (D, H, W, 1) at another shape (an .npz resized into the cache)."""
    unit = resample(volume[..., 0].astype(np.float32) / 255.0, shape)
    return to_uint8(unit)[..., np.newaxis]


def _nibabel() -> Any:
    try:
        import nibabel
    except ImportError as error:
        raise UsageError(f"reading NIfTI files needs nibabel: {_INSTALL}") from error
    return nibabel
