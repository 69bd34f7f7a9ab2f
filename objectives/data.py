"""Dataset registry and loaders: every dataset arrives as normalised float tensors in 3 splits."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import platformdirs
import torch

from medslim.errors import DataError, UsageError
from medslim.kinds import BINARY, MULTI_LABEL, DataKind, Task
from medslim.objectives import medmnist, npz
from medslim.objectives.medmnist import MedMNISTInfo

DATA_DIR_ENV = "MEDSLIM_DATA_DIR"
_STD_FLOOR = 1e-6


@dataclass(frozen=True)
class Split:
    """x: float32 N×C×H×W or N×F, normalised on train statistics; y: int64 (N,) or float (N, L)."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Dataset:
    """A ready-to-train dataset plus what a model builder and a report need to know about it."""

    name: str
    task: Task
    n_outputs: int
    input_shape: tuple[int, ...]
    kind: DataKind
    train: Split
    val: Split
    test: Split
    source: str
    class_names: tuple[str, ...] = ()
    """One name per output (class, or label column), as the data names them; empty when it
    names none (then reports say `class 0`, `class 1`, ...)."""


@dataclass(frozen=True)
class DatasetInfo:
    """One line of `medslim datasets`: known without loading the data."""

    name: str
    task: Task
    channels: int | None
    n_outputs: int
    cached: bool
    description: str


Loader = Callable[[Path, int], Dataset]
"""(data dir, seed) → the dataset; the seed matters only where the loader splits the data."""


@dataclass(frozen=True)
class _Entry:
    info: DatasetInfo  # `cached` is filled in per data dir by list_datasets
    load: Loader
    file: str | None  # the file it needs in the data dir; None when shipped with a package


def default_data_dir() -> Path:
    """$MEDSLIM_DATA_DIR, else the user cache dir, so downloads survive across projects."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("medslim")) / "data"


def load_dataset(name_or_path: str, *, data_dir: Path | None = None, seed: int = 0) -> Dataset:
    """A registry name, or a MedMNIST-layout .npz path (a path wins even if named like one)."""
    path = Path(name_or_path).expanduser()
    if name_or_path.endswith(".npz") or path.is_file():
        return _load_npz_path(path)
    entry = _REGISTRY.get(name_or_path)
    if entry is None:
        raise UsageError(
            f"unknown dataset {name_or_path!r}; choose one of {', '.join(dataset_names())}, "
            "or give a path to a MedMNIST-layout .npz file"
        )
    return entry.load(_data_dir(data_dir), seed)


def list_datasets(data_dir: Path | None = None) -> list[DatasetInfo]:
    directory = _data_dir(data_dir)
    return [
        replace(entry.info, cached=_is_cached(entry, directory)) for entry in _REGISTRY.values()
    ]


def dataset_names() -> list[str]:
    return list(_REGISTRY)


def _data_dir(data_dir: Path | None) -> Path:
    return Path(data_dir) if data_dir is not None else default_data_dir()


def _is_cached(entry: _Entry, data_dir: Path) -> bool:
    return entry.file is None or (data_dir / entry.file).is_file()


def _load_npz_path(path: Path) -> Dataset:
    """A local file keeps the true task of the MedMNIST dataset whose md5 it has."""
    if not path.is_file():
        raise DataError(
            f"{path}: no such file; check the path, or use a dataset name "
            f"({', '.join(dataset_names())})"
        )
    return _image_dataset(path, path.stem, medmnist.by_md5(medmnist.md5(path)))


def _load_medmnist(info: MedMNISTInfo, data_dir: Path, seed: int) -> Dataset:
    """Official fixed splits, so the seed plays no part."""
    return _image_dataset(medmnist.fetch(info, data_dir), info.name, info)


def _image_dataset(path: Path, name: str, known: MedMNISTInfo | None) -> Dataset:
    raw = npz.read_npz(path)
    task, n_outputs = (known.task, len(known.labels)) if known else npz.infer_task(path, raw)
    npz.check_label_values(path, raw, task, n_outputs)
    mean, std = _channel_stats(raw["train"].images)
    splits = {
        split: Split(_image_tensor(r.images, mean, std), _label_tensor(r.labels, task))
        for split, r in raw.items()
    }
    height, width, channels = raw["train"].images.shape[1:]
    return Dataset(
        name=name,
        task=task,
        n_outputs=n_outputs,
        input_shape=(channels, height, width),
        kind="image",
        source=str(path),
        class_names=known.labels if known else (),
        **splits,
    )


def _channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact per-channel mean/std on the [0,1] scale from uint8 value counts: no float copy."""
    levels = np.arange(256) / 255.0
    counts = np.stack(
        [np.bincount(images[..., c].ravel(), minlength=256) for c in range(images.shape[-1])]
    )
    weights = counts / counts.sum(axis=1, keepdims=True)
    mean = weights @ levels
    variance = np.maximum(weights @ levels**2 - mean**2, 0.0)
    return mean, np.maximum(np.sqrt(variance), _STD_FLOOR)


def _image_tensor(images: np.ndarray, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    """uint8 N×H×W×C to contiguous float32 N×C×H×W, (x/255 - mean)/std done in place."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2)
    x = x.to(torch.float32, memory_format=torch.contiguous_format)
    shape = (1, -1, 1, 1)
    x.sub_(torch.from_numpy(mean * 255).float().view(shape))
    return x.div_(torch.from_numpy(std * 255).float().view(shape))


def _label_tensor(labels: np.ndarray, task: Task) -> torch.Tensor:
    dtype = torch.float32 if task == MULTI_LABEL else torch.int64
    return torch.from_numpy(labels).to(dtype)


def _load_breast_cancer(data_dir: Path, seed: int) -> Dataset:
    """Stratified 60/20/20 split by seed, standardised on the train split only."""
    from sklearn.datasets import load_breast_cancer  # imported here: sklearn is slow to import
    from sklearn.model_selection import train_test_split

    x, y = load_breast_cancer(return_X_y=True)
    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=0.2, stratify=y, random_state=seed
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=0.25, stratify=y_rest, random_state=seed
    )
    mean, std = x_train.mean(axis=0), np.maximum(x_train.std(axis=0), _STD_FLOOR)

    def split(features: np.ndarray, labels: np.ndarray) -> Split:
        scaled = ((features - mean) / std).astype(np.float32)
        return Split(torch.from_numpy(scaled), torch.from_numpy(labels.astype(np.int64)))

    return Dataset(
        name="breast-cancer",
        task=BINARY,
        n_outputs=2,
        input_shape=(x.shape[1],),
        kind="tabular",
        train=split(x_train, y_train),
        val=split(x_val, y_val),
        test=split(x_test, y_test),
        source="scikit-learn",
        class_names=("malignant", "benign"),  # scikit-learn's target_names, in label order
    )


_REGISTRY: dict[str, _Entry] = {}


def register_dataset(info: DatasetInfo, load: Loader, *, file: str | None = None) -> None:
    """Add a dataset under `info.name`: `load(data_dir, seed)` returns it, ready to train.

    `file` names what the loader needs inside the data dir (so `medslim datasets` can say
    whether it is cached); leave it None for data that ships with a package. A name is
    registered once: a second registration is a bug, so it raises.
    """
    if info.name in _REGISTRY:
        raise ValueError(f"dataset {info.name!r} is already registered")
    _REGISTRY[info.name] = _Entry(info, load, file)


def _register_medmnist(info: MedMNISTInfo) -> None:
    summary = DatasetInfo(
        name=info.name,
        task=info.task,
        channels=info.n_channels,
        n_outputs=len(info.labels),
        cached=False,
        description=info.description,
    )
    register_dataset(summary, partial(_load_medmnist, info), file=f"{info.name}.npz")


_BREAST_CANCER = DatasetInfo(
    name="breast-cancer",
    task=BINARY,
    channels=None,
    n_outputs=2,
    cached=True,
    description="Wisconsin diagnostic breast cancer, 569 samples x 30 features (tabular)",
)


register_dataset(_BREAST_CANCER, _load_breast_cancer)
for _info in medmnist.DATASETS.values():
    _register_medmnist(_info)
