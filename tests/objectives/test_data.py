"""Dataset registry and loaders, on real files: generated .npz, the shared MedMNIST files, HTTP."""

from __future__ import annotations

import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from medslim.errors import UsageError
from medslim.kinds import TASKS
from medslim.objectives import data, medmnist
from medslim.objectives.data import Dataset, default_data_dir, list_datasets, load_dataset

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SPLITS = ("train", "val", "test")
Labels = Callable[[int], np.ndarray]


def binary_column(n: int) -> np.ndarray:
    return (np.arange(n) % 2).astype(np.uint8).reshape(n, 1)


def four_classes(n: int) -> np.ndarray:
    return (np.arange(n) % 4).astype(np.int64)


def three_labels(n: int) -> np.ndarray:
    return np.random.default_rng(n).integers(0, 2, size=(n, 3), dtype=np.uint8)


def five_grades(n: int) -> np.ndarray:
    return (np.arange(n) % 5).astype(np.uint8).reshape(n, 1)


def one_class(n: int) -> np.ndarray:
    return np.zeros(n, np.uint8)


def make_arrays(
    labels: Labels = binary_column, *, rgb: bool = False, sizes: tuple[int, ...] = (24, 10, 10)
) -> dict[str, np.ndarray]:
    """MedMNIST layout with 6×5 images (not square, so a swapped H/W would show)."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in zip(SPLITS, sizes, strict=True):
        shape = (n, 6, 5, 3) if rgb else (n, 6, 5)
        arrays[f"{split}_images"] = rng.integers(0, 256, size=shape, dtype=np.uint8)
        arrays[f"{split}_labels"] = labels(n)
    return arrays


def save(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    ("labels", "rgb", "task", "n_outputs"),
    [
        (binary_column, False, "binary-class", 2),
        (binary_column, True, "binary-class", 2),
        (four_classes, False, "multi-class", 4),
        (four_classes, True, "multi-class", 4),
        (three_labels, False, "multi-label, binary-class", 3),
        (three_labels, True, "multi-label, binary-class", 3),
    ],
)
def test_local_npz_infers_task_and_shapes(
    tmp_path: Path, labels: Labels, rgb: bool, task: str, n_outputs: int
) -> None:
    arrays = make_arrays(labels, rgb=rgb)
    dataset = load_dataset(str(save(tmp_path / "mine.npz", arrays)))

    channels = 3 if rgb else 1
    assert (dataset.name, dataset.task, dataset.n_outputs) == ("mine", task, n_outputs)
    assert (dataset.kind, dataset.input_shape) == ("image", (channels, 6, 5))
    assert dataset.source == str(tmp_path / "mine.npz")
    for split in SPLITS:
        part = getattr(dataset, split)
        n = len(arrays[f"{split}_labels"])
        assert len(part) == n
        assert part.x.shape == (n, 6, 5, channels) and part.x.dtype == torch.uint8
        inputs = part.batch(slice(None))
        assert inputs.shape == (n, channels, 6, 5)
        assert inputs.dtype == torch.float32 and inputs.is_contiguous()
        if task.startswith("multi-label"):
            assert part.y.dtype == torch.float32 and part.y.shape == (n, n_outputs)
        else:
            assert part.y.dtype == torch.int64 and part.y.shape == (n,)
        expected = torch.from_numpy(labels(n)).reshape(part.y.shape).to(part.y.dtype)
        assert torch.equal(part.y, expected)


@pytest.mark.parametrize("rgb", [False, True])
def test_images_normalised_with_train_statistics(tmp_path: Path, rgb: bool) -> None:
    arrays = make_arrays(four_classes, rgb=rgb)
    dataset = load_dataset(str(save(tmp_path / "norm.npz", arrays)))

    train = dataset.train.batch(slice(None))
    assert torch.allclose(train.mean(dim=(0, 2, 3)), torch.zeros(train.shape[1]), atol=1e-5)
    assert torch.allclose(train.std(dim=(0, 2, 3), correction=0), torch.ones(train.shape[1]))
    scaled = arrays["train_images"].reshape(24, 6, 5, -1) / 255.0
    mean, std = scaled.mean(axis=(0, 1, 2)), scaled.std(axis=(0, 1, 2))
    val = (arrays["val_images"].reshape(10, 6, 5, -1) / 255.0 - mean) / std
    expected = torch.from_numpy(val.transpose(0, 3, 1, 2)).float()
    assert torch.allclose(dataset.val.batch(slice(None)), expected, atol=1e-5)


def test_constant_channel_stays_finite(tmp_path: Path) -> None:
    arrays = make_arrays()
    arrays["train_images"][:] = 7
    dataset = load_dataset(str(save(tmp_path / "flat.npz", arrays)))
    assert torch.all(dataset.train.batch(slice(None)) == 0)
    assert torch.isfinite(dataset.val.batch(slice(None))).all()


@pytest.fixture
def retina_md5(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[[dict], Path]:
    """Save arrays and pretend they are the official RetinaMNIST file (same md5)."""

    def make(arrays: dict[str, np.ndarray]) -> Path:
        path = save(tmp_path / "myretina.npz", arrays)
        retina = medmnist.DATASETS["retinamnist"]
        files = {**retina.files, 28: medmnist.FileInfo(retina.url, medmnist.md5(path))}
        official = replace(retina, files=files)
        monkeypatch.setitem(medmnist.DATASETS, "retinamnist", official)
        return path

    return make


def test_known_md5_gives_the_official_task(retina_md5: Callable[[dict], Path]) -> None:
    path = retina_md5(make_arrays(five_grades, rgb=True))
    dataset = load_dataset(str(path))
    assert (dataset.name, dataset.task, dataset.n_outputs) == ("myretina", "ordinal-regression", 5)
    assert dataset.input_shape == (3, 6, 5)
    assert dataset.train.y.dtype == torch.int64 and dataset.train.y.shape == (24,)


def test_known_md5_checks_label_range(retina_md5: Callable[[dict], Path]) -> None:
    arrays = make_arrays(five_grades, rgb=True)
    arrays["test_labels"][0] = 5
    path = retina_md5(arrays)
    with pytest.raises(UsageError, match=r"test_labels has values 0\.\.5, outside 0\.\.4") as err:
        load_dataset(str(path))
    assert str(path) in str(err.value)


def truncated(tmp_path: Path) -> str:
    path = save(tmp_path / "cut.npz", make_arrays())
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return str(path)


def damaged_member(tmp_path: Path) -> str:
    """Central directory intact, compressed array bytes overwritten: fails only on reading."""
    path = tmp_path / "damaged.npz"
    np.savez_compressed(path, **make_arrays())
    content = bytearray(path.read_bytes())
    content[200:220] = b"\xff" * 20
    path.write_bytes(bytes(content))
    return str(path)


def text_file(tmp_path: Path) -> str:
    path = tmp_path / "text.npz"
    path.write_text("not a zip archive\n")
    return str(path)


def npy_file(tmp_path: Path) -> str:
    path = tmp_path / "array.npz"
    with path.open("wb") as handle:
        np.save(handle, np.zeros((3, 6, 5), np.uint8))
    return str(path)


def bad_file(
    name: str, labels: Labels = binary_column, drop: tuple[str, ...] = (), **arrays: np.ndarray
) -> Callable[[Path], str]:
    """A builder for a file that is valid except for the `arrays` replaced and the keys dropped."""

    def build(tmp_path: Path) -> str:
        content = {**make_arrays(labels), **arrays}
        for key in drop:
            del content[key]
        return str(save(tmp_path / name, content))

    return build


BAD_INPUTS = {
    "unknown name": (lambda tmp: "nosuchdata", ["nosuchdata", "pneumoniamnist", ".npz"]),
    "missing file": (lambda tmp: str(tmp / "absent.npz"), ["absent.npz", "no such file"]),
    "truncated npz": (truncated, ["cut.npz", "truncated"]),
    "damaged array": (damaged_member, ["damaged.npz", "not a readable .npz archive"]),
    "not a zip": (text_file, ["text.npz", "not a zip archive"]),
    "npy not npz": (npy_file, ["array.npz", "not a zip archive"]),
    "missing keys": (
        bad_file("keys.npz", drop=("val_images", "test_labels")),
        ["keys.npz", "missing arrays val_images, test_labels"],
    ),
    "negative label": (
        bad_file("neg.npz", four_classes, val_labels=four_classes(10) - 1),
        ["neg.npz", "val_labels has values -1..2"],
    ),
    "multi-label not 0/1": (
        bad_file("multi.npz", three_labels, train_labels=three_labels(24) * 2),
        ["multi.npz", "train_labels has values 0..2, outside 0..1"],
    ),
    "single class": (
        bad_file("one.npz", one_class),
        ["one.npz", "at least K=2"],
    ),
    "empty split": (
        bad_file(
            "empty.npz", val_images=np.zeros((0, 6, 5), np.uint8), val_labels=np.zeros(0, int)
        ),
        ["empty.npz", "val split is empty"],
    ),
    "length mismatch": (
        bad_file("len.npz", test_labels=binary_column(9)),
        ["len.npz", "test_images has 10 images but test_labels has 9 labels"],
    ),
    "image rank": (
        bad_file("rank.npz", train_images=np.zeros((24, 30), np.uint8)),
        ["rank.npz", "train_images has shape (24, 30)"],
    ),
    "image dtype": (
        bad_file("float.npz", train_images=np.zeros((24, 6, 5), np.float32)),
        ["float.npz", "dtype float32", "uint8"],
    ),
    "label dtype": (
        bad_file("flab.npz", train_labels=np.zeros(24, np.float64)),
        ["flab.npz", "labels must be integers"],
    ),
    "split shapes differ": (
        bad_file("size.npz", test_images=np.zeros((10, 7, 5), np.uint8)),
        ["size.npz", "test_images has sample shape (7, 5, 1)"],
    ),
}


@pytest.mark.parametrize(("build", "fragments"), BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_is_a_one_line_usage_error(
    tmp_path: Path, build: Callable[[Path], str], fragments: list[str]
) -> None:
    with pytest.raises(UsageError) as err:
        load_dataset(build(tmp_path), data_dir=tmp_path)
    message = str(err.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_breast_cancer_splits() -> None:
    dataset = load_dataset("breast-cancer", seed=3)
    parts = [dataset.train, dataset.val, dataset.test]

    assert (dataset.task, dataset.n_outputs, dataset.kind) == ("binary-class", 2, "tabular")
    assert dataset.input_shape == (30,) and dataset.source == "scikit-learn"
    assert [len(part) for part in parts] == [341, 114, 114]
    rows = torch.cat([part.x for part in parts])
    assert len(torch.unique(rows, dim=0)) == 569  # no sample in two splits
    ratios = [part.y.float().mean().item() for part in parts]
    assert max(ratios) - min(ratios) < 0.01
    assert all(part.x.dtype == torch.float32 and part.y.dtype == torch.int64 for part in parts)
    assert torch.allclose(dataset.train.x.mean(0), torch.zeros(30), atol=1e-5)
    assert torch.allclose(dataset.train.x.std(0, correction=0), torch.ones(30), atol=1e-5)


def test_breast_cancer_seed_decides_the_split() -> None:
    first, again, other = (load_dataset("breast-cancer", seed=s) for s in (0, 0, 1))
    assert torch.equal(first.train.x, again.train.x) and torch.equal(first.test.y, again.test.y)
    assert not torch.equal(first.train.x, other.train.x)


def test_registry_names_and_listing(tmp_path: Path) -> None:
    names = data.dataset_names()
    assert names[0] == "breast-cancer" and set(medmnist.DATASETS) <= set(names)
    assert len(names) == 19  # breast-cancer, twelve 2-D and six 3-D MedMNIST datasets
    (tmp_path / "dermamnist.npz").touch()
    (tmp_path / "adrenalmnist3d_64.npz").touch()
    infos = {info.name: info for info in list_datasets(tmp_path)}
    assert list(infos) == names
    assert infos["breast-cancer"].cached and infos["breast-cancer"].channels is None
    assert infos["dermamnist"].cached and not infos["pathmnist"].cached
    assert infos["adrenalmnist3d"].cached_sizes == (64,)
    assert infos["adrenalmnist3d"].sizes == (28, 64)
    assert (infos["chestmnist"].task, infos["chestmnist"].n_outputs) == (TASKS[2], 14)
    assert all(info.task in TASKS for info in infos.values())


def test_duplicate_registration_raises() -> None:
    with pytest.raises(ValueError, match="breast-cancer"):
        entry = data._REGISTRY["breast-cancer"]
        data.register_dataset(entry.info, entry.load)


def test_default_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    assert default_data_dir() == tmp_path
    monkeypatch.delenv(data.DATA_DIR_ENV)
    assert default_data_dir().parts[-1] == "data" and "medslim" in default_data_dir().parts


def test_download_url_override(monkeypatch: pytest.MonkeyPatch) -> None:
    info = medmnist.DATASETS["bloodmnist"]
    monkeypatch.delenv(medmnist.URL_ENV, raising=False)
    assert medmnist.download_url(info) == info.url
    monkeypatch.setenv(medmnist.URL_ENV, "http://mirror.example/medmnist/")
    assert medmnist.download_url(info) == "http://mirror.example/medmnist/bloodmnist.npz"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Keep test output clean."""


class FileServer:
    """A real HTTP server on 127.0.0.1 serving one directory, stoppable mid-test."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._server = ThreadingHTTPServer(
            ("127.0.0.1", 0), partial(_QuietHandler, directory=str(directory))
        )
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FileServer]:
    served = tmp_path / "served"
    served.mkdir()
    running = FileServer(served)
    monkeypatch.setenv(medmnist.URL_ENV, running.url)
    yield running
    running.stop()


def unused_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def shared_file(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_file():
        pytest.skip(f"{path} is absent (real MedMNIST file shared beside the repo)")
    return path


def test_download_then_offline_reload(server: FileServer, tmp_path: Path) -> None:
    shutil.copy(shared_file("pneumoniamnist.npz"), server.directory)
    cache = tmp_path / "cache"

    first = load_dataset("pneumoniamnist", data_dir=cache)
    assert (cache / "pneumoniamnist.npz").is_file()
    assert [len(first.train), len(first.val), len(first.test)] == [4708, 524, 624]
    assert (first.task, first.n_outputs, first.input_shape) == ("binary-class", 2, (1, 28, 28))
    assert first.source == str(cache / "pneumoniamnist.npz")

    server.stop()
    again = load_dataset("pneumoniamnist", data_dir=cache)
    assert torch.equal(first.test.x, again.test.x)


def test_download_with_wrong_md5(server: FileServer, tmp_path: Path) -> None:
    save(server.directory / "breastmnist.npz", make_arrays())
    with pytest.raises(UsageError, match="MD5") as err:
        load_dataset("breastmnist", data_dir=tmp_path / "cache")
    assert "breastmnist" in str(err.value)
    assert not (tmp_path / "cache" / "breastmnist.npz").exists()


def test_download_of_missing_file(server: FileServer, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot download organsmnist .* HTTP 404"):
        load_dataset("organsmnist", data_dir=tmp_path)


def test_download_with_no_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(medmnist.URL_ENV, unused_port_url())
    with pytest.raises(UsageError) as err:
        load_dataset("octmnist", data_dir=tmp_path)
    message = str(err.value)
    assert message.startswith("cannot download octmnist from http://127.0.0.1:")
    assert f"No network? Put octmnist.npz in {tmp_path} (or pass --data-dir)" in message
    assert "\n" not in message


def test_corrupt_cached_file_names_both_md5s(tmp_path: Path) -> None:
    path = save(tmp_path / "breastmnist.npz", make_arrays())
    with pytest.raises(UsageError, match="delete it or re-download") as err:
        load_dataset("breastmnist", data_dir=tmp_path)
    message = str(err.value)
    assert str(path) in message and medmnist.md5(path) in message
    assert medmnist.DATASETS["breastmnist"].md5 in message


def check_breastmnist(dataset: Dataset) -> None:
    assert [len(dataset.train), len(dataset.val), len(dataset.test)] == [546, 78, 156]
    assert (dataset.task, dataset.n_outputs) == ("binary-class", 2)
    assert dataset.input_shape == (1, 28, 28)
    assert dataset.train.y.bincount().tolist() == [147, 399]


def test_shared_breastmnist_by_path(tmp_path: Path) -> None:
    copy = shutil.copy(shared_file("breastmnist.npz"), tmp_path / "ultrasound.npz")
    dataset = load_dataset(str(copy))
    assert dataset.name == "ultrasound"
    check_breastmnist(dataset)


def test_cached_file_needs_no_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    shutil.copy(shared_file("breastmnist.npz"), tmp_path)
    monkeypatch.setenv(medmnist.URL_ENV, unused_port_url())
    dataset = load_dataset("breastmnist", data_dir=tmp_path)
    assert dataset.name == "breastmnist"
    check_breastmnist(dataset)
