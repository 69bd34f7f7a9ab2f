"""A DICOM series (one folder of slices, one volume) read as a CT or MR scan is meant to be:
slices ordered by their position along the slice normal (never by file name), each slice's
rescale slope and intercept applied (Hounsfield units for CT), and a folder refused in one
line when it cannot be one volume: several series mixed, duplicated or missing slice
positions, spacing that varies beyond `SPACING_TOLERANCE`, slices of different sizes or
orientations.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medslim.errors import DataError
from medslim.objectives import dicom

SPACING_TOLERANCE = 0.1
"""Largest relative deviation of one slice gap from the median gap."""
_PREAMBLE = b"DICM"


@dataclass(frozen=True)
class Scan:
    """A volume's values (D, H, W), float32, and each array axis' direction in the patient's
    LPS coordinates (rows of `directions`: slice normal, down a column, along a row)."""

    values: np.ndarray
    directions: np.ndarray


def is_dicom_file(path: Path) -> bool:
    """A DICOM file by suffix, or an extension-less file with the DICM preamble (as scanners
    export series)."""
    if dicom.is_dicom(path):
        return True
    if path.suffix or path.name.startswith(".") or not path.is_file():
        return False
    with path.open("rb") as handle:
        return handle.read(132)[128:] == _PREAMBLE


def slice_files(folder: Path) -> list[Path]:
    """The DICOM files directly in `folder`, in name order (the order is decided later)."""
    return sorted(p for p in folder.iterdir() if is_dicom_file(p))


def is_series(folder: Path) -> bool:
    """Whether `folder` holds the slices of a CT or MR series: DICOM files whose first one
    says where it lies in the patient (ImagePositionPatient)."""
    files = slice_files(folder)
    if not files:
        return False
    pydicom = dicom.load_pydicom()
    try:
        header = pydicom.dcmread(files[0], stop_before_pixels=True)
    except (OSError, pydicom.errors.InvalidDicomError) as error:
        raise dicom.undecodable(files[0], error) from error
    return "ImagePositionPatient" in header


def read_series(folder: Path) -> Scan:
    """The folder's slices as one volume, ordered along the slice normal, in rescaled units."""
    files = slice_files(folder)
    if len(files) < 2:
        raise DataError(
            f"{folder}: a DICOM series needs at least 2 slices, found {len(files)}; "
            "a single image belongs directly in its class folder"
        )
    slices = [_read(file) for file in files]
    _check_one_series(folder, files, slices)
    rows, columns = _orientation(folder, slices)
    normal = np.cross(rows, columns)
    placed = zip(slices, files, strict=True)
    positions = np.array([np.dot(_position(ds, file), normal) for ds, file in placed])
    order = np.argsort(positions, kind="stable")
    _check_spacing(folder, [files[i] for i in order], positions[order])
    values = np.stack([_rescaled(slices[i], files[i]) for i in order]).astype(np.float32)
    return Scan(values, np.stack([normal, columns, rows]))


def _read(file: Path) -> Any:
    pydicom = dicom.load_pydicom()
    try:
        return pydicom.dcmread(file)
    except Exception as error:  # pydicom raises many kinds for files it cannot read
        raise dicom.undecodable(file, error) from error


def _check_one_series(folder: Path, files: list[Path], slices: list[Any]) -> None:
    series: dict[str, Path] = {}
    for file, ds in zip(files, slices, strict=True):
        series.setdefault(str(ds.get("SeriesInstanceUID", "")), file)
        if int(ds.get("NumberOfFrames", 1)) > 1:
            raise DataError(
                f"{file}: a multi-frame DICOM inside series folder {folder}; export the "
                "series as one slice per file"
            )
    if len(series) > 1:
        examples = ", ".join(f.name for f in list(series.values())[:3])
        raise DataError(
            f"{folder}: mixes {len(series)} DICOM series (e.g. {examples}); put each series "
            "in a folder of its own"
        )
    shapes = {(int(ds.Rows), int(ds.Columns)) for ds in slices}
    if len(shapes) > 1:
        raise DataError(
            f"{folder}: slices of different sizes {sorted(shapes)}; one series has one size"
        )


def _orientation(folder: Path, slices: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """The unit directions along a row and down a column, the same for every slice."""
    found = {
        tuple(np.round(np.asarray(ds.get("ImageOrientationPatient", []), float), 4))
        for ds in slices
    }
    if len(found) != 1 or len(next(iter(found))) != 6:
        raise DataError(
            f"{folder}: slices with missing or different orientations "
            "(ImageOrientationPatient); one series has one orientation"
        )
    cosines = np.asarray(next(iter(found)), float)
    return cosines[:3], cosines[3:]


def _position(ds: Any, file: Path) -> np.ndarray:
    position = ds.get("ImagePositionPatient")
    if position is None or len(position) != 3:
        raise DataError(
            f"{file}: no ImagePositionPatient, so the slice cannot be placed in its series"
        )
    return np.asarray(position, float)


def _check_spacing(folder: Path, files: list[Path], positions: np.ndarray) -> None:
    """No duplicated or missing positions, gaps within `SPACING_TOLERANCE` of their median."""
    gaps = np.diff(positions)
    spacing = float(np.median(gaps))
    if spacing <= 0 or np.any(gaps <= SPACING_TOLERANCE * spacing):
        at = int(np.argmin(gaps))
        raise DataError(
            f"{folder}: {files[at].name} and {files[at + 1].name} lie at the same position "
            f"({positions[at]:.2f} mm along the slice normal); remove the duplicated slice"
        )
    at = int(np.argmax(np.abs(gaps - spacing)))
    if abs(gaps[at] - spacing) <= SPACING_TOLERANCE * spacing:
        return
    if gaps[at] > 1.5 * spacing:
        missing = round(gaps[at] / spacing) - 1
        raise DataError(
            f"{folder}: about {missing} slice(s) missing between {files[at].name} and "
            f"{files[at + 1].name} ({gaps[at]:.2f} mm apart, the series' spacing is "
            f"{spacing:.2f} mm); export the whole series"
        )
    raise DataError(
        f"{folder}: uneven slice spacing ({gaps.min():.2f} to {gaps.max():.2f} mm, more than "
        f"{SPACING_TOLERANCE:.0%} from the median {spacing:.2f} mm); resample the series to "
        "even spacing first"
    )


def _rescaled(ds: Any, file: Path) -> np.ndarray:
    """A slice's pixels after its modality LUT (rescale slope and intercept: HU for CT)."""
    pydicom = dicom.load_pydicom()
    try:
        pixels = ds.pixel_array
    except Exception as error:  # a compressed syntax without its decoder, a truncated file
        raise dicom.undecodable(file, error) from error
    return np.asarray(pydicom.pixels.apply_modality_lut(pixels, ds), np.float64)
