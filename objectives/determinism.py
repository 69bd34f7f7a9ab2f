"""Reproducible training: the same data, model, seed and recipe give the same weights.

On CPU, seeding before the model is built, with torch's deterministic algorithms on, makes a
teacher bit-identical from process to process on one machine with the same number of
threads (another thread count sums floats in another order, so the last bits may differ).
On CUDA, cuDNN's deterministic kernels are chosen too, but bit-identical weights also need
the same GPU model, driver, CUDA and cuDNN versions and `CUBLAS_WORKSPACE_CONFIG=:4096:8` in
the environment before the process starts. Where machines differ, a study shares its teacher
through its artifact store instead of each machine retraining it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def reproducible(seed: int) -> Iterator[None]:
    """Seed every generator and prefer deterministic algorithms while the block runs (build
    the model inside it: its initial weights come from the seeded generator)."""
    torch.manual_seed(seed)  # also every CUDA device's generator
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
    )
    # warn_only: an op without a deterministic kernel warns instead of failing the training
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.deterministic = previous[2]


def weights_fingerprint(model: nn.Module) -> str:
    """A short hash of a model's parameter and buffer names and exact values: equal only for
    bit-identical weights."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
