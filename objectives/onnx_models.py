"""ONNX models: a PyTorch model exported to bytes, onnxruntime sessions over them, and a
module that runs one where PyTorch's model would run (prediction, the test split).

onnx and onnxruntime are the `medslim[onnx]` extra: imported on first use, and refused in
one line without them (`require_onnx`).
"""

from __future__ import annotations

import copy
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from medslim.errors import UsageError

if TYPE_CHECKING:
    import onnxruntime

ONNX_EXTRA = "pip install 'medslim[onnx]'"
INPUT = "input"


def require_onnx(what: str) -> None:
    """Refuse `what` in one line naming the extra when onnx or onnxruntime is missing."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as error:
        raise UsageError(f"{what} needs onnx and onnxruntime: {ONNX_EXTRA}") from error


def to_onnx(model: nn.Module, example: torch.Tensor) -> bytes:
    """A CPU copy of `model` in eval mode as ONNX, with a dynamic batch axis."""
    model = copy.deepcopy(model).cpu().eval()
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Path(folder) / "model.onnx"
        torch.onnx.export(
            model,
            (example[:1].cpu(),),
            str(path),
            input_names=[INPUT],
            output_names=["logits"],
            dynamic_axes={INPUT: {0: "batch"}, "logits": {0: "batch"}},
            dynamo=False,
        )
        return path.read_bytes()


def onnx_session(data: bytes, threads: int = 1) -> onnxruntime.InferenceSession:
    """An onnxruntime CPU session over `data`, on `threads` threads (one by default: pinned,
    so that measurements do not wait on each other)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])


class OnnxModule(nn.Module):
    """An ONNX model run by onnxruntime wherever a PyTorch model is expected (eval only):
    inputs go to the CPU as numpy, logits come back as a tensor on the inputs' device."""

    def __init__(self, data: bytes, *, precision: str = "fp32", threads: int = 1) -> None:
        super().__init__()
        self.data = data
        self.precision = precision
        self.session: Any = onnx_session(data, threads)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        array = inputs.detach().cpu().float().contiguous().numpy()
        (logits,) = self.session.run(None, {INPUT: array})[:1]
        return torch.from_numpy(logits).to(inputs.device)
