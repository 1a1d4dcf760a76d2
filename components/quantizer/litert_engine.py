"""Engine ``litert_quantizer``: ai-edge-quantizer recipes applied to the float TFLite conversion of the signature.

The float model comes from TFLiteConverter (``from_concrete_functions``, no optimizations), so signature key and
input names are the same as with the ``tflite_converter`` engine. The recipe fixes the model I/O dtype (int8 /
int16 for the static recipes, float32 for dynamic range). Ops without a quantized implementation stay float; without
``allow_float_fallback`` that is an error. ``denylisted_nodes`` and ``int16_nodes`` become per-op rules matched on
the op's output tensor name (ai-edge-quantizer's op "scope"), added after the recipe's catch-all rule: the last
matching rule wins.
"""

from __future__ import annotations

import re

import numpy as np

# ai-edge-quantizer 0.10 annotates with np.typing without importing it; numpy 1.26 does not load it on first use.
import numpy.typing  # noqa: F401

try:
    from ai_edge_quantizer import algorithm_manager, qtyping, quantizer, recipe
except ModuleNotFoundError as missing:  # the package is being renamed litert-quantizer (same API)
    if missing.name != "ai_edge_quantizer":
        raise
    from litert_quantizer import algorithm_manager, qtyping, quantizer, recipe

from components.quantizer import float_reference
from components.quantizer.options import QuantizationOptions, check_node_names
from components.quantizer.report import op_output_names, unexpected_float_ops
from components.shared.model_runners import TFLITE_SIGNATURE

_RECIPES = {
    "int8": recipe.static_wi8_ai8,
    "int16x8": recipe.static_wi8_ai16,
    "dynamic_range": recipe.dynamic_wi8_afp32,
}


def _scope_of(name: str) -> str:
    # An op's scope is its output tensor names, each followed by ';' ("MatMul;add;" for the tensor "MatMul;add"):
    # anchored at both ends of one name, a rule matches that op only, never one whose output merely starts alike.
    return f"(^|;){re.escape(name)};"


def configured_quantizer(float_model: bytes, options: QuantizationOptions, signature_name: str) -> quantizer.Quantizer:
    """An ai-edge-quantizer ``Quantizer`` with the mode's recipe and the per-node rules of ``options``.

    Raises:
      ValueError: a node in ``denylisted_nodes`` / ``int16_nodes`` is no op output of the float model.
    """
    check_node_names(options, op_output_names(float_model), f"signature {signature_name!r}")
    quant = quantizer.Quantizer(float_model, _RECIPES[options.mode]())
    for name in options.int16_nodes:
        quant.add_static_config(_scope_of(name), qtyping.TFLOperationName.ALL_SUPPORTED, activation_num_bits=16,
                                weight_num_bits=8)
    for name in options.denylisted_nodes:
        quant.update_quantization_recipe(_scope_of(name), qtyping.TFLOperationName.ALL_SUPPORTED,
                                         algorithm_key=algorithm_manager.AlgorithmName.NO_QUANTIZE)
    return quant


def calibrate_and_quantize(quant: quantizer.Quantizer, inputs: dict[str, np.ndarray] | None) -> bytes:
    """Calibrates (when the recipe needs it) and quantizes; returns the quantized flatbuffer."""
    calibration = None
    if quant.need_calibration:
        # One sample holding the whole set: the calibrator merges samples by a moving average of min/max, so
        # one-example samples give ranges far narrower than the data (measured: 78% agreement instead of 100%).
        calibration = quant.calibrate({TFLITE_SIGNATURE: [inputs]})
    return bytes(quant.quantize(calibration, enable_progress_report=False).quantized_model)


def convert(saved_model_dir: str, signature_name: str, options: QuantizationOptions,
            inputs: dict[str, np.ndarray] | None) -> bytes:
    """Quantizes the signature with ai-edge-quantizer's recipe for ``options.mode``; same contract as tflite_engine."""
    if options.calibrated and not inputs:
        raise ValueError(f"mode {options.mode!r} needs calibration inputs")
    quant = configured_quantizer(float_reference.float_tflite(saved_model_dir, signature_name), options, signature_name)
    content = calibrate_and_quantize(quant, inputs)
    float_ops = unexpected_float_ops(content, options)
    if float_ops:
        raise ValueError(
            f"signature {signature_name!r} has op(s) that ai-edge-quantizer left float in mode {options.mode!r}: "
            f"{', '.join(float_ops)}. Set allow_float_fallback=True to accept them, or use engine 'tflite_converter'."
        )
    return content
