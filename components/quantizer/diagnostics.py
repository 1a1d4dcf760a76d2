"""Layer-wise diagnostics: per op output tensor, how far the quantized model is from the float one.

Run in the conversion child (``isolation.run_isolated``): both engines' work goes through the TFLite converter, which
may crash. Records have one shape for both engines, worst first; their ``tensor`` is what ``denylisted_nodes`` and
``int16_nodes`` take:
``{"tensor", "op", "dtype", "rmse_over_scale", "mean_error", "max_abs_error", "rmse", "scale", "zero_point"}``.
``rmse_over_scale`` is the error in quantization steps of that tensor (rounding alone gives about 0.29: a uniform
error of half a step either way); ``mean_error`` is the signed bias (quantized − float) in the tensor's own units.

- ``tflite_converter``, int8: TFLite's ``QuantizationDebugger`` on a NumericVerify-instrumented model (the
  calibrated model quantized with the options' denylists). Per layer: each quantized op gets the quantized model's
  own input and is compared with its float op on that same input (dequantized), so an error is the op's own, not
  one inherited from upstream.
- ``litert_quantizer``, and ``tflite_converter`` int16x8 (not quantized by the MLIR quantizer the debugger
  instruments): the float
  and the quantized model run side by side on the same inputs (one batch), each op output compared after
  dequantization, as ai-edge-quantizer's ``validate`` (``model_validator.compare_model``) compares tensors. Whole
  model: an op's error includes what its inputs inherited.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from quantgate.components.quantizer.isolation import log_stage
from quantgate.components.quantizer.options import QuantizationOptions

# Enough examples for stable means; the debugger invokes the model once per example.
MAX_EXAMPLES = 256
# How many records the report keeps (the HTML shows fewer); the count of all is kept beside them.
MAX_REPORTED = 100
PER_LAYER = ("per layer: TFLite QuantizationDebugger (NumericVerify), each quantized op fed the quantized model's "
             "own input and compared with its float op on it")
WHOLE_MODEL = ("whole model: float and quantized models run side by side on the same inputs (as ai-edge-quantizer's "
               "validate), each tensor's error includes what it inherited from upstream")


def method(engine: str, mode: str) -> str:
    """How ``layer_errors`` compares for this engine and mode (the report's ``layer_errors.method``)."""
    return PER_LAYER if engine == "tflite_converter" and mode == "int8" else WHOLE_MODEL


def _first(inputs: dict[str, np.ndarray], count: int) -> dict[str, np.ndarray]:
    return {name: values[:count] for name, values in inputs.items()}


def _record(tensor: str, op: str, dtype: str, diffs: dict[str, float], scale: float, zero_point: int) -> dict[str, Any]:
    rmse = math.sqrt(diffs["mean_squared_error"])
    return {"tensor": tensor, "op": op, "dtype": dtype, "rmse_over_scale": rmse / scale if scale else None,
            "mean_error": float(diffs["mean_error"]), "max_abs_error": float(diffs["max_abs_error"]), "rmse": rmse,
            "scale": float(scale), "zero_point": int(zero_point)}


def _quant_params(details: dict[str, Any]) -> tuple[float, int] | None:
    params = details.get("quantization_parameters") or {}
    if len(params.get("scales", ())) == 0:
        return None
    return float(params["scales"][0]), int(params["zero_points"][0])


def _original_name(debug_name: str, known: set[str]) -> str:
    # Instrumenting renames each verified tensor with a counter suffix ("MatMul;add" -> "MatMul;add1"): strip it,
    # back to the calibrated model's name, which denylisted_nodes matches.
    for cut in range(len(debug_name), 0, -1):
        if debug_name[:cut] in known and debug_name[cut:].isdigit():
            return debug_name[:cut]
    return debug_name


def _numeric_verify_errors(calibrated: bytes, debug_model: bytes, inputs: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    import tensorflow as tf

    from quantgate.components.quantizer.report import op_output_names

    known = set(op_output_names(calibrated))
    # tf.lite's interpreter: it has the NumericVerify kernel, and it is the one the debugger runs.
    interpreter = tf.lite.Interpreter(model_content=debug_model)
    by_index = {d["index"]: name for name, d in interpreter.get_signature_runner().get_input_details().items()}
    order = [by_index[d["index"]] for d in interpreter.get_input_details()]
    n = len(next(iter(inputs.values())))

    def samples() -> Iterator[list[np.ndarray]]:
        for i in range(n):
            yield [np.asarray(inputs[name][i:i + 1]) for name in order]  # int ids stay int

    debugger = tf.lite.experimental.QuantizationDebugger(quant_debug_model_content=debug_model, debug_dataset=samples)
    debugger.run()
    defining = {t: op for op in interpreter._get_ops_details() for t in op["outputs"]}
    records = []
    for op in interpreter._get_ops_details():
        if op["op_name"] != "NumericVerify":
            continue
        verify_name = interpreter._get_tensor_details(op["outputs"][0], 0)["name"]
        quantized = interpreter._get_tensor_details(op["inputs"][0], 0)
        params = _quant_params(quantized)
        if verify_name not in debugger.layer_statistics or params is None:
            continue
        records.append(_record(_original_name(quantized["name"], known), defining[op["inputs"][0]]["op_name"],
                               np.dtype(quantized["dtype"]).name, debugger.layer_statistics[verify_name], *params))
    return records


def _run_keeping_tensors(model: bytes, inputs: dict[str, np.ndarray]) -> tuple[Any, dict[str, dict[str, Any]]]:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from quantgate.components.shared.model_runners import TFLITE_SIGNATURE, quantize_array

    # No XNNPACK: a delegate fuses ops into one DELEGATE node and keeps their intermediate tensors to itself.
    interpreter = Interpreter(model_content=model, experimental_preserve_all_tensors=True,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    runner = interpreter.get_signature_runner(TFLITE_SIGNATURE)
    feed = {}
    for name, details in runner.get_input_details().items():
        scale, zero_point = details["quantization"]
        values = np.asarray(inputs[name])
        feed[name] = (quantize_array(values, scale, zero_point, details["dtype"]) if scale
                      else values.astype(details["dtype"]))
    runner(**feed)  # the whole set as one batch: one invoke, not one per example
    return interpreter, {t["name"]: t for t in interpreter.get_tensor_details()}


def side_by_side_errors(float_model: bytes, quantized_model: bytes,
                        inputs: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Every op output of ``float_model`` that ``quantized_model`` has quantized (same tensor name), compared after
    dequantization on the same inputs, as ai-edge-quantizer's ``validate`` compares tensors (unordered records)."""
    (ref, ref_tensors), (target, target_tensors) = (_run_keeping_tensors(m, inputs)
                                                    for m in (float_model, quantized_model))
    records = []
    for op in ref._get_ops_details():
        for index in (i for i in op["outputs"] if i >= 0):
            name = ref._get_tensor_details(index, 0)["name"]
            quantized = target_tensors.get(name)
            params = _quant_params(quantized) if quantized is not None else None
            if params is None:  # an op left float (denylisted, no kernel) has no quantization error of its own
                continue
            scale, zero_point = params
            expected = ref.get_tensor(ref_tensors[name]["index"]).astype(np.float64)
            got = (target.get_tensor(quantized["index"]).astype(np.float64) - zero_point) * scale
            diffs = got - expected
            records.append(_record(name, op["op_name"], np.dtype(quantized["dtype"]).name,
                                   {"mean_squared_error": float(np.mean(diffs ** 2)), "mean_error": float(diffs.mean()),
                                    "max_abs_error": float(np.abs(diffs).max())}, scale, zero_point))
    return records


def _tflite_layer_errors(saved_model_dir: str, signature_name: str, options: QuantizationOptions,
                         inputs: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    from quantgate.components.quantizer import float_reference, tflite_engine
    from quantgate.components.quantizer.options import check_node_names
    from quantgate.components.quantizer.report import op_output_names

    if options.mode == "int16x8":
        # The converter quantizes int16 activations with its older calibrator, not the MLIR quantizer the debugger
        # instruments (whose int16 models fail to prepare: CONCATENATION 'zero_point != 0'): compare the converted
        # model's tensors with the float conversion's instead.
        float_model = float_reference.float_tflite(saved_model_dir, signature_name)
        return side_by_side_errors(float_model, tflite_engine.convert(saved_model_dir, signature_name, options, inputs),
                                   inputs)
    converter = tflite_engine.converter_for(saved_model_dir, signature_name)
    tflite_engine.configure(converter, options, inputs, allow_float=True)
    calibrated = tflite_engine.calibrated_model(converter)
    check_node_names(options, op_output_names(calibrated), f"signature {signature_name!r}")
    debug_model = tflite_engine.quantize_calibrated(calibrated, options, numeric_verify=True)
    return _numeric_verify_errors(calibrated, debug_model, inputs)


def _litert_layer_errors(saved_model_dir: str, signature_name: str, options: QuantizationOptions,
                         inputs: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    from quantgate.components.quantizer import float_reference, litert_engine

    float_model = float_reference.float_tflite(saved_model_dir, signature_name)
    content = litert_engine.calibrate_and_quantize(
        litert_engine.configured_quantizer(float_model, options, signature_name), inputs)
    return side_by_side_errors(float_model, content, inputs)


def worst_summary(records: list[dict[str, Any]], count: int = 3) -> str:
    """``"tensor (op) 12.3, ..."`` for the ``count`` worst records with a defined ``rmse_over_scale``, for logs."""
    shown = [r for r in records if r["rmse_over_scale"] is not None][:count]
    return ", ".join(f"{r['tensor']} ({r['op']}) {r['rmse_over_scale']:.3g}" for r in shown) or "none"


def _severity(record: dict[str, Any]) -> float:
    value = record["rmse_over_scale"]
    return -math.inf if value is None or math.isnan(value) else value


def layer_errors(saved_model_dir: str, signature_name: str, options: QuantizationOptions,
                 inputs: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """The quantization error of every quantized op output of ``options``' model on ``inputs``, worst first.

    Meant for ``run_isolated`` (module-level, picklable arguments). Uses the first ``MAX_EXAMPLES`` inputs; honours
    ``denylisted_ops`` / ``denylisted_nodes`` / ``int16_nodes`` (float outputs have no record).

    Raises:
      ValueError: a mode without calibration (nothing to compare per layer), no inputs, or unknown node names.
    """
    if not options.calibrated:
        raise ValueError(f"layer errors need a calibrated mode (int8, int16x8), not {options.mode!r}")
    if not inputs:
        raise ValueError("layer errors need the calibration inputs")
    sample = _first(inputs, MAX_EXAMPLES)
    log_stage(f"layer-wise diagnostics on {len(next(iter(sample.values())))} examples "
              f"({method(options.engine, options.mode).split(':')[0]})")
    compute = _tflite_layer_errors if options.engine == "tflite_converter" else _litert_layer_errors
    records = compute(saved_model_dir, signature_name, options, sample)
    logging.info("layer errors: %d quantized tensors compared on %d examples", len(records),
                 len(next(iter(sample.values()))))
    return sorted(records, key=_severity, reverse=True)


def add_to_report(report: dict[str, Any], errors: list[dict[str, Any]] | None,
                  failure: str | None = None) -> None:
    """Adds ``layer_errors`` to a ``quantization_report.json`` dict: the method, the count of all tensors compared,
    the worst ``MAX_REPORTED`` records; ``null`` for a mode without calibration. ``failure`` (why the diagnostics
    could not be computed) is recorded instead of records, and as a warning: the model itself converted."""
    if errors is None and failure is None:
        report["layer_errors"] = None
        return
    report["layer_errors"] = {
        "method": method(report["engine"], report["mode"]),
        "metric": "rmse_over_scale",
        "num_examples": min(MAX_EXAMPLES, (report.get("representative_dataset") or {}).get("num_examples") or 0),
        "num_tensors": len(errors or []),
        "tensors": (errors or [])[:MAX_REPORTED],
        "error": failure,
    }
    if failure:
        report["warnings"].append(f"layer-wise diagnostics failed, the model converted: {failure}")
