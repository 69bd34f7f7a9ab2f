from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
import torch
from torch import nn

from medslim.objectives import training
from medslim.objectives.split import Split
from medslim.objectives.training import (
    Recipe,
    predict_logits,
    recalibrate_batchnorm,
    task_loss,
    train,
)

RECIPE = Recipe(epochs=8, batch_size=32, lr=1e-2)
TASK = "binary-class"
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _images(n: int = 128) -> Split:
    """Two separable classes of 3×8×8 images: bright top half or bright bottom half."""
    generator = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (n,), generator=generator)
    x = torch.randn(n, 3, 8, 8, generator=generator) * 0.5
    x[y == 1, :, :4] += 1.0
    x[y == 0, :, 4:] += 1.0
    return Split(x, y)


def _net() -> nn.Sequential:
    """No conv bias before batch norm: its gradient is ~0, and Adam would blow up its noise."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 8 * 8, 2),
    )


def _trained(recipe: Recipe) -> nn.Module:
    return train(_net(), _images(), TASK, recipe, seed=1)


def _conv_outputs(model: nn.Sequential) -> list[torch.Tensor]:
    """The first convolution's outputs, collected as the model runs."""
    outputs: list[torch.Tensor] = []
    model[0].register_forward_hook(lambda module, inputs, output: outputs.append(output))
    return outputs


def test_bf16_training_on_the_cpu_learns_and_keeps_fp32_parameters() -> None:
    data = _images()
    x, y = data.x, data.y
    model = _net()
    before = task_loss(model(x), y, TASK).mean().item()
    outputs = _conv_outputs(model)
    train(model, data, TASK, replace(RECIPE, precision="bf16"), seed=1)
    assert outputs and all(out.dtype == torch.bfloat16 for out in outputs)  # autocast was on
    assert all(p.dtype == torch.float32 for p in model.parameters())
    logits = predict_logits(model, data, precision="fp32")
    assert task_loss(logits, y, TASK).mean().item() < 0.2 * before
    assert (logits.argmax(1) == y).float().mean().item() > 0.95


def test_bf16_logits_are_fp32_and_close_to_the_fp32_logits() -> None:
    x = _images()
    model = _trained(RECIPE)
    exact = predict_logits(model, x, precision="fp32")
    rounded = predict_logits(model, x, precision="bf16")
    assert rounded.dtype == torch.float32
    assert not torch.equal(rounded, exact)  # bf16 really ran
    # bf16 keeps 8 significant bits (~0.4%); a few roundings in a row stay within 3%.
    assert (rounded - exact).abs().max() <= 0.03 * exact.abs().max()


def test_bf16_batchnorm_statistics_are_close_to_the_fp32_ones() -> None:
    x = _images()
    exact, rounded = _net(), _net()
    recalibrate_batchnorm(exact, x, batches=4, batch_size=32, precision="fp32")
    recalibrate_batchnorm(rounded, x, batches=4, batch_size=32, precision="bf16")
    for name in ("running_mean", "running_var"):
        a, b = getattr(exact[1], name), getattr(rounded[1], name)
        assert b.dtype == torch.float32
        assert torch.allclose(a, b, rtol=0.03, atol=0.01)


def test_auto_on_the_cpu_trains_exactly_as_fp32() -> None:
    fp32 = _trained(replace(RECIPE, precision="fp32"))
    auto = _trained(RECIPE)
    assert RECIPE.precision == "auto"
    for a, b in zip(fp32.state_dict().values(), auto.state_dict().values(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "use",
    [
        lambda: Recipe(precision="fp16"),
        lambda: predict_logits(
            nn.Linear(2, 2), Split(torch.zeros(1, 2), torch.zeros(1)), precision="fp16"
        ),
        lambda: recalibrate_batchnorm(_net(), _images(), precision="fp16"),
    ],
)
def test_an_unknown_precision_is_refused_naming_the_valid_ones(use: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match="unknown precision 'fp16'; use one of auto, fp32, bf16"):
        use()


def test_channels_last_batches_train_like_contiguous_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    x = _images()
    assert not x.x.is_contiguous(memory_format=torch.channels_last)
    plain = _trained(RECIPE)
    monkeypatch.setattr(training, "channels_last_for", lambda batch: batch.dim() == 4)
    model = _net()
    outputs = _conv_outputs(model)
    train(model, x, TASK, RECIPE, seed=1)
    logits = predict_logits(model, x)
    assert outputs and all(o.is_contiguous(memory_format=torch.channels_last) for o in outputs)
    assert all(p.is_contiguous() for p in model.parameters())  # the model keeps its layout
    torch.testing.assert_close(logits, predict_logits(plain, x), rtol=1e-4, atol=1e-4)


def test_training_turns_cudnn_autotuning_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    train(_net(), _images(32), TASK, replace(RECIPE, epochs=1), seed=1)
    assert torch.backends.cudnn.benchmark is False


@needs_cuda
def test_auto_on_cuda_trains_in_bf16_channels_last(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    x = _images().to(torch.device("cuda"))
    y = x.y
    model = _net().cuda()
    outputs = _conv_outputs(model)
    train(model, x, TASK, RECIPE, seed=1)  # a non-finite loss would raise
    assert all(o.dtype == torch.bfloat16 for o in outputs)
    assert all(o.is_contiguous(memory_format=torch.channels_last) for o in outputs)
    assert all(p.dtype == torch.float32 and p.is_contiguous() for p in model.parameters())
    assert torch.backends.cudnn.benchmark is False
    logits = predict_logits(model, x)
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()
    assert (logits.argmax(1) == y).float().mean().item() > 0.95
