"""Data sources by shape, on files made here: image folders, CSV manifests, DICOM, MedMNIST+
sizes; the decoded-image cache; and every refusal as one line naming the input."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from medslim.errors import UsageError
from medslim.objectives import medmnist
from medslim.objectives.data import list_datasets, load_dataset, local_sources


def test_class_folder_is_split_stratified_by_seed_and_resized(tmp_path: Path, images: Any) -> None:
    root = images.class_folder(tmp_path / "xrays")
    data = load_dataset(str(root), data_dir=tmp_path / "cache", size=16, seed=0)
    assert (data.name, data.task, data.n_outputs, data.kind) == (
        "xrays",
        "binary-class",
        2,
        "image",
    )
    assert data.input_shape == (1, 16, 16) and data.class_names == images.classes
    assert [len(data.train), len(data.val), len(data.test)] == [28, 6, 6]
    for split in (data.train, data.val, data.test):
        assert split.x.dtype == torch.uint8 and split.y.bincount().tolist()[0] == len(split) // 2
    assert data.origin["split"] == "test/val carved from train, seed 0"
    again = load_dataset(str(root), data_dir=tmp_path / "cache", size=16, seed=0)
    other = load_dataset(str(root), data_dir=tmp_path / "cache", size=16, seed=1)
    assert again.origin["split_digest"] == data.origin["split_digest"]
    assert other.origin["split_digest"] != data.origin["split_digest"]
    assert torch.equal(again.val.x, data.val.x)


def test_split_folders_are_used_as_given(tmp_path: Path, images: Any) -> None:
    data = load_dataset(str(images.split_folder(tmp_path / "xr")), data_dir=tmp_path, size=16)
    assert [len(data.train), len(data.val), len(data.test)] == [24, 8, 8]
    assert data.origin["split"] == "given"


def test_folder_default_size_is_224(tmp_path: Path, images: Any) -> None:
    root = images.class_folder(tmp_path / "big", per_class=10)
    assert load_dataset(str(root), data_dir=tmp_path).input_shape == (1, 224, 224)


@pytest.mark.parametrize("with_split", [True, False])
def test_csv_manifest_with_and_without_split(
    tmp_path: Path, with_split: bool, images: Any
) -> None:
    path = images.manifest(tmp_path, with_split=with_split)
    data = load_dataset(str(path), data_dir=tmp_path / "cache", size=20)
    assert data.name == "labels" and data.task == "binary-class"
    assert data.input_shape == (1, 20, 20)
    sizes = [len(data.train), len(data.val), len(data.test)]
    assert sizes == ([24, 8, 8] if with_split else [28, 6, 6])
    expected = np.asarray(Image.open(tmp_path / "images" / "0.png").resize((20, 20), 3))
    if with_split:  # row 0 is the first training image
        assert np.array_equal(data.train.x[0, :, :, 0].numpy(), expected)


def test_csv_class_names_and_task_override(tmp_path: Path, images: Any) -> None:
    path = images.manifest(tmp_path, with_split=True, names=True)
    data = load_dataset(str(path), data_dir=tmp_path, size=16, task="ordinal-regression")
    assert data.class_names == images.classes and data.task == "ordinal-regression"


def test_multi_label_csv(tmp_path: Path, images: Any) -> None:
    rows = []
    for i in range(40):
        images.write_png(tmp_path / f"{i}.png", i % 2, i)
        split = "train" if i < 24 else "val" if i < 32 else "test"
        rows.append(f"{i}.png,{i % 2},{(i // 2) % 2},{split}")
    path = tmp_path / "multi.csv"
    path.write_text("path,effusion,edema,split\n" + "\n".join(rows) + "\n")
    data = load_dataset(str(path), data_dir=tmp_path, size=16)
    assert (data.task, data.n_outputs, data.class_names) == (
        "multi-label, binary-class",
        2,
        ("effusion", "edema"),
    )
    assert data.train.y.dtype == torch.float32 and data.train.y.shape == (24, 2)


def test_rgb_images_stay_rgb_and_mixed_ones_need_channels(tmp_path: Path, images: Any) -> None:
    root = images.class_folder(tmp_path / "rgb", per_class=10, mode="RGB")
    assert load_dataset(str(root), data_dir=tmp_path, size=16).input_shape == (3, 16, 16)
    images.write_png(root / "normal" / "grey.png", 1, 999, "L")
    with pytest.raises(UsageError, match="mixed grey and colour images .* --channels"):
        load_dataset(str(root), data_dir=tmp_path, size=16)
    grey = load_dataset(str(root), data_dir=tmp_path, size=16, channels=1)
    assert grey.input_shape == (1, 16, 16)


def test_second_load_decodes_nothing(tmp_path: Path, images: Any) -> None:
    """After the first load every image file is overwritten with garbage (same length and
    modification time): a second load that decoded anything would fail."""
    root = images.class_folder(tmp_path / "xr", per_class=10)
    first = load_dataset(str(root), data_dir=tmp_path / "cache", size=16)
    for path in root.rglob("*.png"):
        status = path.stat()
        path.write_bytes(b"\0" * status.st_size)
        os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))
    second = load_dataset(str(root), data_dir=tmp_path / "cache", size=16)
    assert torch.equal(first.train.x, second.train.x) and torch.equal(first.test.x, second.test.x)
    assert len(list((tmp_path / "cache" / "decoded").iterdir())) == 1
    with pytest.raises(UsageError, match="cannot read this image"):  # a new size decodes
        load_dataset(str(root), data_dir=tmp_path / "cache", size=20)


def test_dicom_window_and_monochrome1(tmp_path: Path, images: Any) -> None:
    pytest.importorskip("pydicom")
    from medslim.objectives.imagefiles import decode

    ramp = np.tile(np.linspace(0, 4000, 32), (32, 1))  # 12-bit values, left to right
    plain = images.write_dicom(tmp_path / "m2.dcm", ramp, "MONOCHROME2", (2000, 1000))
    inverted = images.write_dicom(tmp_path / "m1.dcm", ramp, "MONOCHROME1", (2000, 1000))
    m2 = decode(plain, 32, 1)[..., 0].astype(int)
    m1 = decode(inverted, 32, 1)[..., 0].astype(int)
    # the window 1500..2500 spans the full 0..255; values outside it saturate
    assert m2[:, :10].max() == 0 and m2[:, -10:].min() == 255
    assert np.all(np.diff(m2[0]) >= 0)
    assert np.abs(m1 + m2 - 255).max() <= 1  # MONOCHROME1 is the inverse


def test_dicom_folder_trains_like_any_other(tmp_path: Path, images: Any) -> None:
    pytest.importorskip("pydicom")
    root = tmp_path / "scans"
    for label, name in enumerate(images.classes):
        for i in range(10):
            values = images.pattern(label, 10 * label + i, (24, 24)).astype(np.float64) * 16
            photometric = "MONOCHROME1" if i % 2 else "MONOCHROME2"
            images.write_dicom(root / name / f"{i}.dcm", values, photometric, (2000, 4000))
    data = load_dataset(str(root), data_dir=tmp_path, size=16)
    assert data.input_shape == (1, 16, 16) and len(data.train) == 14
    broken = root / "normal" / "broken.dcm"
    broken.write_bytes(b"DICM" + b"\0" * 300)
    with pytest.raises(UsageError, match="broken.dcm: pydicom cannot decode"):
        load_dataset(str(root), data_dir=tmp_path, size=16)


def test_a_palette_colour_dicom_is_read_through_its_palette(tmp_path: Path, images: Any) -> None:
    pytest.importorskip("pydicom")
    from medslim.objectives.imagefiles import decode, probe_channels

    index = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (16, 1))  # 0..240, left to right
    path = images.write_palette_dicom(tmp_path / "p.dcm", index)
    assert probe_channels(path) == 3
    rgb = decode(path, 16, 3).astype(int)
    assert rgb[0, 0].tolist() == [255, 0, 0] and rgb[0, -1].tolist() == [15, 0, 240]
    assert np.all(np.diff(rgb[0, :, 2]) > 0), "blue follows the index, not raw indices as grey"


def test_dicom_without_pydicom_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("x", "y"):
        (tmp_path / "a" / name).mkdir(parents=True)
        for i in range(10):
            (tmp_path / "a" / name / f"{i}.dcm").write_bytes(b"\0" * 200)
    monkeypatch.setitem(sys.modules, "pydicom", None)  # import pydicom now fails
    with pytest.raises(UsageError, match=r"needs pydicom: pip install 'medslim\[dicom\]'"):
        load_dataset(str(tmp_path / "a"), data_dir=tmp_path, size=16)


def test_medmnist_plus_by_name_and_size(official_64: Callable[[], Path], tmp_path: Path) -> None:
    path = official_64()
    data = load_dataset("breastmnist", data_dir=path.parent, size=64)
    assert data.input_shape == (1, 64, 64) and data.name == "breastmnist"
    assert data.class_names == medmnist.DATASETS["breastmnist"].labels
    assert data.origin["layout"] == "medmnist" and data.origin["size"] == 64
    info = {row.name: row for row in list_datasets(path.parent)}["breastmnist"]
    assert info.sizes == (28, 64, 128, 224) and info.cached_sizes == (64,)
    with pytest.raises(UsageError, match="breastmnist comes in 28, 64, 128, 224 px, not 100"):
        load_dataset("breastmnist", data_dir=path.parent, size=100)


def test_local_npz_is_resized_once_and_listed(tmp_path: Path, images: Any) -> None:
    path = images.plus_file(tmp_path / "data", "mine.npz", 28)
    data = load_dataset(str(path), data_dir=tmp_path / "data", size=64)
    assert data.input_shape == (1, 64, 64)
    assert load_dataset(str(path), data_dir=tmp_path / "data").input_shape == (1, 28, 28)
    assert ("mine.npz", "MedMNIST-layout .npz") in local_sources(tmp_path / "data")


def test_a_big_npz_is_memory_mapped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, images: Any
) -> None:
    monkeypatch.setenv("MEDSLIM_MEMORY_LIMIT", "1000")
    path = images.plus_file(tmp_path, "big.npz", 32)
    data = load_dataset(str(path), data_dir=tmp_path / "cache")
    inside = np.load(path)
    assert np.array_equal(data.train.x.numpy()[..., 0], inside["train_images"])
    assert len(list((tmp_path / "cache" / "decoded").glob("big-*/*_images.npy"))) == 3


def labels_csv(tmp_path: Path, labels: list[int], images: Any) -> Path:
    lines = []
    for i, label in enumerate(labels):
        images.write_png(tmp_path / f"{i}.png", label % 2, i)
        lines.append(f"{i}.png,{label}")
    path = tmp_path / "l.csv"
    path.write_text("path,label\n" + "\n".join(lines) + "\n")
    return path


def bad_labels(tmp_path: Path, images: Any) -> str:
    return str(labels_csv(tmp_path, [0, 1, 1000] * 14, images))


def stray_label(tmp_path: Path, images: Any) -> str:
    return str(labels_csv(tmp_path, [0, 1] * 10 + [7] + [1, 0] * 10, images))


def too_few_to_carve(tmp_path: Path, images: Any) -> str:
    return str(labels_csv(tmp_path, [0, 2] * 10 + [1], images))


def outside_paths(tmp_path: Path, images: Any) -> str:
    for i in range(20):
        images.write_png(tmp_path / "inside" / f"{i}.png", i % 2, i)
    images.write_png(tmp_path / "elsewhere.png", 1, 99)
    rows = [f"{i}.png,{i % 2}" for i in range(20)] + ["../elsewhere.png,1", "/etc/passwd,0"]
    path = tmp_path / "inside" / "l.csv"
    path.write_text("path,label\n" + "\n".join(rows) + "\n")
    return str(path)


def palette_without_palette(tmp_path: Path, images: Any) -> str:
    pytest.importorskip("pydicom")
    root = images.class_folder(tmp_path / "x", per_class=8, mode="RGB")
    index = np.zeros((16, 16), np.uint8)
    images.write_palette_dicom(root / "normal" / "p.dcm", index, with_palette=False)
    return str(root)


def one_class_train(tmp_path: Path, images: Any) -> str:
    path = labels_csv(tmp_path, [0] * 20, images)
    return str(path)


def empty_folder(tmp_path: Path, images: Any) -> str:
    (tmp_path / "empty").mkdir()
    return str(tmp_path / "empty")


def class_without_images(tmp_path: Path, images: Any) -> str:
    root = images.class_folder(tmp_path / "x", per_class=5)
    (root / "ghost").mkdir()
    return str(root)


def unreadable_image(tmp_path: Path, images: Any) -> str:
    root = images.class_folder(tmp_path / "x", per_class=8)
    (root / "normal" / "bad.png").write_bytes(b"not a png")
    return str(root)


def missing_column(tmp_path: Path, images: Any) -> str:
    path = tmp_path / "m.csv"
    path.write_text("file,label\na.png,0\n")
    return str(path)


def missing_files(tmp_path: Path, images: Any) -> str:
    path = tmp_path / "m.csv"
    rows = "".join(f"gone{i}.png,{i % 2}\n" for i in range(5))
    path.write_text("path,label\n" + rows)
    return str(path)


def empty_val(tmp_path: Path, images: Any) -> str:
    root = images.split_folder(tmp_path / "x")
    for path in (root / "val").rglob("*.jpg"):
        path.unlink()
    return str(root)


BAD = {
    "labels 0,1,1000": (
        bad_labels,
        ["l.csv: labels are 0, 1, 1000", "2, 3, 4, 5, 6, 7, ... (998 values) have no image"],
    ),
    "a 7 among 0/1": (
        stray_label,
        ["l.csv: labels are 0, 1, 7", "1 image(s) labelled 7", "20.png); fix or remove them"],
    ),
    "too few to carve": (too_few_to_carve, ["class 1 has 1: a stratified split needs 2"]),
    "outside paths": (
        outside_paths,
        ["2 listed paths lie outside", "../elsewhere.png, /etc/passwd", "--allow-outside-paths"],
    ),
    "palette lost": (palette_without_palette, ["p.dcm: a PALETTE COLOR DICOM whose palette"]),
    "one class": (one_class_train, ["l.csv", "at least K=2"]),
    "empty folder": (empty_folder, ["empty: no class folders"]),
    "class without images": (class_without_images, ["ghost: class folder with no images"]),
    "unreadable image": (unreadable_image, ["bad.png: cannot read this image"]),
    "missing column": (missing_column, ["m.csv: columns are file, label", "needs `path`"]),
    "missing files": (missing_files, ["5 listed files do not exist: gone0.png, gone1.png"]),
    "empty val": (empty_val, ["the val split is empty"]),
}


def test_a_manifest_may_list_files_outside_its_folder_when_allowed(
    tmp_path: Path, images: Any
) -> None:
    source = outside_paths(tmp_path, images)
    source = source.replace("/etc/passwd,0", "")
    Path(source).write_text(Path(source).read_text().replace("/etc/passwd,0\n", ""))
    data = load_dataset(source, data_dir=tmp_path / "cache", size=16, allow_outside_paths=True)
    assert len(data.train) + len(data.val) + len(data.test) == 21


@pytest.mark.parametrize(("build", "fragments"), BAD.values(), ids=BAD.keys())
def test_bad_sources_are_one_line_usage_errors(
    tmp_path: Path, build: Callable[[Path, Any], str], fragments: list[str], images: Any
) -> None:
    source = build(tmp_path, images)
    with pytest.raises(UsageError) as err:
        load_dataset(source, data_dir=tmp_path / "cache", size=16)
    message = str(err.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message
    assert not list((tmp_path / "cache").rglob("*.npy")), "a cache was written"
