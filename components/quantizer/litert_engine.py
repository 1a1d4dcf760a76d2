"""Engine ``litert_quantizer``: ai-edge-quantizer recipes applied to the float TFLite conversion of the signature.

The float model comes from TFLiteConverter (``from_concrete_functions``, no optimizations), so signature key and
input names are the same as with the ``tflite_converter`` engine. The recipe fixes the model I/O dtype (int8 /
int16 for the static recipes, float32 for dynamic range). Ops without a quantized implementation stay float; without ``allow_float_fallback`` that is an error.
"""

from __future__ import annotations

import numpy as np

# ai-edge-quantizer 0.10 annotates with np.typing without importing it; numpy 1.26 does not load it on first use.
import numpy.typing  # noqa: F401

try:
    from ai_edge_quantizer import quantizer, recipe
except ModuleNotFoundError as missing:  # the package is being renamed litert-quantizer (same API)
    if missing.name != "ai_edge_quantizer":
        raise
    from litert_quantizer import quantizer, recipe

from components.quantizer import float_reference
from components.quantizer.options import QuantizationOptions
from components.quantizer.report import unexpected_float_ops
from components.shared.model_runners import TFLITE_SIGNATURE

_RECIPES = {
    "int8": recipe.static_wi8_ai8,
    "int16x8": recipe.static_wi8_ai16,
    "dynamic_range": recipe.dynamic_wi8_afp32,
}


def convert(saved_model_dir: str, signature_name: str, options: QuantizationOptions,
            inputs: dict[str, np.ndarray] | None) -> bytes:
    """Quantizes the signature with ai-edge-quantizer's recipe for ``options.mode``; same contract as tflite_engine."""
    if options.calibrated and not inputs:
        raise ValueError(f"mode {options.mode!r} needs calibration inputs")
    quant = quantizer.Quantizer(float_reference.float_tflite(saved_model_dir, signature_name), _RECIPES[options.mode]())
    calibration = None
    if quant.need_calibration:
        # One sample holding the whole set: the calibrator merges samples by a moving average of min/max, so
        # one-example samples give ranges far narrower than the data (measured: 78% agreement instead of 100%).
        calibration = quant.calibrate({TFLITE_SIGNATURE: [inputs]})
    content = bytes(quant.quantize(calibration).quantized_model)
    float_ops = unexpected_float_ops(content, options)
    if float_ops:
        raise ValueError(
            f"signature {signature_name!r} has op(s) that ai-edge-quantizer left float in mode {options.mode!r}: "
            f"{', '.join(float_ops)}. Set allow_float_fallback=True to accept them, or use engine 'tflite_converter'."
        )
    return content
