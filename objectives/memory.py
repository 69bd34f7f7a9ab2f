"""Will a training batch fit? The activation memory of one sample, measured by running the
model once, against a fixed share of the device's memory.

A 64³ volume through the 3-D ResNet-18 preset keeps about 268 MiB of activations and
gradients, six times a 224-px image through the 2-D one (44 MiB), so a batch size that suits
2-D images can exhaust a GPU (or a CPU's RAM) with volumes. The
estimate counts every leaf module's float32 output twice (the activation autograd keeps
and its gradient); the budget is a share of the device's total memory, not of what is free
at the moment, so the same machine always reaches the same batch size and a resumed study
keeps its config.
"""

from __future__ import annotations

import math
import os

import torch
from torch import nn

from medslim.objectives.footprint import largest_power_of_two_below, leaf_outputs

ACTIVATION_SHARE = 0.5
"""Share of the device's memory a training batch's activations may take."""
_FLOAT_BYTES = 4
_KEPT_PER_OUTPUT = 2


def activation_bytes(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Bytes one sample's training step keeps: its input and every leaf module's output
    (measured on `meta` tensors, as `footprint` does), as float32, with their gradients."""
    outputs = sum(leaf_outputs(model, input_shape)) + math.prod(input_shape)
    return outputs * _FLOAT_BYTES * _KEPT_PER_OUTPUT


def memory_budget(device: torch.device) -> int:
    """`ACTIVATION_SHARE` of the GPU's memory, or of the machine's RAM for the CPU."""
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
    else:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return int(total * ACTIVATION_SHARE)


def fitting_batch(per_sample: int, wanted: int, budget: int) -> int:
    """`wanted` when it fits, else the largest power of two below it that does (0: not
    even one sample)."""
    if per_sample * wanted <= budget:
        return wanted
    return largest_power_of_two_below(wanted, lambda batch: per_sample * batch <= budget)


def gib(count: int) -> str:
    return f"{count / 2**30:.1f} GiB"
