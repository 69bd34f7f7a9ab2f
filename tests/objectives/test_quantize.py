"""INT8 quantization with onnxruntime: smaller files whose outputs stay close to fp32,
seeded calibration (identical files), layers without INT8 kernels named, and a model that
cannot be quantized kept fp32."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from medslim.objectives.onnx_latency import side_by_side, summarize
from medslim.objectives.onnx_models import OnnxModule, onnx_session, to_onnx
from medslim.objectives.quantize import QuantSettings, calibration_inputs, quantize
from medslim.objectives.split import PixelScale, Split

pytest.importorskip("onnxruntime")


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1, stride=2),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, 2),
    ).eval()


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(30, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 2)
    ).eval()


CASES = {
    "cnn static": (_cnn, (1, 16, 16), "static"),
    "mlp static": (_mlp, (30,), "static"),
    "mlp dynamic": (_mlp, (30,), "dynamic"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_int8_file_is_smaller_and_close_to_fp32(case: str) -> None:
    build, shape, mode = CASES[case]
    model = build()
    x = torch.randn(64, *shape, generator=torch.Generator().manual_seed(1))
    fp32 = to_onnx(model, x)
    quantized = quantize(fp32, x[:32].numpy(), QuantSettings(mode=mode))
    assert quantized.precision == "int8" and quantized.failed is None
    assert len(quantized.data) < len(fp32) / 2.5
    with torch.no_grad():
        expected = model(x)
    actual = OnnxModule(quantized.data)(x)
    scale = float(expected.abs().max())
    error = (actual - expected).abs()
    assert float(error.mean()) < 0.03 * scale and float(error.max()) < 0.2 * scale
    assert (actual.argmax(1) == expected.argmax(1)).float().mean() > 0.9


def test_calibration_is_seeded_so_two_runs_give_identical_files() -> None:
    model = _cnn()
    images = torch.randint(0, 256, (40, 16, 16, 1), dtype=torch.uint8)
    scale = PixelScale.of(images.numpy())
    split = Split(images, torch.zeros(40, dtype=torch.long), scale)
    fp32 = to_onnx(model, split.batch(slice(0, 1)))
    settings = QuantSettings(calibration=8, seed=3)
    first = quantize(fp32, calibration_inputs(split, 8, 3), settings)
    again = quantize(fp32, calibration_inputs(split, 8, 3), settings)
    other = quantize(fp32, calibration_inputs(split, 8, 4), settings)
    assert first.data == again.data
    assert first.data != other.data  # another sample calibrates other ranges
    assert np.array_equal(calibration_inputs(split, 8, 3), calibration_inputs(split, 8, 3))


class _Einsum(nn.Module):
    """A layer onnxruntime has no INT8 kernel for (Einsum with a weight)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.weight = nn.Parameter(torch.randn(4, 6))
        self.head = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = torch.relu(self.conv(x)).mean((2, 3))
        return self.head(torch.einsum("bc,cd->bd", features, self.weight))


def test_layers_without_int8_kernels_stay_fp32_and_are_named() -> None:
    model = _Einsum().eval()
    x = torch.randn(16, 1, 8, 8)
    quantized = quantize(to_onnx(model, x), x.numpy(), QuantSettings())
    assert quantized.precision == "int8"
    assert [op.split()[0] for op in quantized.fp32_ops] == ["Einsum"]


def test_a_model_onnxruntime_cannot_quantize_stays_fp32_with_the_reason() -> None:
    quantized = quantize(b"not an onnx model", np.zeros((1, 3), np.float32), QuantSettings())
    assert quantized.precision == "fp32" and quantized.data == b"not an onnx model"
    assert quantized.failed


def test_latency_keeps_the_median_of_the_runs_within_tukeys_fences() -> None:
    timing = summarize([1.0] * 20 + [1.2] * 9 + [40.0])
    assert timing.rejected == 1 and timing.median_ms == 1.0 and timing.rankable
    noisy = summarize([1.0, 2.0, 3.0, 4.0] * 5)
    assert not noisy.rankable and noisy.spread > 0.25
    model = _mlp()
    sessions = [onnx_session(to_onnx(model, torch.zeros(1, 30))) for _ in range(2)]
    timings = side_by_side(sessions, (30,), batch_size=4, rounds=12, warmup=2)
    assert len(timings) == 2 and all(t.kept + t.rejected == 12 for t in timings)
