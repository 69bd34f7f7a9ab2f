"""Read and check a MedMNIST-layout .npz, so every bad file fails with one clear line.

Images are (N, H, W) grey or (N, H, W, 3) RGB; volumes, in MedMNIST's 3-D layout, are
(N, D, H, W), or (N, D, H, W, C) with a channel axis of 1 or 3.

Images larger than the memory limit (`$MEDSLIM_MEMORY_LIMIT` bytes, default a quarter of
the machine's memory) are copied once, in chunks, out of the archive into uncompressed
.npy files and memory-mapped from there: a 224-px MedMNIST+ file never has to fit in RAM.
"""

from __future__ import annotations

import os
import shutil
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medslim.errors import DataError

SPLITS = ("train", "val", "test")
KEYS = tuple(f"{split}_{part}" for split in SPLITS for part in ("images", "labels"))
_LAYOUT = "a MedMNIST-layout .npz holds " + ", ".join(KEYS)
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, ValueError, EOFError, OSError)
MEMORY_ENV = "MEDSLIM_MEMORY_LIMIT"
_CHUNK = 1 << 24


@dataclass(frozen=True)
class RawSplit:
    """One split as stored: uint8 images (N, H, W, C) or volumes (N, D, H, W, C) and integer
    labels (N,) or (N, L)."""

    images: np.ndarray
    labels: np.ndarray


def memory_limit() -> int:
    """Bytes of images kept in memory; above it they are memory-mapped."""
    given = os.environ.get(MEMORY_ENV)
    if given:
        return int(float(given))
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4


def read_npz(path: Path, spill_dir: Path | None = None) -> dict[str, RawSplit]:
    """All three splits, checked for keys, dtypes, ranks, lengths and matching shapes.
    With `spill_dir`, images above `memory_limit()` are memory-mapped from .npy copies
    kept there (made once)."""
    if not zipfile.is_zipfile(path):
        raise _unreadable(path, "not a zip archive")
    try:
        archive = np.load(path, allow_pickle=False)
    except _READ_ERRORS as err:
        raise _unreadable(path, err) from err
    with archive:
        missing = [key for key in KEYS if key not in archive.files]
        if missing:
            raise DataError(f"{path}: missing arrays {', '.join(missing)}; {_LAYOUT}")
        spill = (
            spill_dir if spill_dir is not None and _image_bytes(path) > memory_limit() else None
        )
        splits = {split: _read_split(path, archive, split, spill) for split in SPLITS}
    _check_same_shapes(path, splits)
    return splits


def _image_bytes(path: Path) -> int:
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
    return sum(m.file_size for m in members if m.filename.endswith("_images.npy"))


def _mapped(path: Path, key: str, spill_dir: Path) -> np.ndarray:
    """`key` memory-mapped (copy-on-write: the file is never changed) from an .npy copy,
    streamed out of the archive once."""
    target = spill_dir / f"{key}.npy"
    if not target.is_file():
        spill_dir.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".tmp")
        with zipfile.ZipFile(path) as zipped, zipped.open(f"{key}.npy") as member:
            with partial.open("wb") as out:
                shutil.copyfileobj(member, out, _CHUNK)
        os.replace(partial, target)
    return np.load(target, mmap_mode="c", allow_pickle=False)


def _unreadable(path: Path, err: Exception | str) -> DataError:
    reason = " ".join(str(err).split()) or type(err).__name__
    return DataError(
        f"{path}: not a readable .npz archive ({reason}); it may be truncated or corrupt: "
        "re-download it or save it again with numpy.savez"
    )


def _read_split(
    path: Path, archive: np.lib.npyio.NpzFile, split: str, spill_dir: Path | None
) -> RawSplit:
    key = f"{split}_images"
    try:
        labels = archive[f"{split}_labels"]
        images = archive[key] if spill_dir is None else _mapped(path, key, spill_dir)
    except _READ_ERRORS as err:
        raise _unreadable(path, err) from err
    if len(images) != len(labels):
        raise DataError(
            f"{path}: {split}_images has {len(images)} images but {split}_labels has "
            f"{len(labels)} labels; give every image exactly one label row"
        )
    if len(images) == 0:
        raise DataError(f"{path}: the {split} split is empty; every split needs an image")
    return RawSplit(_check_images(path, split, images), _check_labels(path, split, labels))


def _check_images(path: Path, split: str, images: np.ndarray) -> np.ndarray:
    """uint8 only, so [0,1] scaling is unambiguous; grey gets a channel axis of 1. Four axes
    are images with channels when the last is 1 or 3, else grey volumes (N, D, H, W)."""
    if images.dtype != np.uint8:
        raise DataError(
            f"{path}: {split}_images has dtype {images.dtype}; images must be uint8 (0-255)"
        )
    channels_last = images.shape[-1] in (1, 3)
    if images.ndim == 3 or (images.ndim == 4 and not channels_last):
        return images[..., np.newaxis]
    if images.ndim in (4, 5) and channels_last:
        return images
    raise DataError(
        f"{path}: {split}_images has shape {images.shape}; expected (N, H, W) grey or "
        "(N, H, W, 3) RGB images, or (N, D, H, W) volumes"
    )


def _check_labels(path: Path, split: str, labels: np.ndarray) -> np.ndarray:
    """Integer labels; a single column (N, 1) becomes (N,), several columns are multi-label."""
    if labels.dtype.kind not in "iub":
        raise DataError(
            f"{path}: {split}_labels has dtype {labels.dtype}; labels must be integers"
        )
    if labels.ndim == 2 and labels.shape[1] == 1:
        return labels[:, 0]
    if labels.ndim in (1, 2):
        return labels
    raise DataError(
        f"{path}: {split}_labels has shape {labels.shape}; expected (N,), (N, 1) or (N, L)"
    )


def _check_same_shapes(path: Path, splits: dict[str, RawSplit]) -> None:
    train = splits["train"]
    for split in SPLITS[1:]:
        raw = splits[split]
        for part, want, got in (
            ("images", train.images.shape[1:], raw.images.shape[1:]),
            ("labels", train.labels.shape[1:], raw.labels.shape[1:]),
        ):
            if want != got:
                raise DataError(
                    f"{path}: {split}_{part} has sample shape {got} but train_{part} has "
                    f"{want}; all splits must match"
                )
