"""Volumes in every format, made here: one synthetic set written as a 3-D .npz, NIfTI files
(in class folders and through a CSV) and DICOM series with shuffled file names decodes to
the same arrays; slices follow their positions; windows, resampling, pictures, the 3-D
augmentation and the batch that fits, on known values; and every bad series in one line."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from medslim.errors import DataError, UsageError
from medslim.objectives import memory, preview, series, volumefiles
from medslim.objectives.data import load_dataset
from medslim.objectives.training import augment_volumes
from medslim.objectives.windows import DEFAULT_WINDOW, Window, parse_window

pytest.importorskip("pydicom")
pytest.importorskip("nibabel")

SPLITS = {"train": 6, "val": 4, "test": 4}
SHAPE = (8, 10, 12)
EXACT = ["--window", "0,255"]  # HU 0..255 map to 0..255 exactly


def _layout(volumes: Any) -> list[tuple[str, int, str, np.ndarray]]:
    """(split, label, name, values) in the order every source lists them."""
    rows = []
    for split, n in SPLITS.items():
        for label, name in enumerate(volumes.classes):
            for i in range(n // 2):
                index = len(rows)
                rows.append((split, label, f"{name}{i}", volumes.volume(label, index, SHAPE)))
    return rows


def _sources(root: Path, volumes: Any) -> dict[str, Path]:
    rows = _layout(volumes)
    arrays: dict[str, Any] = {}
    for split in SPLITS:
        chosen = [r for r in rows if r[0] == split]
        arrays[f"{split}_images"] = np.stack([r[3] for r in chosen]).astype(np.uint8)
        arrays[f"{split}_labels"] = np.array([[r[1]] for r in chosen], np.uint8)
    np.savez_compressed(root / "set.npz", **arrays)
    table = []
    for n, (split, label, name, values) in enumerate(rows):
        where = f"{split}/{volumes.classes[label]}/{name}"
        volumes.write_nifti(root / "nifti" / f"{where}.nii.gz", values, flipped=n % 2 == 1)
        volumes.write_series(root / "dicom" / where, values, slope=0.5 if n % 2 else 1.0, seed=n)
        table.append({"path": f"nifti/{where}.nii.gz", "label": label, "split": split})
    with (root / "list.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "split"])
        writer.writeheader()
        writer.writerows(table)
    return {
        "npz": root / "set.npz",
        "nifti folders": root / "nifti",
        "nifti csv": root / "list.csv",
        "dicom series": root / "dicom",
    }


def test_every_format_decodes_to_the_same_arrays(tmp_path: Path, volumes: Any) -> None:
    sources = _sources(tmp_path, volumes)
    loaded = {}
    for kind, path in sources.items():
        window = None if kind == "npz" else "0,255"
        size = None if kind == "npz" else SHAPE
        loaded[kind] = load_dataset(str(path), data_dir=tmp_path / "d", size=size, window=window)
    reference = loaded["npz"]
    assert reference.kind == "volume" and reference.input_shape == (1, *SHAPE)
    for kind, data in loaded.items():
        assert (data.kind, data.input_shape, data.task) == ("volume", (1, *SHAPE), "binary-class")
        for split in ("train", "val", "test"):
            ours, theirs = getattr(data, split), getattr(reference, split)
            assert ours.x.dtype == torch.uint8 and ours.x.shape[1:] == (*SHAPE, 1)
            assert torch.equal(ours.x, theirs.x), f"{kind} {split} differs from the .npz"
            assert torch.equal(ours.y, theirs.y)
        batch = data.train.batch(slice(0, 2))
        assert batch.shape == (2, 1, *SHAPE) and batch.dtype == torch.float32
    assert loaded["dicom series"].origin["window"] == "window 0 to 255 HU"


def test_slices_follow_their_positions_not_their_names(tmp_path: Path, volumes: Any) -> None:
    values = volumes.volume(1, 0, (5, 4, 4)) + np.arange(5).reshape(5, 1, 1) * 1000
    positions = [5.0, -2.5, 2.5, 7.5, 0.0]  # slice k lies at positions[k]: no file order
    folder = volumes.write_series(tmp_path / "s", values, positions=[p * 2 for p in positions])
    scan = series.read_series(folder)
    order = np.argsort(positions)
    assert np.allclose(scan.values, values[order])
    assert np.allclose(scan.directions[0], [0, 0, 1])  # the slice normal runs to the head


def test_rescale_slope_and_intercept_give_hounsfield_units(tmp_path: Path, volumes: Any) -> None:
    values = volumes.volume(0, 3, (3, 4, 4)).astype(np.float64) * 4 - 500
    scan = series.read_series(volumes.write_series(tmp_path / "s", values, slope=0.5))
    assert np.allclose(scan.values, values)  # stored pixels are (HU + 1024) * 2


def test_nifti_in_either_orientation_reads_the_same(tmp_path: Path, volumes: Any) -> None:
    values = volumes.volume(1, 5, (4, 5, 6))
    for flipped in (False, True):
        path = volumes.write_nifti(tmp_path / f"v{flipped}.nii", values, flipped=flipped)
        scan = volumefiles.read_nifti(path)
        assert np.array_equal(volumefiles.canonical(scan.values, scan.directions), values)


@pytest.mark.parametrize(
    ("text", "window"),
    [
        ("-160,240", Window(-160, 240)),
        ("abdomen", Window(-160, 240)),
        ("lung", Window(-1350, 150)),
        ("p1,p99", Window(1, 99, percentiles=True)),
        ("percentile", DEFAULT_WINDOW),
        (None, DEFAULT_WINDOW),
    ],
)
def test_windows_parse(text: str | None, window: Window) -> None:
    assert parse_window(text) == window


@pytest.mark.parametrize("text", ["abdomn", "240,-160", "p5,p500", "1,2,3", "-160"])
def test_a_window_that_does_not_parse_names_what_is_accepted(text: str) -> None:
    with pytest.raises(UsageError, match=rf"window '{text}' does not parse.*abdomen"):
        parse_window(text)


def test_windowing_on_known_values() -> None:
    values = np.array([-1000, -160, 40, 240, 1000], np.float32)
    assert np.allclose(volumefiles.windowed(values, Window(-160, 240)), [0, 0, 0.5, 1, 1])
    ramp = np.arange(101, dtype=np.float32)
    unit = volumefiles.windowed(ramp, Window(10, 90, percentiles=True))
    assert unit[10] == 0 and unit[90] == 1 and unit[50] == pytest.approx(0.5)
    assert not volumefiles.windowed(np.full(5, 7.0), DEFAULT_WINDOW).any()  # one value: 0


def test_resampling_on_known_values() -> None:
    cube = np.arange(64, dtype=np.float32).reshape(4, 4, 4)
    halved = volumefiles.resample(cube, (2, 2, 2))
    blocks = cube.reshape(2, 2, 2, 2, 2, 2).mean(axis=(1, 3, 5))
    assert np.allclose(halved, blocks)  # shrinking averages blocks: no aliasing
    ramp = np.broadcast_to(np.arange(4, dtype=np.float32), (4, 4, 4))
    grown = volumefiles.resample(np.ascontiguousarray(ramp), (2, 4, 8))
    assert grown.shape == (2, 4, 8) and np.all(np.diff(grown, axis=2) >= 0)
    assert np.allclose(volumefiles.resample(np.full((3, 5, 7), 0.25), (9, 2, 4)), 0.25)
    stored = np.full((4, 4, 4, 1), 200, np.uint8)
    assert np.array_equal(volumefiles.resize_uint8(stored, (2, 8, 3)), np.full((2, 8, 3, 1), 200))


def test_npz_volumes_are_resized_into_the_cache_as_a_cube_or_d_h_w(
    tmp_path: Path, volumes: Any
) -> None:
    path = _sources(tmp_path, volumes)["npz"]
    cube = load_dataset(str(path), data_dir=tmp_path / "d", size=9)
    assert cube.input_shape == (1, 9, 9, 9) and cube.origin["size"] == 9
    box = load_dataset(str(path), data_dir=tmp_path / "d", size=(8, 16, 10))
    assert box.input_shape == (1, 8, 16, 10) and box.origin["size"] == [8, 16, 10]
    assert len(list((tmp_path / "d" / "decoded").iterdir())) == 2


def _bad_series(root: Path, volumes: Any, problem: str) -> Path:
    values = volumes.volume(0, 0, (5, 4, 4))
    folder = root / "ct" / "normal" / "patient"
    if problem == "mixed":
        volumes.write_series(folder, values[:3], series_uid="1.2.3")
        other = volumes.write_series(root / "other", values[:2], series_uid="1.2.4", seed=1)
        for file in other.iterdir():
            file.rename(folder / f"x{file.name}")
    positions = {
        "duplicated": [0.0, 2.5, 2.5, 5.0, 7.5],
        "missing": [0.0, 2.5, 5.0, 12.5, 15.0],
        "uneven": [0.0, 2.5, 5.0, 8.5, 11.0],
    }
    if problem in positions:
        volumes.write_series(folder, values, positions=positions[problem])
    return folder


@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ("mixed", "mixes 2 DICOM series"),
        ("duplicated", "lie at the same position"),
        ("missing", "about 2 slice(s) missing"),
        ("uneven", "uneven slice spacing"),
    ],
)
def test_a_bad_series_is_refused_in_one_line(
    tmp_path: Path, volumes: Any, problem: str, message: str
) -> None:
    folder = _bad_series(tmp_path, volumes, problem)
    with pytest.raises(DataError) as caught:
        series.read_series(folder)
    assert str(folder) in str(caught.value) and message in str(caught.value)
    assert len(str(caught.value).splitlines()) == 1


def test_a_2d_image_among_volumes_is_named(tmp_path: Path, volumes: Any, images: Any) -> None:
    for label, name in enumerate(volumes.classes):
        for i in range(6):
            volumes.write_nifti(tmp_path / "ct" / name / f"{i}.nii", volumes.volume(label, i))
    images.write_png(tmp_path / "ct" / "normal" / "stray.png", 0, 0)
    with pytest.raises(DataError, match=r"stray.png: a 2-D image among volumes"):
        load_dataset(str(tmp_path / "ct"), data_dir=tmp_path / "d")
    two_d = tmp_path / "flat.nii"
    import nibabel

    nibabel.save(nibabel.Nifti1Image(np.zeros((5, 5), np.float32), np.eye(4)), two_d)
    with pytest.raises(DataError, match=r"flat.nii: a NIfTI of shape \(5, 5\) is not a volume"):
        volumefiles.read_nifti(two_d)


def test_volume_settings_that_do_not_apply_are_refused(tmp_path: Path, volumes: Any) -> None:
    path = _sources(tmp_path, volumes)["npz"]
    with pytest.raises(UsageError, match="--window applies to the raw intensities"):
        load_dataset(str(path), data_dir=tmp_path / "d", window="lung")
    with pytest.raises(UsageError, match="--channels 3 is for 2-D colour images"):
        load_dataset(str(path), data_dir=tmp_path / "d", channels=3)
    with pytest.raises(UsageError, match="--size 8,8 has 2 numbers"):
        load_dataset(str(path), size=(8, 8))  # type: ignore[arg-type]


def test_a_volume_is_pictured_as_three_orthogonal_middle_slices() -> None:
    volume = np.zeros((4, 6, 8, 1), np.uint8)
    volume[2] = 10  # the axial middle slice
    volume[:, 3] = 20  # the coronal one
    volume[:, :, 4] = 30  # the sagittal one
    axial, coronal, sagittal = preview.middle_slices(volume)
    assert (axial.shape, coronal.shape, sagittal.shape) == ((6, 8, 1), (4, 8, 1), (4, 6, 1))
    picture = preview.picture(volume)
    side, gap = 8, preview.GAP
    assert picture.shape == (side, 3 * side + 2 * gap, 1) and picture.dtype == np.uint8
    panels = [picture[:, k * (side + gap) : k * (side + gap) + side] for k in range(3)]
    assert panels[0][0, 0, 0] == 10 and panels[1][0, 0, 0] == 20 and panels[2][0, 0, 0] == 30
    assert not picture[:, side : side + gap].any()
    image = np.full((5, 7, 3), 9, np.uint8)
    assert np.array_equal(preview.picture(image), image)  # an image shows as it is


def test_3d_augmentation_is_seeded_small_and_never_flips() -> None:
    x = torch.zeros(8, 1, 12, 12, 12)
    x[..., :6] = 1.0  # bright on one side (the patient's right)
    first = augment_volumes(x, torch.Generator().manual_seed(0))
    again = augment_volumes(x, torch.Generator().manual_seed(0))
    assert first.shape == x.shape and torch.equal(first, again)
    assert not torch.equal(first, x)
    left, right = first[..., :6].mean(dim=(1, 2, 3, 4)), first[..., 6:].mean(dim=(1, 2, 3, 4))
    assert torch.all(left > right)
    still = augment_volumes(x, torch.Generator(), max_shift=0, max_degrees=0, max_zoom=0)
    assert torch.allclose(still, x, atol=1e-6)


def test_the_batch_that_fits() -> None:
    assert memory.fitting_batch(10, 128, 2000) == 128
    assert memory.fitting_batch(10, 128, 1000) == 64
    assert memory.fitting_batch(10, 100, 500) == 32
    assert memory.fitting_batch(10, 128, 5) == 0
    model = torch.nn.Sequential(torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.ReLU())
    per_sample = memory.activation_bytes(model, (1, 4, 4, 4))
    assert per_sample == (4 * 64 * 2 + 64) * 4 * 2  # two outputs and the input, with grads
