"""`Split`: uint8 images become normalised float batches only when taken."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from medslim.objectives.split import PixelScale, Split


def images(n: int = 10, channels: int = 3) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, 5, 4, channels), dtype=np.uint8)


def test_pixel_scale_is_the_exact_mean_and_std_of_the_training_pixels() -> None:
    pixels = images(2000)  # two chunks of counting
    scale = PixelScale.of(pixels)
    expected = pixels.reshape(-1, 3).astype(np.float64)
    assert np.allclose(scale.mean.numpy(), expected.mean(0), rtol=1e-6)
    assert np.allclose(scale.std.numpy(), expected.std(0), rtol=1e-6)


def test_batches_are_normalised_channels_first_and_in_order() -> None:
    pixels = images()
    split = Split(torch.from_numpy(pixels), torch.arange(10), PixelScale.of(pixels))
    whole = torch.cat(list(split.batches(4)))
    assert whole.shape == (10, 3, 5, 4) and whole.dtype == torch.float32
    assert torch.allclose(whole.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    rows = torch.tensor([7, 2])
    assert torch.equal(split.batch(rows), whole[rows])
    assert torch.equal(split.labels(rows), rows)
    assert len(list(split.batches(4, limit=6))) == 2
    assert split.x.dtype == torch.uint8  # nothing was converted in place


def test_take_copies_rows_and_keeps_the_scale() -> None:
    pixels = images()
    split = Split(torch.from_numpy(pixels), torch.arange(10), PixelScale.of(pixels))
    part = split.take(torch.tensor([1, 3]))
    assert torch.equal(part.batch(slice(None)), split.batch(torch.tensor([1, 3])))
    assert part.scale is split.scale


def test_fingerprint_is_the_hash_of_the_stored_bytes() -> None:
    pixels = images()
    split = Split(torch.from_numpy(pixels), torch.arange(10), PixelScale.of(pixels))
    digest = hashlib.sha256()
    split.fingerprint(digest)
    expected = hashlib.sha256(pixels.tobytes() + np.arange(10).tobytes())
    assert digest.hexdigest() == expected.hexdigest()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda_batches_are_channels_last_and_match_the_cpu() -> None:
    pixels = images(64)
    split = Split(torch.from_numpy(pixels), torch.arange(64), PixelScale.of(pixels))
    gpu = split.to(torch.device("cuda"))
    rows = torch.arange(0, 64, 3)
    batch = gpu.batch(rows)
    assert batch.is_cuda and batch.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(batch.cpu(), split.batch(rows))
