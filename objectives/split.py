"""One split's samples as stored, and the one way to turn them into model inputs.

Images stay uint8 (N×H×W×C, as decoded; volumes N×D×H×W×C; possibly memory-mapped) until a
batch is taken: `Split.batch` gathers the rows, moves them to the compute device and only
there converts them to normalised float32 N×C×H×W (N×C×D×H×W; channels-last on CUDA).
Tabular features, or any float tensor a caller already prepared, are model inputs as they
are. Everything that feeds a model (training, prediction, batch-norm recalibration, teacher
logits, export checks) goes through `batch`/`batches`, so no caller cares how the data is
stored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch

_STD_FLOOR = 1e-6
_STATS_ROWS = 1024  # images per chunk when counting pixel values (bounded memory)
_LAYOUTS = {4: torch.channels_last, 5: torch.channels_last_3d}
"""The channels-last layout of a batch of images (rank 4) or volumes (rank 5)."""
DEVICE_SHARE = 0.25
"""Images move to a GPU whole when their uint8 bytes fit in this share of its memory;
larger ones stay on the host and each batch is copied through pinned memory."""


@dataclass(frozen=True)
class PixelScale:
    """Per-channel mean and standard deviation of the training pixels, on the 0–255 scale."""

    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def of(cls, images: np.ndarray) -> PixelScale:
        """Exact statistics of uint8 N×…×C images (or volumes) from value counts, read in chunks (a
        memory-mapped array is never loaded whole, and no float copy is made)."""
        channels = images.shape[-1]
        counts = np.zeros((channels, 256), np.int64)
        for start in range(0, len(images), _STATS_ROWS):
            chunk = np.asarray(images[start : start + _STATS_ROWS]).reshape(-1, channels)
            for c in range(channels):
                counts[c] += np.bincount(chunk[:, c], minlength=256)
        levels = np.arange(256) / 255.0
        weights = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        mean = weights @ levels
        std = np.maximum(np.sqrt(np.maximum(weights @ levels**2 - mean**2, 0.0)), _STD_FLOOR)
        return cls(torch.from_numpy(mean * 255).float(), torch.from_numpy(std * 255).float())

    def to(self, device: torch.device) -> PixelScale:
        if self.mean.device == device:
            return self
        return PixelScale(self.mean.to(device), self.std.to(device))


@dataclass(frozen=True)
class Split:
    """x: uint8 N×H×W×C images or N×D×H×W×C volumes with their `scale`, or float model
    inputs (N×F, N×C×H×W) when `scale` is None; y: int64 (N,) or float (N, L) labels on the
    compute device. `on_device` is x copied to a GPU when it fits there (see `to`)."""

    x: torch.Tensor
    y: torch.Tensor
    scale: PixelScale | None = None
    on_device: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.y)

    @property
    def device(self) -> torch.device:
        """Where batches are computed (labels live there too)."""
        return self.y.device

    @property
    def is_images(self) -> bool:
        return self.scale is not None

    def batch(self, index: torch.Tensor | slice) -> torch.Tensor:
        """Model inputs for `index` (rows, or a slice), float32 on the compute device."""
        if self.on_device is not None:
            raw = self.on_device[_on(index, self.on_device.device)]
        else:
            raw = _gather(self.x, index, self.device)
        if self.scale is None:
            return raw
        rank = raw.dim()
        layout = _LAYOUTS[rank] if raw.is_cuda else torch.contiguous_format
        channels_first = (0, rank - 1, *range(1, rank - 1))
        inputs = raw.permute(*channels_first).to(torch.float32, memory_format=layout)
        shape = (1, -1) + (1,) * (rank - 2)
        return inputs.sub_(self.scale.mean.view(shape)).div_(self.scale.std.view(shape))

    def batches(self, batch_size: int, limit: int | None = None) -> Iterator[torch.Tensor]:
        """Model inputs in order, `batch_size` at a time, the first `limit` samples only."""
        end = len(self) if limit is None else min(limit, len(self))
        for start in range(0, end, batch_size):
            yield self.batch(slice(start, min(start + batch_size, end)))

    def labels(self, index: torch.Tensor | slice) -> torch.Tensor:
        return self.y[_on(index, self.y.device)]

    def take(self, rows: torch.Tensor) -> Split:
        """A new split of these rows (copied: folds of cross-validation)."""
        rows = rows.cpu()
        return Split(self.x[rows], self.y[rows.to(self.y.device)], self.scale).to(self.device)

    def to(self, device: torch.device) -> Split:
        """Batches computed on `device`: labels and scale move; images move whole when they
        fit in `DEVICE_SHARE` of a GPU's memory, else stay (batches go via pinned memory)."""
        scale = self.scale.to(device) if self.scale is not None else None
        on_device = None
        if device.type != "cpu" and (self.scale is None or _fits(self.x, device)):
            on_device = self.x.to(device)
        return replace(self, y=self.y.to(device), scale=scale, on_device=on_device)

    def fingerprint(self, digest: hashlib._Hash) -> None:
        """Feed the stored samples and labels to `digest`, without copying the images."""
        for tensor in (self.x, self.y.cpu()):
            array = tensor.detach().contiguous().numpy()
            flat = array.reshape(-1).view(np.uint8)
            for start in range(0, flat.size, 1 << 26):
                digest.update(flat[start : start + (1 << 26)].data)


def _on(index: torch.Tensor | slice, device: torch.device) -> torch.Tensor | slice:
    return index.to(device) if isinstance(index, torch.Tensor) else index


def _gather(x: torch.Tensor, index: torch.Tensor | slice, device: torch.device) -> torch.Tensor:
    """Rows of a host tensor on `device`; to a GPU through a pinned buffer, copied without
    blocking (the caching host allocator keeps the buffer until the copy has finished)."""
    if device.type == "cpu":
        return x[index]
    if isinstance(index, slice):
        index = torch.arange(len(x))[index]
    staging = torch.empty((len(index), *x.shape[1:]), dtype=x.dtype, pin_memory=True)
    torch.index_select(x, 0, index.cpu(), out=staging)
    return staging.to(device, non_blocking=True)


def _fits(x: torch.Tensor, device: torch.device) -> bool:
    if device.type != "cuda":
        return True
    total = torch.cuda.get_device_properties(device).total_memory
    return x.numel() * x.element_size() <= DEVICE_SHARE * total
