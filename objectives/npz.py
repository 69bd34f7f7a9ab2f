"""Read and check a MedMNIST-layout .npz, so every bad file fails with one clear line."""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medslim.errors import DataError
from medslim.kinds import BINARY, MULTI_CLASS, MULTI_LABEL, Task

SPLITS = ("train", "val", "test")
KEYS = tuple(f"{split}_{part}" for split in SPLITS for part in ("images", "labels"))
_LAYOUT = "a MedMNIST-layout .npz holds " + ", ".join(KEYS)
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, ValueError, EOFError, OSError)


@dataclass(frozen=True)
class RawSplit:
    """One split as stored: uint8 images (N, H, W, C) and integer labels (N,) or (N, L)."""

    images: np.ndarray
    labels: np.ndarray


def read_npz(path: Path) -> dict[str, RawSplit]:
    """All three splits, checked for keys, dtypes, ranks, lengths and matching shapes."""
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
        splits = {split: _read_split(path, archive, split) for split in SPLITS}
    _check_same_shapes(path, splits)
    return splits


def _unreadable(path: Path, err: Exception | str) -> DataError:
    reason = " ".join(str(err).split()) or type(err).__name__
    return DataError(
        f"{path}: not a readable .npz archive ({reason}); it may be truncated or corrupt: "
        "re-download it or save it again with numpy.savez"
    )


def _read_split(path: Path, archive: np.lib.npyio.NpzFile, split: str) -> RawSplit:
    try:
        images, labels = archive[f"{split}_images"], archive[f"{split}_labels"]
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
    """uint8 only, so [0,1] scaling is unambiguous; grey gets a channel axis of 1."""
    if images.dtype != np.uint8:
        raise DataError(
            f"{path}: {split}_images has dtype {images.dtype}; images must be uint8 (0-255)"
        )
    if images.ndim == 3:
        return images[..., np.newaxis]
    if images.ndim == 4 and images.shape[-1] in (1, 3):
        return images
    raise DataError(
        f"{path}: {split}_images has shape {images.shape}; "
        "expected (N, H, W) grey or (N, H, W, 3) RGB"
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


def infer_task(path: Path, splits: dict[str, RawSplit]) -> tuple[Task, int]:
    """Several label columns: multi-label; else binary or multi-class from the largest label."""
    labels = splits["train"].labels
    if labels.ndim == 2:
        return MULTI_LABEL, labels.shape[1]
    n_classes = max(int(raw.labels.max()) for raw in splits.values()) + 1
    if n_classes < 2:
        raise DataError(
            f"{path}: every label is {n_classes - 1} or less; a classifier needs labels "
            "0..K-1 with at least K=2 classes"
        )
    return (BINARY if n_classes == 2 else MULTI_CLASS), n_classes


def check_label_values(
    path: Path, splits: dict[str, RawSplit], task: Task, n_outputs: int
) -> None:
    """Labels must index the model's outputs: 0..n-1 per class, or 0/1 per label column."""
    multi = task == MULTI_LABEL
    highest = 1 if multi else n_outputs - 1
    for split, raw in splits.items():
        want = (n_outputs,) if multi else ()
        if raw.labels.shape[1:] != want:
            raise DataError(
                f"{path}: {split}_labels has shape {raw.labels.shape}; "
                f"a {task} dataset needs {('N',) + want}"
            )
        low, high = int(raw.labels.min()), int(raw.labels.max())
        if low < 0 or high > highest:
            raise DataError(
                f"{path}: {split}_labels has values {low}..{high}, outside 0..{highest} "
                f"({task}, {n_outputs} outputs); fix the labels"
            )
