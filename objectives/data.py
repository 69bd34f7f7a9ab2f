"""Datasets by name or by shape, ready to train: a registry (scikit-learn's breast-cancer,
every 2D MedMNIST+ dataset at 28–224 px, every 3-D one at 28³ and 64³) and local sources (a
MedMNIST-layout .npz of images or volumes, an image folder, a CSV manifest; DICOM images,
NIfTI volumes and DICOM series inside either). Images and volumes stay uint8 in their
`Split`s.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import platformdirs
import torch

from medslim.errors import DataError, UsageError
from medslim.kinds import BINARY, KIND_NAMES, MULTI_LABEL, DataKind, Task
from medslim.objectives import decoded, imagefiles, labels, manifest, medmnist, npz
from medslim.objectives import volumefiles as volumes
from medslim.objectives.medmnist import MedMNISTInfo
from medslim.objectives.npz import RawSplit
from medslim.objectives.sizes import Size, check_size, image_side, size_text, volume_shape
from medslim.objectives.split import PixelScale, Split
from medslim.objectives.windows import DEFAULT_WINDOW, parse_window
from medslim.registry import Registry

__all__ = ["DataRequest", "Dataset", "DatasetInfo", "Split", "load_dataset", "register_dataset"]

logger = logging.getLogger(__name__)
DATA_DIR_ENV = "MEDSLIM_DATA_DIR"
FILES_SIZE = 224
"""Default `--size` of image folders and CSV manifests (files come in any size)."""
_STD_FLOOR = 1e-6
SPLITS = npz.SPLITS


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
    origin: dict[str, Any] = field(default_factory=dict)
    """Where the data came from, as plain data a study stores: layout, size, how it was
    split (and a digest of the split, so a worker can tell it sees the same one)."""
    test_groups: dict[str, np.ndarray] = field(default_factory=dict)
    """Subgroup columns of a CSV manifest (`sex`, `site`): each test image's value, in the
    test split's order."""


@dataclass(frozen=True)
class DatasetInfo:
    """One line of `medslim datasets`: known without loading the data."""

    name: str
    task: Task
    channels: int | None
    n_outputs: int
    cached: bool
    description: str
    sizes: tuple[int, ...] = ()
    """Image sizes (a volume's side) the dataset comes in (empty: tabular, or one size only)."""
    cached_sizes: tuple[int, ...] = ()


@dataclass(frozen=True)
class DataRequest:
    """What to load: a registered name or a path, and how (size, task, channels, and for
    NIfTI and DICOM volumes the intensity window). `kind`: the data the model takes, when
    known; data of another kind is refused as soon as it is seen, before any download or
    decoding."""

    source: str = "breast-cancer"
    data_dir: Path | None = None
    seed: int = 0
    size: Size | None = None
    task: Task | None = None
    channels: int | None = None
    subgroups: tuple[str, ...] = ()
    """CSV manifest columns that name subgroups (not labels) of each image."""
    window: str | None = None
    kind: DataKind | None = None
    allow_outside_paths: bool = False
    """A CSV manifest may list files outside its own folder."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", check_size(self.size, "--size"))
        if self.channels not in (None, 1, 3):
            raise UsageError(f"--channels must be 1 (grey) or 3 (RGB), got {self.channels}")
        parse_window(self.window, "--window")

    @property
    def directory(self) -> Path:
        return Path(self.data_dir) if self.data_dir is not None else default_data_dir()


ShapeCheck = Callable[[int, tuple[int, ...], int, Path | None], None]
"""Called with (images, one sample's (channels, *spatial), the outputs, the cache folder
they will be decoded into or None when they need no decoding) before any image is decoded:
it may refuse a size that will not fit (`footprint.check_fits`)."""
Loader = Callable[[Path, int], Dataset]
"""(data dir, seed) → the dataset; the seed matters only where the loader splits the data."""


@dataclass(frozen=True)
class _Entry:
    info: DatasetInfo  # `cached` is filled in per data dir by list_datasets
    load: Callable[[DataRequest, ShapeCheck], Dataset]
    files: dict[int, str]  # file per size needed in the data dir; empty: shipped with a package


def default_data_dir() -> Path:
    """$MEDSLIM_DATA_DIR, else the user cache dir, so downloads survive across projects."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("medslim")) / "data"


def load_dataset(
    name_or_path: str,
    *,
    data_dir: Path | None = None,
    seed: int = 0,
    size: Size | None = None,
    task: Task | None = None,
    channels: int | None = None,
    subgroups: tuple[str, ...] = (),
    window: str | None = None,
    allow_outside_paths: bool = False,
) -> Dataset:
    """A registry name, a MedMNIST-layout .npz, a CSV manifest or an image folder (a path
    wins even if named like a dataset); `subgroups`: CSV columns naming subgroups; a CSV may
    list files outside its folder only with `allow_outside_paths`."""
    request = DataRequest(
        name_or_path,
        data_dir,
        seed,
        size,
        task,
        channels,
        subgroups=subgroups,
        window=window,
        allow_outside_paths=allow_outside_paths,
    )
    return load_request(request)


def load_request(request: DataRequest, check: ShapeCheck | None = None) -> Dataset:
    """The dataset a `DataRequest` describes (see `load_dataset`); `check` sees the images'
    count and shape before any is decoded."""
    name_or_path = request.source
    path = Path(name_or_path).expanduser()
    check = check or _no_check
    if path.suffix.lower() == ".npz" or (path.is_file() and path.suffix.lower() != ".csv"):
        return _load_npz_path(path, request, check)
    if path.suffix.lower() == ".csv":
        read = partial(
            manifest.read_csv,
            subgroups=request.subgroups,
            allow_outside=request.allow_outside_paths,
        )
        return _load_files(_existing(path, "CSV manifest"), request, read, check)
    if request.subgroups:
        raise DataError(
            f"{name_or_path}: subgroups ({', '.join(request.subgroups)}) come from the columns "
            "of a CSV manifest (path,label,split,sex,...); this data is not one"
        )
    if path.is_dir():
        return _load_files(path, request, manifest.read_folder, check)
    entry = _REGISTRY.find(name_or_path)
    if entry is None and (path.exists() or os.sep in name_or_path):
        raise DataError(
            f"{path}: no such file or folder (or not an image folder, .csv or .npz); "
            "check the path"
        )
    if entry is None:
        raise UsageError(
            f"{_REGISTRY.unknown(name_or_path)}, "
            "or give a path to an image folder, a CSV manifest or a MedMNIST-layout .npz"
        )
    return entry.load(request, check)


def _no_check(images: int, shape: tuple[int, ...], outputs: int, decoded_to: Path | None) -> None:
    return None


def list_datasets(data_dir: Path | None = None) -> list[DatasetInfo]:
    directory = Path(data_dir) if data_dir is not None else default_data_dir()
    rows = []
    for entry in _REGISTRY.values():
        cached = tuple(s for s, file in entry.files.items() if (directory / file).is_file())
        sizes = tuple(s for s in cached if s in entry.info.sizes)
        rows.append(
            replace(entry.info, cached=not entry.files or bool(cached), cached_sizes=sizes)
        )
    return rows


def local_sources(data_dir: Path | None = None) -> list[tuple[str, str]]:
    """(file or folder, what it is) for what `--dataset` could read in the data dir, besides
    the registered datasets' own files."""
    directory = Path(data_dir) if data_dir is not None else default_data_dir()
    if not directory.is_dir():
        return []
    known = {file for entry in _REGISTRY.values() for file in entry.files.values()}
    found = []
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or path.name in known or path.name == "decoded":
            continue
        if path.suffix.lower() == ".npz":
            found.append((path.name, "MedMNIST-layout .npz"))
        elif path.suffix.lower() == ".csv":
            found.append((path.name, "CSV manifest"))
        elif path.is_dir():
            found.append((f"{path.name}/", "image folder"))
    return found


def dataset_names() -> list[str]:
    return _REGISTRY.names()


def _existing(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DataError(f"{path}: no such {what}; check the path")
    return path


def _load_npz_path(path: Path, request: DataRequest, check: ShapeCheck) -> Dataset:
    """A local file keeps the true task of the MedMNIST dataset whose md5 it has."""
    if not path.is_file():
        raise DataError(
            f"{path}: no such file; check the path, or use a dataset name "
            f"({', '.join(dataset_names())})"
        )
    digest = medmnist.md5(path)
    spill = request.directory / "decoded" / f"{path.stem}-{digest[:12]}"
    known = medmnist.by_md5(digest)
    return _npz_dataset(path, path.stem, known, request, spill, digest, check)


def _load_medmnist(info: MedMNISTInfo, request: DataRequest, check: ShapeCheck) -> Dataset:
    """Official fixed splits (the seed plays no part), at the requested size's own file."""
    _check_kind(request, "volume" if info.dims == 3 else "image", info.name)
    size = _medmnist_size(info, request.size)
    info.file(size)  # a size the dataset does not come in fails before any download
    path = medmnist.fetch(info, request.directory, size)
    spill = request.directory / "decoded" / path.stem
    digest = info.file(size).md5
    sized = replace(request, size=size)
    dataset = _npz_dataset(path, info.name, info, sized, spill, digest, check)
    return replace(dataset, origin={**dataset.origin, "layout": "medmnist"})


def _medmnist_size(info: MedMNISTInfo, size: Size | None) -> int:
    """The side of the file to fetch: a 3-D dataset takes a cube's D,H,W too."""
    if isinstance(size, tuple) and info.dims == 3 and len(set(size)) == 1:
        return size[0]
    return image_side(size, info.name) or medmnist.NATIVE_SIZE


def _npz_dataset(
    path: Path,
    name: str,
    known: MedMNISTInfo | None,
    request: DataRequest,
    spill: Path,
    digest: str,
    check: ShapeCheck,
) -> Dataset:
    _no_window(request, str(path))
    raw = npz.read_npz(path, spill)
    _check_kind(request, "volume" if raw["train"].images.ndim == 5 else "image", str(path))
    if known is not None and request.task is None:
        task, n_outputs = known.task, len(known.labels)
    else:
        task, n_outputs = labels.infer_task(str(path), _labels_of(raw), request.task)
    names = known.labels if known else ()
    labels.check_labels(str(path), _labels_of(raw), task, n_outputs, names)
    raw = _resized_npz(path, digest, raw, request, check, n_outputs)
    return image_dataset(
        raw,
        name=name,
        source=str(path),
        task=task,
        n_outputs=n_outputs,
        class_names=names,
        origin={"layout": "npz", "split": "given"},
    )


def _resized_npz(
    path: Path,
    digest: str,
    raw: dict[str, RawSplit],
    request: DataRequest,
    check: ShapeCheck,
    outputs: int,
) -> dict[str, RawSplit]:
    """The file's images at `request.size` (square) and channels, or its volumes at the
    size's D,H,W, resized once into the cache; as they are when neither was asked for or
    both already match (`check` sees them first)."""
    sample = raw["train"].images.shape[1:]
    if len(sample) == 4:
        return _resized_volumes(path, digest, raw, request, check, outputs)
    height, width, channels = sample
    size = image_side(request.size, str(path)) or max(height, width)
    want = request.channels or channels
    total = sum(len(r.images) for r in raw.values())
    if (height, width, channels) == (size, size, want) or (request.size, request.channels) == (
        None,
        None,
    ):
        check(total, (channels, height, width), outputs, None)
        return raw
    resize = Resize(
        decoded.cache_key([digest], size, want),
        (size, size, want),
        lambda image: imagefiles.resize_array(image, size, want),
    )
    return _cached_resize(path, raw, request, resize, check, outputs)


def _resized_volumes(
    path: Path,
    digest: str,
    raw: dict[str, RawSplit],
    request: DataRequest,
    check: ShapeCheck,
    outputs: int,
) -> dict[str, RawSplit]:
    _grey_volumes(request, str(path))
    current = tuple(raw["train"].images.shape[1:4])
    shape = current if request.size is None else volume_shape(request.size)
    if shape == current:
        check(sum(len(r.images) for r in raw.values()), (1, *shape), outputs, None)
        return raw
    resize = Resize(
        decoded.cache_key([digest], shape, 1),
        (*shape, 1),
        lambda volume: volumes.resize_uint8(volume, shape),
    )
    return _cached_resize(path, raw, request, resize, check, outputs)


@dataclass(frozen=True)
class Resize:
    """How every sample of a file is resized into the cache: its key, the channels-last
    shape of one sample, and the function."""

    key: str
    shape: tuple[int, ...]
    apply: Callable[[np.ndarray], np.ndarray]


def _cached_resize(
    path: Path,
    raw: dict[str, RawSplit],
    request: DataRequest,
    resize: Resize,
    check: ShapeCheck,
    outputs: int,
) -> dict[str, RawSplit]:
    """Every sample of the file passed through `resize`, once, into the cache (`check`
    sees the count and the channels-first shape first)."""
    folder = request.directory / "decoded" / f"{path.stem}-{resize.key}"
    total = sum(len(r.images) for r in raw.values())
    first = (resize.shape[-1], *resize.shape[:-1])
    check(total, first, outputs, None if decoded.is_cached(folder) else folder)

    def plan() -> tuple[tuple[int, ...], decoded.Fill]:
        def fill(target: np.ndarray) -> None:
            start = 0
            for split in SPLITS:
                for sample in raw[split].images:
                    target[start] = resize.apply(sample)
                    start += 1

        return resize.shape, fill

    counts = {split: len(r.images) for split, r in raw.items()}
    images = decoded.cached_images(folder, counts, plan)
    return {split: RawSplit(images[split], raw[split].labels) for split in SPLITS}


def _load_files(
    path: Path,
    request: DataRequest,
    read: Callable[[Path], manifest.Manifest],
    check: ShapeCheck,
) -> Dataset:
    """An image folder or a CSV manifest: files listed, split, decoded once into the cache."""
    listed = read(path)
    labels.check_label_values(str(path), listed.labels, listed.files, listed.class_names)
    listed = manifest.assign_splits(listed, request.seed)
    rows = listed.split_rows()
    for split in SPLITS:
        if len(rows[split]) == 0:
            raise DataError(f"{path}: the {split} split is empty; every split needs an image")
    split_labels = {split: listed.labels[rows[split]] for split in SPLITS}
    task, n_outputs = labels.infer_task(str(path), split_labels, request.task)
    labels.check_labels(str(path), split_labels, task, n_outputs, listed.class_names)
    order = np.concatenate([rows[split] for split in SPLITS])
    counts = {split: len(rows[split]) for split in SPLITS}
    volumes_given = _holds_volumes(listed)
    _check_kind(request, "volume" if volumes_given else "image", str(path))
    if volumes_given:
        key, plan, extra = _volume_plan(listed, rows, order, request)
        folder = request.directory / "decoded" / f"{path.stem}-{key}"
        shape: tuple[int, ...] = (1, *volume_shape(request.size))
    else:
        _no_window(request, str(path))
        size = image_side(request.size, str(path)) or FILES_SIZE
        if request.size is None:
            logger.info("%s: images resized to %d px (the default; --size changes it)", path, size)
        key = decoded.manifest_key(listed, rows, size, request.channels)
        extra = {}
        folder = request.directory / "decoded" / f"{path.stem}-{key}"
        cached = decoded.cached_channels(folder)  # a cache hit reads no image file
        first = cached or request.channels or imagefiles.probe_channels(listed.files[order[0]])
        shape = (first, size, size)

        def plan() -> tuple[tuple[int, ...], decoded.Fill]:
            channels = request.channels or _common_channels(listed, order)
            return (size, size, channels), decoded.decode_files(listed, order, size, channels)

    check(len(order), shape, n_outputs, None if decoded.is_cached(folder) else folder)
    images = decoded.cached_images(folder, counts, plan)
    raw = {split: RawSplit(images[split], split_labels[split]) for split in SPLITS}
    carved = "/".join(listed.carved)
    dataset = image_dataset(
        raw,
        name=path.stem if path.is_file() else path.name,
        source=str(path.resolve()),
        task=task,
        n_outputs=n_outputs,
        class_names=listed.class_names,
        origin={
            "layout": listed.layout,
            "split_digest": listed.digest(),
            "files": len(listed.files),
            "split": f"{carved} carved from train, seed {request.seed}" if carved else "given",
            **extra,
        },
    )
    groups = manifest.test_groups(listed, rows["test"])
    return replace(dataset, test_groups=groups) if groups else dataset


def _holds_volumes(listed: manifest.Manifest) -> bool:
    """Whether the samples are volumes (NIfTI files, DICOM series); a mix is refused."""
    found = [volumes.is_volume(file) for file in listed.files]
    if all(found):
        return True
    if any(found):
        image, volume = listed.files[found.index(False)], listed.files[found.index(True)]
        raise DataError(
            f"{image}: a 2-D image among volumes (such as {volume}); give every sample as "
            "a NIfTI volume or a DICOM series folder, or keep 2-D images in a dataset of "
            "their own"
        )
    return False


def _volume_plan(
    listed: manifest.Manifest,
    rows: dict[str, np.ndarray],
    order: np.ndarray,
    request: DataRequest,
) -> tuple[str, decoded.Plan, dict[str, Any]]:
    """The cache key, decoding plan and origin of NIfTI volumes or DICOM series."""
    _grey_volumes(request, str(listed.source))
    shape = volume_shape(request.size)
    window = parse_window(request.window, "--window")
    if request.size is None:
        logger.info(
            "%s: volumes resampled to %s voxels (the default; --size changes it)",
            listed.source,
            size_text(shape),
        )
    if window == DEFAULT_WINDOW and request.window is None:
        logger.info(
            "%s: intensities by %s (the default; --window sets a CT window)",
            listed.source,
            window.describe(),
        )
    key = decoded.manifest_key(listed, rows, shape, 1, window)

    def plan() -> tuple[tuple[int, ...], decoded.Fill]:
        return (*shape, 1), decoded.decode_volumes(listed, order, shape, window)

    return key, plan, {"window": window.describe()}


def _check_kind(request: DataRequest, found: DataKind, source: str) -> None:
    if request.kind is not None and request.kind != found:
        raise UsageError(
            f"{source} holds {KIND_NAMES[found]}, but the model takes "
            f"{KIND_NAMES[request.kind]}; pick a model for {KIND_NAMES[found]} (`medslim "
            "list` shows which data each takes)"
        )


def _no_window(request: DataRequest, source: str) -> None:
    if request.window is not None:
        raise UsageError(
            f"{source} holds 8-bit images already; --window applies to the raw intensities "
            "of NIfTI volumes and DICOM series: drop it"
        )


def _grey_volumes(request: DataRequest, source: str) -> None:
    if request.channels == 3:
        raise UsageError(f"{source} holds grey volumes; --channels 3 is for 2-D colour images")


def _common_channels(listed: manifest.Manifest, order: np.ndarray) -> int:
    """1 or 3 when every file agrees; mixed files need --channels."""
    seen: dict[int, Path] = {}
    for row in order:
        file = listed.files[row]
        seen.setdefault(imagefiles.probe_channels(file), file)
        if len(seen) > 1:
            raise DataError(
                f"{listed.source}: mixed grey and colour images ({seen[1]} is grey, {seen[3]} "
                "is RGB); pass --channels 1 or --channels 3"
            )
    return next(iter(seen))


def image_dataset(
    raw: dict[str, RawSplit],
    *,
    name: str,
    source: str,
    task: Task,
    n_outputs: int,
    class_names: tuple[str, ...] = (),
    origin: dict[str, Any] | None = None,
) -> Dataset:
    """uint8 splits of images or volumes (labels checked by `labels.check_labels`)
    wrapped, with the pixel scale of the training images."""
    scale = PixelScale.of(raw["train"].images)
    splits = {
        split: Split(torch.from_numpy(r.images), _label_tensor(r.labels, task), scale)
        for split, r in raw.items()
    }
    *spatial, channels = raw["train"].images.shape[1:]
    return Dataset(
        name=name,
        task=task,
        n_outputs=n_outputs,
        input_shape=(channels, *spatial),
        kind="volume" if len(spatial) == 3 else "image",
        source=source,
        class_names=class_names,
        origin={**(origin or {}), "size": spatial[0] if len(set(spatial)) == 1 else spatial},
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
    )


def _labels_of(raw: dict[str, RawSplit]) -> dict[str, np.ndarray]:
    return {split: r.labels for split, r in raw.items()}


def _label_tensor(values: np.ndarray, task: Task) -> torch.Tensor:
    dtype = torch.float32 if task == MULTI_LABEL else torch.int64
    return torch.from_numpy(np.ascontiguousarray(values)).to(dtype)


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
        origin={"layout": "registry", "split": "seeded 60/20/20"},
    )


_REGISTRY: Registry[_Entry] = Registry("dataset", "choose one of")


def register_dataset(info: DatasetInfo, load: Loader, *, file: str | None = None) -> None:
    """Add a dataset under `info.name`: `load(data_dir, seed)` returns it, ready to train.

    `file` names what the loader needs inside the data dir (so `medslim datasets` can say
    whether it is cached); leave it None for data that ships with a package. A name is
    registered once: a second registration is a bug, so it raises.
    """

    def load_request(request: DataRequest, check: ShapeCheck) -> Dataset:
        _no_window(request, info.name)
        dataset = load(request.directory, request.seed)
        _check_kind(request, dataset.kind, info.name)
        size = request.size
        if size is not None and tuple(dataset.input_shape[1:]) != (size, size):
            raise UsageError(f"{info.name} comes in one size only; drop --size {size}")
        return dataset

    _register(info, load_request, {0: file} if file else {})


def _register(
    info: DatasetInfo, load: Callable[[DataRequest, ShapeCheck], Dataset], files: dict[int, str]
) -> None:
    _REGISTRY.register(info.name, _Entry(info, load, files))


def _register_medmnist(info: MedMNISTInfo) -> None:
    summary = DatasetInfo(
        name=info.name,
        task=info.task,
        channels=info.n_channels,
        n_outputs=len(info.labels),
        cached=False,
        description=info.description,
        sizes=info.sizes,
    )
    files = {size: info.file_name(size) for size in info.sizes}
    _register(summary, partial(_load_medmnist, info), files)


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
