"""What a quantized TFLite model is made of: op counts by dtype, I/O quantization, input steps; the report JSON."""

from __future__ import annotations

import collections
import hashlib
import importlib.metadata
import os
from typing import Any

import numpy as np
import tensorflow as tf
from ai_edge_litert import schema_py_generated as tflite_schema
from ai_edge_litert.interpreter import Interpreter

from quantgate.components.quantizer.builtin_rewrites import FLEX_PREFIX, select_ops_section
from quantgate.components.quantizer.options import QuantizationOptions
from quantgate.components.shared.properties import FLOAT_TFLITE_FILENAME
from quantgate.components.shared.strict_json import json_safe

# Ops that only move values between float and quantized domains (model boundaries, float islands).
CONVERSION_OPS = ("QUANTIZE", "DEQUANTIZE")
FLOAT_CATEGORIES = ("float32", "float16", "hybrid")
# Hash-table ops (StringLookup / IntegerLookup, TFT vocabularies in the graph): table look-ups, not arithmetic, so
# there is nothing to quantize in them whatever dtype they return.
LOOKUP_OPS = ("HASHTABLE", "HASHTABLE_FIND", "HASHTABLE_IMPORT", "HASHTABLE_SIZE")
# A step coarser than this fraction of an input's standard deviation leaves fewer than ten levels per std.
COARSE_STEP_FRACTION = 0.1


def _op_category(op_name: str, out_dtypes: list[np.dtype], in_dtypes: list[np.dtype]) -> str:
    if op_name in CONVERSION_OPS:
        return "conversion"
    if op_name in LOOKUP_OPS:
        return "lookup"
    # CALL_ONCE (runs a table's initializer subgraph) and the like write no tensor: no dtype to compute in.
    if not out_dtypes:
        return "no_output"
    out = np.dtype(out_dtypes[0])
    if out.kind == "O":  # a resource handle (a table, a variable), not a value
        return "resource"
    # A float op fed int8 weights is a dynamic-range ("hybrid") kernel: int8 storage, float math on activations.
    if out.kind == "f" and any(np.dtype(d) == np.int8 for d in in_dtypes):
        return "hybrid"
    return out.name


def op_summary(model_content: bytes) -> dict[str, Any]:
    """Counts the model's ops by type and compute dtype.

    Returns ``{"ops": {op: {category: n}}, "by_dtype": {category: n}, "float_ops": [op, ...], "float_op_count": n,
    "lookup_ops": [op, ...]}`` where the category is the op's output dtype (``int8``, ``int16``, ``float32`` ...),
    ``hybrid`` for float math on int8 weights, ``conversion`` for QUANTIZE/DEQUANTIZE, ``lookup`` for hash-table
    ops, ``resource`` for an op returning a resource handle and ``no_output`` for one returning nothing
    (``CALL_ONCE``); ``float_ops`` lists the op types computing in float, ``lookup_ops`` the hash-table op types.
    """
    interpreter = Interpreter(model_content=model_content)
    tensors = {t["index"]: t["dtype"] for t in interpreter.get_tensor_details()}
    ops: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for op in interpreter._get_ops_details():  # no public op listing; TF's own QuantizationDebugger uses this too
        in_dtypes = [tensors[i] for i in op["inputs"] if i >= 0]
        out_dtypes = [tensors[i] for i in op["outputs"] if i >= 0]
        ops[op["op_name"]][_op_category(op["op_name"], out_dtypes, in_dtypes)] += 1
    by_dtype: collections.Counter = collections.Counter()
    for counts in ops.values():
        by_dtype.update(counts)
    return {
        "ops": {name: dict(sorted(counts.items())) for name, counts in sorted(ops.items())},
        "by_dtype": dict(sorted(by_dtype.items())),
        "float_ops": sorted(name for name, counts in ops.items() if any(c in counts for c in FLOAT_CATEGORIES)),
        "float_op_count": sum(by_dtype[c] for c in FLOAT_CATEGORIES),
        "lookup_ops": sorted(name for name, counts in ops.items() if "lookup" in counts),
    }


def op_output_names(content: bytes) -> list[str]:
    """The names of every op's output tensors in the model's main subgraph, in op order (what denylisted_nodes takes)."""
    interpreter = Interpreter(model_content=content)
    return [interpreter._get_tensor_details(index, 0)["name"]
            for op in interpreter._get_ops_details() for index in op["outputs"] if index >= 0]


def int4_weights(model_content: bytes) -> list[dict[str, Any]]:
    """The int4 tensors of the main subgraph and the ops reading them (``int4_weight_nodes``), in op order.

    The interpreter reports an INT4 tensor as int8 (``op_summary`` counts its op as ``hybrid``), so the type and
    the blockwise details are read from the flatbuffer. Returns ``{"tensor", "op", "output", "shape",
    "block_size"}`` per (int4 tensor, reading op): ``output`` is the op's first output tensor name, ``block_size``
    0 for a per-channel int4 tensor.
    """
    subgraph = tflite_schema.Model.GetRootAs(model_content, 0).Subgraphs(0)
    int4 = {}
    for index in range(subgraph.TensorsLength()):
        tensor = subgraph.Tensors(index)
        if tensor.Type() != tflite_schema.TensorType.INT4:
            continue
        quantization, block_size = tensor.Quantization(), 0
        if quantization is not None and quantization.DetailsType() == \
                tflite_schema.QuantizationDetails.BlockwiseQuantization:
            details = tflite_schema.BlockwiseQuantization()
            details.Init(quantization.Details().Bytes, quantization.Details().Pos)
            block_size = int(details.BlockSize())
        int4[index] = {"tensor": tensor.Name().decode(), "shape": [int(d) for d in tensor.ShapeAsNumpy()],
                       "block_size": block_size}
    if not int4:
        return []
    interpreter = Interpreter(model_content=model_content)
    found = []
    for op in interpreter._get_ops_details():
        outputs = [i for i in op["outputs"] if i >= 0]
        output = interpreter._get_tensor_details(outputs[0], 0)["name"] if outputs else None
        found += [{**int4[i], "op": op["op_name"], "output": output} for i in op["inputs"] if i in int4]
    return found


def float_ops_by_output(model_content: bytes) -> list[tuple[str, str]]:
    """``(op type, first output tensor name)`` of each op computing in float (a category in ``FLOAT_CATEGORIES``)."""
    interpreter = Interpreter(model_content=model_content)
    details = {t["index"]: t for t in interpreter.get_tensor_details()}
    found = []
    for op in interpreter._get_ops_details():
        outputs = [i for i in op["outputs"] if i >= 0]
        category = _op_category(op["op_name"], [details[i]["dtype"] for i in outputs],
                                [details[i]["dtype"] for i in op["inputs"] if i >= 0])
        if category in FLOAT_CATEGORIES:
            found.append((op["op_name"], details[outputs[0]]["name"]))
    return found


def unexpected_float_ops(content: bytes, options: QuantizationOptions) -> list[str]:
    """Op types computing in float that a full-integer mode without float fallback must not have: any but the
    denylisted op types and the ops writing a denylisted node or an ``int4_weight_nodes`` one (float math on int4
    weights, as asked)."""
    if not options.full_integer or options.allow_float_fallback:
        return []
    allowed = set(options.denylisted_nodes) | set(options.int4_weight_nodes)
    return sorted({op for op, output in float_ops_by_output(content)
                   if op not in options.denylisted_ops and output not in allowed
                   and not (options.allow_select_ops and _is_select_op(op))})


def _is_select_op(op: str) -> bool:
    # A TF Select op (Flex<op>) runs TensorFlow's float kernel: the allow_select_ops opt-in accepted it, and the
    # report lists it. In a process that imported TensorFlow the interpreter folds it into a DELEGATE node.
    return op.startswith(FLEX_PREFIX) or op == "DELEGATE"


def _tensor_io(details: dict[str, Any]) -> dict[str, Any]:
    scale, zero_point = details["quantization"]
    return {
        "dtype": np.dtype(details["dtype"]).name,
        "shape": [int(s) for s in details["shape_signature"]],
        "scale": float(scale) if scale else None,
        "zero_point": int(zero_point) if scale else None,
    }


def io_summary(model_content: bytes, signature: str = "serving_default") -> dict[str, Any]:
    """The signature's inputs and outputs: dtype, shape and per-tensor quantization (scale/zero point or null).

    A float input that the model quantizes right away (QUANTIZE op) reports that op's parameters as
    ``internal_scale``/``internal_zero_point``: the input is quantized raw there, just as an int8 input would be.
    """
    interpreter = Interpreter(model_content=model_content)
    runner = interpreter.get_signature_runner(signature)
    quantized_by = {}
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    for op in interpreter._get_ops_details():
        if op["op_name"] == "QUANTIZE":
            quantized_by[op["inputs"][0]] = tensors[op["outputs"][0]]
    inputs = {}
    for name, details in sorted(runner.get_input_details().items()):
        inputs[name] = _tensor_io(details)
        internal = quantized_by.get(details["index"])
        if internal is not None and inputs[name]["scale"] is None:
            scale, zero_point = internal["quantization"]
            inputs[name].update(internal_scale=float(scale), internal_zero_point=int(zero_point))
    outputs = {name: _tensor_io(d) for name, d in sorted(runner.get_output_details().items())}
    return {"inputs": inputs, "outputs": outputs}


# How many coarse column indices a vector input's entry (and its warning) lists.
MAX_LISTED_COLUMNS = 20
MAX_WARNED_COLUMNS = 8


def _distinct_per_column(columns: np.ndarray) -> np.ndarray:
    """Distinct values in each column of a 2-D array (NaNs count once, as ``np.unique`` counts them)."""
    ordered = np.sort(columns, axis=0)  # NaNs sort last
    new = ordered[1:] != ordered[:-1]
    new &= ~(np.isnan(ordered[1:]) & np.isnan(ordered[:-1]))
    return 1 + new.sum(axis=0)


def _column_steps(columns: np.ndarray, scale: float) -> dict[str, np.ndarray]:
    """Per column (axis 1) of ``[examples, columns]``: std, min, max, step/std, quantized levels, coarseness."""
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf inside std: NaN, i.e. undefined
        std = columns.std(axis=0)
        quantized = np.round(columns / scale)
    defined = np.isfinite(std) & (std > 0)
    relative = np.full(std.shape, np.nan)
    relative[defined] = scale / std[defined]
    levels = _distinct_per_column(quantized)
    # A column whose finite values differ but all quantize to one level has lost everything, whatever its std says
    # (a non-finite value leaves the std undefined). A constant column (one value) has nothing to lose.
    finite = np.isfinite(columns)
    masked = ~finite.all(axis=0)  # the NaN standing for the non-finite values counts once: take it back

    def finite_distinct(a: np.ndarray) -> np.ndarray:
        return _distinct_per_column(np.where(finite, a, np.nan)) - masked

    collapsed = (finite_distinct(columns) > 1) & (finite_distinct(quantized) == 1)
    coarse = (defined & (relative > COARSE_STEP_FRACTION)) | collapsed
    return {"std": std, "relative": relative, "levels": levels, "coarse": coarse}


def input_steps(io: dict[str, Any], inputs: dict[str, np.ndarray] | None) -> dict[str, dict[str, Any]]:
    """Each quantized input's step relative to its spread in the representative set (README, "Quantizer": ``input_steps``).

    Inputs are quantized raw, before any normalization inside the model, with ONE scale per input tensor, and the
    range always includes 0: a feature far from 0 with a small spread gets few levels, and so does a small feature
    sharing a vector input with a large one. Each element of the per-example shape (axis 0 = examples, the rest
    flattened into columns) is judged on its own: a column is coarse when the step exceeds ``COARSE_STEP_FRACTION``
    of its standard deviation, or when its float values differ but quantize to a single level; the input is
    ``coarse`` when any column is. The top-level ``std``/``min``/``max``/``distinct_values`` are over the whole
    input, ``step_over_std`` is the worst column's and ``distinct_levels`` the fewest of any column; an input with
    more than one column also has ``columns``, ``coarse_columns`` and ``coarse_column_indices`` (the first
    ``MAX_LISTED_COLUMNS``). The fix is centring and scaling each feature upstream. Undefined numbers
    (``step_over_std`` of a constant input, statistics of non-finite values) are ``None``.
    """
    steps = {}
    for name, entry in io["inputs"].items():
        scale = entry["scale"] or entry.get("internal_scale")
        if not scale or inputs is None or name not in inputs:
            continue
        values = np.asarray(inputs[name], dtype=np.float64)
        if values.size == 0:
            continue
        columns = values.reshape(len(values), -1) if values.ndim > 1 else values.reshape(-1, 1)
        with np.errstate(invalid="ignore", over="ignore"):  # inf - inf inside std: the NaN it gives becomes None
            std = float(values.std())
        per_column = _column_steps(columns, float(scale))
        relative = per_column["relative"]
        coarse_indices = np.flatnonzero(per_column["coarse"])
        step = {
            "step": scale,
            "std": std,
            "min": float(values.min()),
            "max": float(values.max()),
            # A constant feature (std 0) has no spread to resolve: its step ratio is undefined and it is not coarse.
            "step_over_std": float(np.nanmax(relative)) if not np.isnan(relative).all() else None,
            "distinct_levels": int(per_column["levels"].min()),
            "distinct_values": int(np.unique(values).size),
            "coarse": bool(coarse_indices.size),
        }
        if columns.shape[1] > 1:
            step.update(columns=int(columns.shape[1]), coarse_columns=int(coarse_indices.size),
                        coarse_column_indices=[int(i) for i in coarse_indices[:MAX_LISTED_COLUMNS]])
        steps[name] = json_safe(step)
    return steps


def _coarse_warning(name: str, s: dict[str, Any]) -> str:
    if "columns" not in s:
        return (f"input {name!r}: quantization step {s['step']:.4g} is {s['step_over_std']:.2f} of its std "
                f"{s['std']:.4g} ({s['distinct_levels']} levels for {s['distinct_values']} distinct values): it loses "
                "information. Consider centring and scaling the feature upstream (e.g. in Transform) so its range "
                "hugs 0.")
    indices = s["coarse_column_indices"][:MAX_WARNED_COLUMNS]
    listed = ", ".join(str(i) for i in indices) + (", ..." if s["coarse_columns"] > len(indices) else "")
    worst = "undefined" if s["step_over_std"] is None else f"{s['step_over_std']:.2f}"
    return (f"input {name!r}: {s['coarse_columns']} of its {s['columns']} columns are coarse (columns {listed}): at "
            f"its one quantization step {s['step']:.4g} the worst column's step is {worst} of its std and the "
            f"poorest keeps {s['distinct_levels']} level(s). Normalize each feature before the model input (e.g. in "
            "Transform); io_dtype='float32' does not avoid it (the model quantizes a float input first, before its "
            "own normalization layers).")


def coarse_input_warnings(steps: dict[str, dict[str, Any]]) -> list[str]:
    """Human-readable warnings for the coarse inputs of ``input_steps``."""
    return [_coarse_warning(name, s) for name, s in steps.items() if s["coarse"]]


# Inputs sharing one scale whose calibration ranges differ more than this factor: the narrow ones lose levels.
SHARED_SCALE_RANGE_RATIO = 4.0


def _input_scale(entry: dict[str, Any]) -> tuple[float, int] | None:
    scale = entry["scale"] or entry.get("internal_scale")
    zero_point = entry["zero_point"] if entry["scale"] else entry.get("internal_zero_point")
    return (float(scale), int(zero_point)) if scale else None


def shared_input_scales(io: dict[str, Any], inputs: dict[str, np.ndarray] | None) -> list[dict[str, Any]]:
    """Groups of inputs quantized with one common scale and zero point although their representative ranges differ
    more than ``SHARED_SCALE_RANGE_RATIO``-fold (README, "Quantizer": input traps).

    The converter does this when the inputs meet in a concatenation (one scale for all its operands) after
    elementwise constant ops it folds into the quantization, e.g. ``(x - mean) / std`` per input: every input then
    gets the widest one's scale. Returns per group ``inputs`` (sorted), ``scale``, ``zero_point``, ``range_ratio``,
    ``narrowest`` and ``widest`` (input names) with their ``ranges``; constant inputs (range 0) do not count.
    """
    if inputs is None:
        return []
    groups: dict[tuple[float, int], dict[str, float]] = {}
    for name, entry in io["inputs"].items():
        params = _input_scale(entry)
        values = np.asarray(inputs.get(name, ()), dtype=np.float64)
        values = values[np.isfinite(values)]
        if params is None or values.size == 0 or values.max() == values.min():
            continue
        groups.setdefault((float(np.float32(params[0])), params[1]), {})[name] = float(values.max() - values.min())
    found = []
    for (scale, zero_point), ranges in sorted(groups.items()):
        if len(ranges) < 2:
            continue
        narrowest, widest = min(ranges, key=ranges.get), max(ranges, key=ranges.get)
        ratio = ranges[widest] / ranges[narrowest]
        if ratio > SHARED_SCALE_RANGE_RATIO:
            found.append({"inputs": sorted(ranges), "scale": scale, "zero_point": zero_point, "range_ratio": ratio,
                          "narrowest": narrowest, "widest": widest,
                          "ranges": {name: ranges[name] for name in sorted(ranges)}})
    return found


def shared_scale_warnings(groups: list[dict[str, Any]]) -> list[str]:
    """One warning per group of ``shared_input_scales``, with the remedy."""
    warnings = []
    for g in groups:
        names = ", ".join(repr(n) for n in g["inputs"][:MAX_WARNED_COLUMNS])
        more = f" and {len(g['inputs']) - MAX_WARNED_COLUMNS} more" if len(g["inputs"]) > MAX_WARNED_COLUMNS else ""
        warnings.append(
            f"inputs {names}{more} ({len(g['inputs'])}) share one quantization scale {g['scale']:.4g} although their "
            f"representative ranges differ {g['range_ratio']:.3g}-fold (narrowest {g['narrowest']!r} "
            f"{g['ranges'][g['narrowest']]:.4g}, widest {g['widest']!r} {g['ranges'][g['widest']]:.4g}): the converter "
            "gave them all the widest one's scale, as it does when a constant normalization ((x - mean) / std per "
            "input) is folded before a concatenation, so the narrow ones keep few levels. Normalize each input with "
            "its own layer before the concatenation (a Keras Normalization layer per input) or upstream in "
            "Transform; io_dtype='float32' does not avoid it (the model quantizes each float input at that same "
            "scale first)."
        )
    return warnings


_VERSIONED_PACKAGES = ("tensorflow", "ai-edge-litert", "ai-edge-quantizer", "tfx")
# Measured on the int4 test model (tests/components/quantizer/test_litert_engine.py): only LiteRT's default CPU path
# (the XNNPACK delegate, what TFLiteRunner and so the QuantizationEvaluator and the pusher's check use) computes
# FULLY_CONNECTED with int4 blockwise weights right; TF 2.16's tf.lite.Interpreter and LiteRT's builtin kernels
# without the delegate run it without an error and give wrong outputs (probabilities off by up to 0.72).
INT4_RUNTIME_WARNING = (
    "{count} op(s) read int4 blockwise weights (int4_weight_nodes): only LiteRT's default CPU interpreter "
    "(ai-edge-litert with its XNNPACK delegate, what the QuantizationEvaluator runs) computes them right; TF's "
    "tf.lite.Interpreter (TFMA's model_type 'tf_lite') and LiteRT without XNNPACK (BUILTIN_WITHOUT_DEFAULT_DELEGATES, "
    "BUILTIN_REF) run the model without an error and give wrong outputs. Deploy with XNNPACK, or drop "
    "int4_weight_nodes.")


def _dir_bytes(path: str) -> int:
    total = 0
    for root, _dirs, files in tf.io.gfile.walk(path):
        total += sum(tf.io.gfile.stat(os.path.join(root, name)).length for name in files)
    return total


def build_report(content: bytes, *, options: QuantizationOptions, signature_name: str, saved_model_dir: str,
                 inputs: dict[str, np.ndarray] | None, representative_dataset_uri: str | None,
                 conversion_seconds: float, signature_source: str | None = None) -> dict[str, Any]:
    """The ``quantization_report.json`` of a converted model (see README, "Quantizer"). ``signature_source`` says
    where the converted function came from (``signature_inputs.signature_source``)."""
    io = io_summary(content)
    batches = {entry["shape"][0] for entry in io["inputs"].values() if entry["shape"]}
    fixed_batch = batches.pop() if len(batches) == 1 and min(batches) > 0 else None
    steps = input_steps(io, inputs)
    shared = shared_input_scales(io, inputs)
    int4 = int4_weights(content)
    runtime = [INT4_RUNTIME_WARNING.format(count=len({w["output"] for w in int4}))] if int4 else []
    select = select_ops_section(content, options.allow_select_ops)
    return {
        "mode": options.mode,
        "engine": options.engine,
        "signature_name": signature_name,
        "signature_source": signature_source,
        # Not None when the model was converted with a fixed batch (a recurrent layer's loop lowers to a fused op
        # only so): it takes exactly that many examples per invoke.
        "fixed_batch_size": fixed_batch,
        "io_dtype": options.io_dtype,
        "allow_float_fallback": options.allow_float_fallback,
        "denylisted_ops": list(options.denylisted_ops),
        "denylisted_nodes": list(options.denylisted_nodes),
        "int16_nodes": list(options.int16_nodes),
        "int4_weight_nodes": list(options.int4_weight_nodes),
        "int4_block_size": options.int4_block_size if options.int4_weight_nodes else None,
        # The TF ops kept as Flex ops (allow_select_ops): the app needs the Flex delegate (see warnings).
        "allow_select_ops": select["allow_select_ops"],
        "select_ops": select["select_ops"],
        "source_saved_model": saved_model_dir,
        "representative_dataset": None if inputs is None else {
            "uri": representative_dataset_uri, "num_examples": len(next(iter(inputs.values())))},
        "inputs": io["inputs"],
        "outputs": io["outputs"],
        "input_steps": steps,
        "shared_input_scales": json_safe(shared),
        "warnings": coarse_input_warnings(steps) + shared_scale_warnings(shared) + runtime + select["warnings"],
        "ops": op_summary(content),
        "int4_weights": int4,
        "sizes": {
            "tflite_bytes": len(content),
            "float_variables_bytes": _dir_bytes(os.path.join(saved_model_dir, "variables")),
            "float_saved_model_bytes": _dir_bytes(saved_model_dir),
        },
        "sha256": hashlib.sha256(content).hexdigest(),
        "conversion_seconds": round(conversion_seconds, 3),
        "versions": {name: importlib.metadata.version(name) for name in _VERSIONED_PACKAGES},
    }


def compare_with_float_tflite(quantization_report: dict[str, Any], float_tflite_bytes: int,
                              float_tflite_seconds: float) -> None:
    """Adds the honest size comparison to a built report: ``sizes.float_tflite_bytes`` (the same signature as
    float32 TFLite, weights only), ``sizes.ratio_to_float_tflite``, ``sizes.not_smaller_than_float``,
    ``float_tflite_seconds``, ``sizes.float_tflite_file`` (that model's file in the artifact, which the
    QuantizationEvaluator times beside the quantized one), and a warning when the quantized model is not smaller
    than that float one (int16x8, float16 and litert int8 models of small classifiers were measured larger)."""
    sizes = quantization_report["sizes"]
    sizes["float_tflite_bytes"] = float_tflite_bytes
    sizes["float_tflite_file"] = FLOAT_TFLITE_FILENAME
    sizes["ratio_to_float_tflite"] = round(sizes["tflite_bytes"] / float_tflite_bytes, 4)
    sizes["not_smaller_than_float"] = sizes["tflite_bytes"] >= float_tflite_bytes
    quantization_report["float_tflite_seconds"] = round(float_tflite_seconds, 3)
    if sizes["not_smaller_than_float"]:
        quantization_report["warnings"].append(
            f"the {quantization_report['mode']} model ({sizes['tflite_bytes']} bytes) is not smaller than the same "
            f"signature converted to float32 TFLite ({float_tflite_bytes} bytes, {sizes['ratio_to_float_tflite']:.2f}x): "
            "quantization metadata and conversion ops outweigh the weights saved on a model this small; ship the "
            "float model, or a mode that quantizes more of it")
