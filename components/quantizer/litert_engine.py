"""Engine ``litert_quantizer``: ai-edge-quantizer recipes applied to the float TFLite conversion of the signature.

The float model comes from TFLiteConverter (``from_concrete_functions``, no optimizations), so signature key and
input names are the same as with the ``tflite_converter`` engine. The recipe fixes the model I/O dtype (int8 /
int16 for the static recipes, float32 for dynamic range). Ops without a quantized implementation stay float; without
``allow_float_fallback`` that is an error. ``denylisted_nodes``, ``int16_nodes`` and ``int4_weight_nodes`` become
per-op rules matched on the op's output tensor name (ai-edge-quantizer's op "scope"), added after the recipe's
catch-all rule: the last matching rule wins (the lists are disjoint, ``options``).

``int4_weight_nodes`` is ai-edge-quantizer's dynamic rule with 4-bit blockwise weights (its
``dynamic_wi4b<n>_afp32``): the op keeps float activations (its kernel quantizes them on the fly) and reads int4
weights with one fp16 scale per block of ``int4_block_size`` input values. 0.10's weight-only rule
(``add_weight_only_config``, explicit DEQUANTIZE, float math) has no blockwise granularity in its policy: asked
for one, it leaves the op as the recipe had it without an error, so it is not used. Only LiteRT's XNNPACK path
computes these ops right (``report.INT4_RUNTIME_WARNING``); modes: ``options.INT4_MODES``.
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

from quantgate.components.quantizer import builtin_rewrites, float_reference
from quantgate.components.quantizer.options import INT4_WEIGHT_OPS, QuantizationOptions, check_node_names
from quantgate.components.quantizer.report import int4_weights, op_output_names, unexpected_float_ops
from quantgate.components.shared.model_runners import TFLITE_SIGNATURE

_RECIPES = {
    "int8": recipe.static_wi8_ai8,
    "int16x8": recipe.static_wi8_ai16,
    "dynamic_range": recipe.dynamic_wi8_afp32,
}


def _scope_of(name: str) -> str:
    # An op's scope is its output tensor names, each followed by ';' ("MatMul;add;" for the tensor "MatMul;add"):
    # anchored at both ends of one name, a rule matches that op only, never one whose output merely starts alike.
    return f"(^|;){re.escape(name)};"


def check_int4_nodes(float_model: bytes, options: QuantizationOptions, where: str) -> None:
    """Refuses ``int4_weight_nodes`` whose op cannot take int4 blockwise weights: not a type in
    ``INT4_WEIGHT_OPS``, or (FULLY_CONNECTED) a constant weight whose input dimension is no multiple of
    ``int4_block_size``. Names must exist already (``check_node_names``)."""
    if not options.int4_weight_nodes:
        return
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=float_model)
    wanted, problems = set(options.int4_weight_nodes), []
    for op in interpreter._get_ops_details():
        names = {interpreter._get_tensor_details(i, 0)["name"] for i in op["outputs"] if i >= 0}
        for name in sorted(names & wanted):
            if op["op_name"] not in INT4_WEIGHT_OPS:
                problems.append(f"{name!r} is a {op['op_name']} op (int4 weights apply to {', '.join(INT4_WEIGHT_OPS)})")
            elif op["op_name"] == "FULLY_CONNECTED":
                shape = [int(d) for d in interpreter._get_tensor_details(op["inputs"][1], 0)["shape"]]
                if shape[-1] % options.int4_block_size:
                    problems.append(f"{name!r} (FULLY_CONNECTED) has weights {shape} whose input dimension "
                                    f"{shape[-1]} is no multiple of int4_block_size {options.int4_block_size}")
    if problems:
        raise ValueError(f"Quantizer: int4_weight_nodes of {where} cannot get int4 blockwise weights: "
                         f"{'; '.join(problems)}. Drop those nodes, or pick a block size dividing the input dimension.")


def configured_quantizer(float_model: bytes, options: QuantizationOptions, signature_name: str) -> quantizer.Quantizer:
    """An ai-edge-quantizer ``Quantizer`` with the mode's recipe and the per-node rules of ``options``.

    Raises:
      ValueError: a node in ``denylisted_nodes`` / ``int16_nodes`` / ``int4_weight_nodes`` is no op output of the
        float model, or an int4 node's op cannot take int4 blockwise weights (``check_int4_nodes``).
    """
    where = f"signature {signature_name!r}"
    check_node_names(options, op_output_names(float_model), where)
    check_int4_nodes(float_model, options, where)
    quant = quantizer.Quantizer(float_model, _RECIPES[options.mode]())
    for name in options.int16_nodes:
        quant.add_static_config(_scope_of(name), qtyping.TFLOperationName.ALL_SUPPORTED, activation_num_bits=16,
                                weight_num_bits=8)
    granularity = qtyping.QuantGranularity(f"BLOCKWISE_{options.int4_block_size}")
    for name in options.int4_weight_nodes:
        quant.add_dynamic_config(_scope_of(name), qtyping.TFLOperationName.ALL_SUPPORTED, num_bits=4,
                                 granularity=granularity)
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


def check_int4_result(content: bytes, options: QuantizationOptions, signature_name: str) -> None:
    """Refuses a quantized model in which an ``int4_weight_nodes`` op reads no int4 weight (ai-edge-quantizer skips a
    rule its policy does not allow with a warning only)."""
    done = {w["output"] for w in int4_weights(content)}
    missing = [n for n in options.int4_weight_nodes if n not in done]
    if missing:
        raise ValueError(f"Quantizer: ai-edge-quantizer gave no int4 weights to int4_weight_nodes {missing} of "
                         f"signature {signature_name!r} (its policy refused the rule); drop them from "
                         "int4_weight_nodes.")


def convert(saved_model_dir: str, signature_name: str, options: QuantizationOptions,
            inputs: dict[str, np.ndarray] | None) -> bytes:
    """Quantizes the signature with ai-edge-quantizer's recipe for ``options.mode``; same contract as tflite_engine."""
    if options.calibrated and not inputs:
        raise ValueError(f"mode {options.mode!r} needs calibration inputs")
    # The float model this engine quantizes keeps TF Select ops only with the opt-in (builtin_rewrites); measured:
    # ai-edge-quantizer's recipes leave such a Flex op float and quantize the rest.
    builtin_rewrites.set_select_ops_allowed(options.allow_select_ops)
    float_model = float_reference.float_tflite(saved_model_dir, signature_name)
    builtin_rewrites.refuse_select_ops(float_model, options.allow_select_ops, f"signature {signature_name!r}")
    quant = configured_quantizer(float_model, options, signature_name)
    content = calibrate_and_quantize(quant, inputs)
    check_int4_result(content, options, signature_name)
    float_ops = unexpected_float_ops(content, options)
    if float_ops:
        raise ValueError(
            f"signature {signature_name!r} has op(s) that ai-edge-quantizer left float in mode {options.mode!r}: "
            f"{', '.join(float_ops)}. Set allow_float_fallback=True to accept them, or use engine 'tflite_converter'."
        )
    return content
