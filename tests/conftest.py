"""Image data made inside the tests: generated pixels written as PNG/JPEG folders, CSV
manifests, DICOM files and MedMNIST+ layout .npz files (the `images` fixture); generated
volumes written as NIfTI files and DICOM series (the `volumes` fixture)."""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from medslim.objectives import medmnist

CLASSES = ("effusion", "normal")
E2E_FIXTURES = frozenset(
    {
        *("medslim", "machine", "tiny_study_dir", "tiny_both_dir", "chromium"),
        *("postgres", "database", "s3_endpoint", "s3_bucket"),
    }
)
"""Fixtures that start real `medslim` processes, servers or browsers, or run a whole study:
a test that uses one is end to end (`e2e`), outside the fast loop `pytest -m "not e2e"`."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if E2E_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


def pattern(label: int, index: int, size: tuple[int, int] = (40, 36)) -> np.ndarray:
    """Grey pixels a small CNN can tell apart: class 1 bright on top, class 0 at the bottom."""
    rng = np.random.default_rng(index)
    pixels = rng.integers(0, 80, size=(size[1], size[0]), dtype=np.uint8)
    half = size[1] // 2
    if label:
        pixels[:half] += 150
    else:
        pixels[half:] += 150
    return pixels


def write_png(path: Path, label: int, index: int, mode: str = "L") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pattern(label, index)).convert(mode).save(path)
    return path


def class_folder(root: Path, per_class: int = 20, mode: str = "L") -> Path:
    """root/<class>/*.png, no splits given."""
    for label, name in enumerate(CLASSES):
        for i in range(per_class):
            write_png(root / name / f"{name}{i}.png", label, 100 * label + i, mode)
    return root


def split_folder(root: Path) -> Path:
    """root/{train,val,test}/<class>/*.png."""
    for split, n in (("train", 12), ("val", 4), ("test", 4)):
        for label, name in enumerate(CLASSES):
            for i in range(n):
                write_png(root / split / name / f"{i}.jpg", label, 1000 * label + i, "L")
    return root


def manifest(
    root: Path, *, with_split: bool, names: bool = False, groups: bool = False, count: int = 40
) -> Path:
    """labels.csv beside images/*.png, labels as 0/1 (or as class names); with `groups`,
    subgroup columns `sex` (F for rows i % 4 < 2, else M) and `site` (A for i % 3 == 0)."""
    rows = []
    for i in range(count):
        label = i % 2
        write_png(root / "images" / f"{i}.png", label, i)
        row: dict[str, Any] = {
            "path": f"images/{i}.png",
            "label": CLASSES[label] if names else label,
        }
        if with_split:
            train, val = count * 3 // 5, count * 4 // 5
            row["split"] = "train" if i < train else "val" if i < val else "test"
        if groups:
            row["sex"] = "F" if i % 4 < 2 else "M"
            row["site"] = "A" if i % 3 == 0 else "B"
        rows.append(row)
    path = root / "labels.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _dicom(modality: str, shape: tuple[int, ...], photometric: str) -> Any:
    """A DICOM dataset with its file meta: one 2D frame of `shape`, one sample a pixel."""
    from pydicom.dataset import Dataset as DicomDataset
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = DicomDataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.Rows, ds.Columns = shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.PixelRepresentation = 0
    return ds


def _save(ds: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_dicom(path: Path, values: np.ndarray, photometric: str, window: tuple[int, int]) -> Path:
    ds = _dicom("CR", values.shape, photometric)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.RescaleSlope, ds.RescaleIntercept = 1, 0
    ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = values.astype(np.uint16).tobytes()
    return _save(ds, path)


def write_palette_dicom(path: Path, index: np.ndarray, with_palette: bool = True) -> Path:
    """An 8-bit PALETTE COLOR DICOM: index i is red 255-i, green 0, blue i (16-bit palette
    entries); without its palette, an image no viewer can show."""
    ds = _dicom("OT", index.shape, "PALETTE COLOR")
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    if with_palette:
        ramp = np.arange(256, dtype=np.uint16)
        for colour, values in (("Red", 255 - ramp), ("Green", 0 * ramp), ("Blue", ramp)):
            setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 16])
            setattr(ds, f"{colour}PaletteColorLookupTableData", (values * 257).tobytes())
    ds.PixelData = index.astype(np.uint8).tobytes()
    return _save(ds, path)


def plus_file(folder: Path, name: str, size: int) -> Path:
    """A MedMNIST+ layout file at `size` px: the shared 28-px images are not needed, the
    pixels are generated (6/4/4 per class)."""
    arrays = {}
    for split, n in (("train", 12), ("val", 8), ("test", 8)):
        labels = np.arange(n) % 2
        images = np.stack([pattern(int(lab), i, (size, size)) for i, lab in enumerate(labels)])
        arrays[f"{split}_images"] = images
        arrays[f"{split}_labels"] = labels.reshape(-1, 1).astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    np.savez_compressed(path, **arrays)
    return path


def volume(label: int, index: int, shape: tuple[int, int, int] = (8, 10, 12)) -> np.ndarray:
    """Integer values 0..255 (D, H, W) a small 3-D CNN can tell apart: class 1 bright in the
    upper (head-side) half of the slices, class 0 in the lower half."""
    rng = np.random.default_rng(1000 + index)
    values = rng.integers(0, 80, size=shape).astype(np.int16)
    half = shape[0] // 2
    values[half:] += 150 if label else 0
    values[:half] += 0 if label else 150
    return values


LPS_AS_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
"""A NIfTI affine whose voxel axes (i, j, k) run to the patient's left, back and head."""


def write_nifti(path: Path, values: np.ndarray, *, flipped: bool = False) -> Path:
    """`values` (D, H, W) as a NIfTI file that medslim reads back as `values`: stored as
    (W, H, D) in LPS, or with `flipped` in RAS (the first two axes reversed)."""
    import nibabel

    data = values.transpose(2, 1, 0).astype(np.float32)
    affine = LPS_AS_RAS
    if flipped:
        data, affine = data[::-1, ::-1, :].copy(), np.eye(4)
    path.parent.mkdir(parents=True, exist_ok=True)
    nibabel.save(nibabel.Nifti1Image(data, affine), path)
    return path


def write_series(
    folder: Path,
    values: np.ndarray,
    *,
    slope: float = 1.0,
    spacing: float = 2.5,
    positions: list[float] | None = None,
    series_uid: str | None = None,
    seed: int = 0,
) -> Path:
    """`values` (D, H, W) in HU as one axial DICOM series: one file per slice, named in a
    shuffled order that says nothing of the slice's place, stored as unsigned pixels with
    a rescale slope and intercept (`positions` along the normal replace the even spacing)."""
    from pydicom.dataset import Dataset as DicomDataset
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    uid = series_uid or generate_uid()
    intercept = -1024.0
    at = positions if positions is not None else [k * spacing for k in range(len(values))]
    names = np.random.default_rng(seed).permutation(len(values))
    folder.mkdir(parents=True, exist_ok=True)
    for k, (pixels, z) in enumerate(zip(values, at, strict=True)):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = DicomDataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.SeriesInstanceUID = "CT", uid
        ds.InstanceNumber = int(names[k]) + 1  # as shuffled as the names
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0.0, 0.0, float(z)]
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        stored = np.round((pixels.astype(np.float64) - intercept) / slope).astype(np.uint16)
        ds.PixelData = stored.tobytes()
        ds.save_as(folder / f"IM{names[k]:04d}.dcm", enforce_file_format=True)
    return folder


class Images:
    """The builders above, for tests in any folder (`images.class_folder(root)`)."""

    classes = CLASSES
    pattern = staticmethod(pattern)
    write_png = staticmethod(write_png)
    class_folder = staticmethod(class_folder)
    split_folder = staticmethod(split_folder)
    manifest = staticmethod(manifest)
    write_dicom = staticmethod(write_dicom)
    write_palette_dicom = staticmethod(write_palette_dicom)
    plus_file = staticmethod(plus_file)


@pytest.fixture(scope="session")
def images() -> type[Images]:
    return Images


class Volumes:
    """The volume builders above (`volumes.write_series(folder, values)`)."""

    classes = CLASSES
    volume = staticmethod(volume)
    write_nifti = staticmethod(write_nifti)
    write_series = staticmethod(write_series)


@pytest.fixture
def volumes() -> type[Volumes]:
    return Volumes


@pytest.fixture
def official_64(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, images: Any
) -> Callable[[], Path]:
    """breastmnist_64.npz in a data dir, with its md5 made the official one."""

    def make() -> Path:
        path = plus_file(tmp_path / "data", "breastmnist_64.npz", 64)
        info = medmnist.DATASETS["breastmnist"]
        files = {**info.files, 64: medmnist.FileInfo(info.files[64].url, medmnist.md5(path))}
        monkeypatch.setitem(medmnist.DATASETS, "breastmnist", replace(info, files=files))
        from medslim.objectives import data

        entry = data._REGISTRY["breastmnist"]
        loader = entry.load.func  # type: ignore[attr-defined]
        new = replace(
            entry,
            load=lambda request, check: loader(medmnist.DATASETS["breastmnist"], request, check),
        )
        monkeypatch.setitem(data._REGISTRY._entries, "breastmnist", new)  # type: ignore[attr-defined]
        return path

    return make
