"""Corrupted test images: seeded, severity 0 is the clean split, colour corruptions skip grey
images with the reason, and MedMNIST-C's set is used where it fits."""

from __future__ import annotations

import numpy as np
import pytest

from medslim.errors import UsageError
from medslim.objectives.corruptions import (
    GENERIC,
    choose_set,
    corrupt,
    corrupted_sets,
    generic_set,
    medmnistc_available,
)


def _images(channels: int, n: int = 12) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(20, 230, size=(n, 16, 16, channels), dtype=np.uint8)


@pytest.mark.parametrize("channels", [1, 3])
def test_every_generic_corruption_is_seeded_and_severity_zero_is_the_clean_split(
    channels: int,
) -> None:
    images = _images(channels)
    for corruption in generic_set().corruptions:
        if corruption.colour_only and channels == 1:
            continue
        assert (corrupt(images, corruption, 0, seed=5) == images).all()
        first = corrupt(images, corruption, 3, seed=5)
        assert first.shape == images.shape and first.dtype == np.uint8
        assert (first == corrupt(images, corruption, 3, seed=5)).all(), corruption.name
        assert (first != images).any(), f"{corruption.name} changed nothing"


def test_random_corruptions_differ_by_seed_and_leave_the_global_generators_alone() -> None:
    images = _images(1)
    noise = next(c for c in generic_set().corruptions if c.name == "gaussian_noise")
    np.random.seed(11)
    expected = np.random.random()
    np.random.seed(11)
    a = corrupt(images, noise, 2, seed=0)
    assert np.random.random() == expected  # the global state is as it was
    assert (a != corrupt(images, noise, 2, seed=1)).any()


def test_a_colour_corruption_on_grey_images_is_skipped_with_the_reason() -> None:
    results = list(corrupted_sets(_images(1, 4), generic_set(), (1, 2), seed=0))
    skipped = [r for r in results if r.images is None]
    assert {r.corruption for r in skipped} == {"saturate"} and len(skipped) == 2
    assert all("colour corruption" in str(r.skipped) for r in skipped)
    assert all(r.images is not None for r in results if r.corruption != "saturate")


def test_the_set_follows_the_data_and_a_bad_name_is_refused() -> None:
    assert (
        choose_set("labels").name == GENERIC
        and "not a MedMNIST dataset" in choose_set("labels").note
    )
    assert choose_set("breastmnist", "generic").name == GENERIC
    with pytest.raises(UsageError, match="is not a corruption set"):
        choose_set("breastmnist", "ultrasound")
    chosen = choose_set("breastmnist")
    if medmnistc_available():
        assert chosen.name == "medmnistc:breastmnist" and "medmnistc" in chosen.source
    else:
        assert chosen.name == GENERIC and "pip install 'medslim[robustness]'" in chosen.note


def test_medmnistc_corruptions_are_seeded_too() -> None:
    pytest.importorskip("medmnistc.corruptions.registry", reason="pip install medmnistc")
    chosen = choose_set("pneumoniamnist")
    images = _images(1, 6)
    names = [c.name for c in chosen.corruptions]
    assert {"gaussian_noise", "impulse_noise", "pixelate"} <= set(names)
    for corruption in chosen.corruptions:
        if corruption.name in ("gaussian_noise", "impulse_noise", "speckle_noise"):
            first = corrupt(images, corruption, 4, seed=2)
            assert (first == corrupt(images, corruption, 4, seed=2)).all(), corruption.name
            assert (corrupt(images, corruption, 0, seed=2) == images).all()
