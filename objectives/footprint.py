"""What a study at a given image size needs, estimated before anything is decoded or
trained, so that a size too large for this machine is refused in one line (with the
estimate and the largest size that fits) instead of meeting the out-of-memory killer after
minutes of decoding.

Decoded images go to a memory-mapped cache file (`decoded`): their bytes are checked
against that folder's free disk space, not against memory. Memory goes to the model: a
training step keeps every layer's output for the backward pass, and their gradients (twice
the sum of its leaf modules' outputs, measured: resnet8 and resnet18 at 64-128 px, batch
16-64, peak resident memory 1.9-2.3x that sum), plus weights, gradients and AdamW's two
moments (4x the weights); prediction (no gradients, batches of `PREDICT_BATCH`) keeps about
two layers' outputs at a time. The outputs are measured by running the model once on
`meta` tensors at the study's size, which gives shapes without allocating them.

The choice is to refuse rather than shrink the batch on one's own: the batch size is part of
what a study computes (and of its name), so the user picks the smaller size or batch.
"""

from __future__ import annotations

import copy
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from medslim.errors import UsageError
from medslim.spaces.blueprints import Blueprint

FLOAT = 4
"""Bytes per activation and weight (fp32; bf16 autocast on a GPU only lowers the need)."""
PREDICT_BATCH = 512
"""The batch of `training.predict_logits` (validation scores, teacher logits)."""
HEADROOM = 0.8
"""Share of the available memory a study may plan to use (Python, torch and the data's
pages need the rest)."""
SIZE_STEP = 16


@dataclass(frozen=True)
class Need:
    """Bytes one training step and one prediction batch take at one input shape."""

    train_step: int
    predict: int

    @property
    def peak(self) -> int:
        return max(self.train_step, self.predict)


def model_need(model: nn.Module, input_shape: tuple[int, ...], batch: int, images: int) -> Need:
    """What `model` needs for one training step at `batch` (at most `images`) and for one
    prediction batch, from one pass on `meta` tensors (shapes, no memory)."""
    sizes = leaf_outputs(model, input_shape)
    weights = sum(p.numel() for p in model.parameters()) * FLOAT
    per_sample = 2 * sum(sizes) * FLOAT
    train = min(batch, images)
    predict = min(PREDICT_BATCH, images)
    largest = max(sizes, default=0)
    sample = math.prod(input_shape)
    return Need(
        train_step=train * per_sample + 4 * weights,
        predict=predict * (2 * largest + sample) * FLOAT + weights,
    )


def leaf_outputs(model: nn.Module, input_shape: tuple[int, ...]) -> list[int]:
    """Elements each leaf module outputs for one sample, from a pass on `meta` tensors."""
    meta = copy.deepcopy(model).to("meta")
    sizes: list[int] = []

    def record(module: nn.Module, inputs: object, output: object) -> None:
        if isinstance(output, torch.Tensor):
            sizes.append(output.numel())

    leaves = [m for m in meta.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(record) for m in leaves]
    try:
        with torch.no_grad():
            meta.train()(torch.empty((1, *input_shape), device="meta"))
    finally:
        for hook in hooks:
            hook.remove()
    return sizes


def available_memory(device: torch.device) -> int | None:
    """Bytes free for this process: a GPU's free memory, else the machine's available
    memory capped by the process's cgroup limit (None where neither can be read)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            found.append(int(limit) - used)
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def check_fits(
    blueprint: Blueprint,
    images: int,
    batch: int,
    device: torch.device,
    decoded_to: Path | None = None,
    name: str | None = None,
    available: int | None = None,
) -> None:
    """Refuse, in one line, a study whose images or model (`name`, as the user called it)
    at `blueprint.input_shape` will not fit: the decoded images (to `decoded_to`'s disk,
    when they must be decoded) or one training step or prediction batch (in `device`'s
    `available` memory, by default what `available_memory` finds)."""
    name = name or blueprint.model
    size = _size_text(blueprint.input_shape)
    if decoded_to is not None:
        decoded = images * math.prod(blueprint.input_shape)
        free = _free_disk(decoded_to)
        if free is not None and decoded > free:
            raise UsageError(
                f"--size {size}: {images} images decode to {_gb(decoded)} in {decoded_to}, "
                f"which has {_gb(free)} free; use a smaller --size or another --data-dir"
            )
    if available is None:
        available = available_memory(device)
    need = _need(blueprint, batch, images) if available is not None else None
    if available is None or need is None:  # unknown memory, or a model meta tensors cannot run
        return
    budget = HEADROOM * available
    if need.peak <= budget:
        return
    largest = _largest_fitting(blueprint, batch, images, budget)
    training = need.train_step >= need.predict
    what = (
        f"one training step of {name} on {min(batch, images)} images"
        if training
        else f"predicting {min(PREDICT_BATCH, images)} images at a time with {name}"
    )
    fits = f"--size {largest} or less fits" if largest else "no --size of 16 px or more fits"
    smaller = _largest_batch(blueprint, batch, images, budget) if training else None
    if smaller:
        fits += f", or --batch-size {smaller} at this size"
    raise UsageError(
        f"--size {size}: {what} needs about {_gb(need.peak)}, but {_gb(available)} is "
        f"available ({device.type}); {fits} (refused before decoding, rather than the batch "
        "shrunk behind your back)"
    )


def _size_text(input_shape: tuple[int, ...]) -> str:
    """The spatial size as `--size` takes it: one number for a square or cube."""
    spatial = input_shape[1:]
    return str(spatial[0]) if len(set(spatial)) == 1 else ",".join(map(str, spatial))


def _need(blueprint: Blueprint, batch: int, images: int) -> Need | None:
    try:
        return model_need(blueprint.build(), blueprint.input_shape, batch, images)
    except (RuntimeError, NotImplementedError, TypeError, ValueError):  # an op without meta
        return None


def _largest_fitting(blueprint: Blueprint, batch: int, images: int, budget: float) -> int | None:
    """The largest size (a multiple of `SIZE_STEP`) below the blueprint's whose need fits,
    each size built as a study at that size would build it. Bisected, as the need grows
    with the size (a model whose stem keeps more resolution below some size may fit
    slightly smaller sizes than said)."""
    channels, *spatial = blueprint.input_shape
    low, high = 0, max(spatial) // SIZE_STEP
    while low < high:  # the need grows with the size: bisect
        middle = (low + high + 1) // 2
        side = middle * SIZE_STEP
        shape = (channels, *(side,) * len(spatial))
        need = _need(replace(blueprint, input_shape=shape), batch, images)
        if need is not None and need.peak <= budget:
            low = middle
        else:
            high = middle - 1
    return low * SIZE_STEP or None


def _largest_batch(blueprint: Blueprint, batch: int, images: int, budget: float) -> int | None:
    """The largest training batch (below `batch`) whose step and prediction fit."""

    def fits(size: int) -> bool:
        need = _need(blueprint, size, images)
        return need is not None and max(need.train_step, need.predict) <= budget

    return largest_power_of_two_below(min(batch, images), fits) or None


def largest_power_of_two_below(limit: int, fits: Callable[[int], bool]) -> int:
    """The largest power of two under `limit` for which `fits` holds (0: not even 1), the
    batch sizes both memory checks offer in place of one that does not fit."""
    size = 1 << max(0, (limit - 1).bit_length() - 1)
    while size >= 1 and (size >= limit or not fits(size)):
        size //= 2
    return size


def _free_disk(folder: Path) -> int | None:
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            return shutil.disk_usage(candidate).free
    return None


def _gb(count: float) -> str:
    return f"{count / 1e9:.1f} GB" if count >= 1e8 else f"{count / 1e6:.0f} MB"
