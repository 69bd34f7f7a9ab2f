"""One training loop for teachers and fine-tuning: batches from a `Split` (uint8 images
converted on the compute device), AdamW, warm-up and cosine schedule."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from medslim.errors import TrainingDiverged
from medslim.kinds import MULTI_LABEL, Task
from medslim.objectives.split import Split

PRECISIONS = ("auto", "fp32", "bf16")
"""auto: bf16 autocast on CUDA, plain fp32 elsewhere; fp32: never autocast; bf16: always."""


@dataclass(frozen=True)
class Recipe:
    """How to train: epochs, batch size, AdamW learning rate and weight decay, augmentation,
    label smoothing (cross-entropy tasks), linear warm-up epochs before the cosine decay,
    an exponential moving average of the weights (its decay per step; None: off), and the
    precision of the forward pass (one of `PRECISIONS`)."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    augment: bool = False
    precision: str = "auto"
    label_smoothing: float = 0.0
    warmup_epochs: int = 0
    ema_decay: float | None = None

    def __post_init__(self) -> None:
        check_precision(self.precision)


BatchLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""(logits, targets, inputs, index into the training split) → the batch's mean loss."""
EpochEnd = Callable[[int, nn.Module], None]
"""Called after each epoch with its number and the model (in eval mode)."""
AfterBackward = Callable[[nn.Module], None]
"""Called after each backward pass, before the optimiser step (e.g. to add a regulariser's
gradient)."""


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")


def autocast_for(
    device: torch.device, precision: str = "auto"
) -> contextlib.AbstractContextManager[object]:
    """bf16 autocast where `precision` asks for it, else a no-op. bf16 has fp32's exponent
    range, so gradients need no loss scaling; under "auto" the CPU runs exactly as in fp32."""
    check_precision(precision)
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def configure_cuda() -> None:
    """Keep cuDNN autotuning off: every pruned model brings new conv shapes, and tuning each
    cost 6.5–24 s per trial against 1.7 s without it."""
    torch.backends.cudnn.benchmark = False


def channels_last_for(x: torch.Tensor) -> bool:
    """Image batches on CUDA go channels-last, the layout cuDNN's tensor-core kernels read."""
    return x.is_cuda and x.dim() == 4


def in_layout(batch: torch.Tensor) -> torch.Tensor:
    """The batch channels-last where `channels_last_for` says so, else unchanged.

    Only batches are converted: a convolution follows its input's layout, so activations go
    channels-last while the model keeps its own (unstructured pruning `.view`s weight masks).
    """
    if channels_last_for(batch):
        return batch.contiguous(memory_format=torch.channels_last)
    return batch


def task_loss(
    logits: torch.Tensor, targets: torch.Tensor, task: Task, smoothing: float = 0.0
) -> torch.Tensor:
    """Per-sample loss: BCE-with-logits for multi-label, cross-entropy otherwise (as
    MedMNIST), with `smoothing` of the targets' probability spread over the classes."""
    if task == MULTI_LABEL:
        soft = targets * (1 - smoothing) + smoothing / 2 if smoothing else targets
        return F.binary_cross_entropy_with_logits(logits, soft, reduction="none").mean(1)
    return F.cross_entropy(logits, targets, reduction="none", label_smoothing=smoothing)


def soft_kl(
    student: torch.Tensor, teacher: torch.Tensor, task: Task, temperature: float
) -> torch.Tensor:
    """Mean KL(teacher ‖ student) of the temperature-softened outputs: softmax over classes,
    or one Bernoulli per label for multi-label tasks."""
    s, t = student / temperature, teacher / temperature
    if task == MULTI_LABEL:
        p = torch.sigmoid(t)
        log_q, log_1q = F.logsigmoid(s), F.logsigmoid(-s)
        log_p, log_1p = F.logsigmoid(t), F.logsigmoid(-t)
        return (p * (log_p - log_q) + (1 - p) * (log_1p - log_1q)).mean(1).mean()
    log_q, log_p = F.log_softmax(s, 1), F.log_softmax(t, 1)
    return (log_p.exp() * (log_p - log_q)).sum(1).mean()


def scores_from_logits(logits: torch.Tensor, task: Task) -> torch.Tensor:
    """Sigmoid for multi-label, softmax otherwise: the y_score the MedMNIST evaluator expects."""
    return torch.sigmoid(logits) if task == MULTI_LABEL else torch.softmax(logits, dim=1)


def augment_images(
    x: torch.Tensor,
    generator: torch.Generator,
    max_shift: float = 0.1,
    max_degrees: float = 10.0,
    max_zoom: float = 0.1,
) -> torch.Tensor:
    """One random affine per sample, in one resampling on x's device: translation up to
    `max_shift` of the image size, rotation up to `max_degrees`, zoom up to `max_zoom`.
    No flips: left and right carry meaning in medical images (OrganMNIST's kidney-left)."""
    n = x.shape[0]
    draws = torch.rand(n, 4, generator=generator) * 2 - 1
    angle = draws[:, 0] * math.radians(max_degrees)
    zoom = 1 + draws[:, 1] * max_zoom
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = torch.cos(angle) / zoom
    theta[:, 0, 1] = -torch.sin(angle) / zoom
    theta[:, 1, 0] = torch.sin(angle) / zoom
    theta[:, :, 2] = draws[:, 2:] * max_shift * 2
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False)


def train(
    model: nn.Module,
    data: Split,
    task: Task,
    recipe: Recipe,
    *,
    seed: int = 0,
    loss: BatchLoss | None = None,
    on_epoch: EpochEnd | None = None,
    after_backward: AfterBackward | None = None,
) -> nn.Module:
    """Train in place on `data`'s batches (on the model's device); raise on a diverging loss.

    `loss` replaces the task loss, so distillation can add a teacher's soft targets; when it
    is a module, its own parameters (feature adapters) are trained along with the model. Both
    run under `recipe.precision`; parameters and the loss stay fp32. `on_epoch` sees the
    model after every epoch (a teacher keeps its best checkpoint on val that way). With
    `recipe.ema_decay` the weights' moving average (batch-norm statistics included) is what
    `on_epoch` sees and what the model holds at the end.
    """
    if recipe.epochs <= 0:
        return model
    configure_cuda()
    generator = torch.Generator().manual_seed(seed)
    n = len(data)
    batch_size = min(recipe.batch_size, n)
    steps_per_epoch = max(1, n // batch_size)
    total_steps = recipe.epochs * steps_per_epoch
    warmup = recipe.warmup_epochs * steps_per_epoch
    extra = list(loss.parameters()) if isinstance(loss, nn.Module) else []
    optimizer = torch.optim.AdamW(
        [*model.parameters(), *extra], lr=recipe.lr, weight_decay=recipe.weight_decay
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, warmup, total_steps)
    )
    average = moving_average(model, recipe.ema_decay)
    for epoch in range(recipe.epochs):
        model.train()
        order = torch.randperm(n, generator=generator)
        for step in range(steps_per_epoch):
            index = order[step * batch_size : (step + 1) * batch_size]
            inputs = data.batch(index)
            if recipe.augment and inputs.dim() == 4:
                inputs = augment_images(inputs, generator)
            inputs = in_layout(inputs)
            targets = data.labels(index)
            with autocast_for(data.device, recipe.precision):
                logits = model(inputs).float()  # the loss in fp32: KD's soft targets need it
                if loss is None:
                    value = task_loss(logits, targets, task, recipe.label_smoothing).mean()
                else:
                    value = loss(logits, targets, inputs, index)
            if not torch.isfinite(value):
                raise TrainingDiverged(f"training loss became {value.item()}")
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            if after_backward is not None:
                after_backward(model)
            optimizer.step()
            schedule.step()
            if average is not None:
                average.update_parameters(model)
        model.eval()
        if on_epoch is not None:
            on_epoch(epoch, average.module.eval() if average is not None else model)
    if average is not None:
        model.load_state_dict(average.module.state_dict())
    return model


def moving_average(model: nn.Module, decay: float | None) -> AveragedModel | None:
    """An exponential moving average of `model`'s weights and buffers, or None."""
    if decay is None:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def warmup_cosine(step: int, warmup: int, total: int) -> float:
    """The learning-rate factor: linear from 1/warmup to 1, then cosine down to 0."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module,
    data: Split,
    batches: int = 8,
    batch_size: int = 128,
    *,
    precision: str = "auto",
) -> None:
    """Re-estimate batch-norm running statistics after pruning (no weights change), from
    activations computed in the `precision` that training and inference will use."""
    autocast = autocast_for(data.device, precision)  # a bad name fails before any change
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d)]
    if not norms or batches <= 0:
        return
    configure_cuda()
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    model.train()
    with autocast:
        for inputs in data.batches(batch_size, limit=batches * batch_size):
            model(in_layout(inputs))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    model.eval()


@torch.no_grad()
def predict_logits(
    model: nn.Module, data: Split, batch_size: int = 512, *, precision: str = "auto"
) -> torch.Tensor:
    """Eval-mode logits, always fp32 so that metrics see the same dtype in every precision."""
    configure_cuda()
    model.eval()
    with autocast_for(data.device, precision):
        logits = [model(in_layout(inputs)).float() for inputs in data.batches(batch_size)]
    return torch.cat(logits)


def predict_scores(model: nn.Module, data: Split, task: Task) -> np.ndarray:
    return scores_from_logits(predict_logits(model, data), task).float().cpu().numpy()
