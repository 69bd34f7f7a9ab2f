"""INT8: the exported model statically quantized by onnxruntime (QDQ, calibrated on a seeded
sample of the training split; `objectives.quantize`), or dynamically for MLPs."""

from __future__ import annotations

from typing import Any

from medslim.search.methods.precision import PRECISIONS, Calibration, Converted, Precision


class Int8(Precision):
    name = "int8"
    summary = "weights and activations in 8-bit integers (onnxruntime's quantization)"
    marker = "-open"

    def convert(self, fp32: bytes, calibration: Calibration) -> Converted:
        from medslim.objectives.quantize import quantize

        quantized = quantize(fp32, calibration.inputs, calibration.settings)
        record: dict[str, Any] = {"reduce_range": quantized.reduce_range}
        if quantized.fp32_ops:
            record["fp32_ops"] = ", ".join(quantized.fp32_ops)
        if quantized.failed:
            record["quantize_failed"] = quantized.failed
        return Converted(quantized.data, quantized.precision, record)


INT8 = PRECISIONS.register(Int8.name, Int8())
