"""Edge TPU / integer-only readiness of a .tflite: a static check of what the Edge TPU compiler requires.

The compiler (``edgetpu_compiler``) is closed source, frozen at its last release, and not installable here, so this
reads the flatbuffer against Coral's published model requirements instead ("TensorFlow models on the Edge TPU"):
every tensor 8-bit quantized, sizes constant at compile time, at most 3 dimensions larger than 1 (the innermost),
and only the ops of Coral's supported-op table. An op outside the table is where the compiler cuts the graph: it
and every op after it run on the CPU (the compiler partitions once). Per-op limits in that table (no fused
activation on pooling, padding only along x/y ...) are not checked, and neither is the on-chip memory.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from quantgate.components.shared.model_runners import TFLITE_SIGNATURE

# Coral's supported-op table, as TFLite builtin op names.
EDGE_TPU_OPS = frozenset({
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "EXPAND_DIMS", "FULLY_CONNECTED",
    "HARD_SWISH", "L2_NORMALIZATION", "LOGISTIC", "LSTM", "UNIDIRECTIONAL_SEQUENCE_LSTM", "MAXIMUM", "MAX_POOL_2D",
    "MEAN", "MINIMUM", "MUL", "PACK", "PAD", "PRELU", "QUANTIZE", "REDUCE_MAX", "REDUCE_MIN", "RELU", "RELU6",
    "RELU_N1_TO_1", "RESHAPE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "RSQRT", "SLICE", "SOFTMAX",
    "SPACE_TO_DEPTH", "SPLIT", "SQUARED_DIFFERENCE", "SQUEEZE", "STRIDED_SLICE", "SUB", "SUM", "TANH", "TRANSPOSE",
    "TRANSPOSE_CONV",
})
INTEGER_DTYPES = ("int8", "uint8")
MAX_LISTED = 20  # tensors named per reason; the counts are complete


def _dtype(details: dict[str, Any]) -> str:
    return np.dtype(details["dtype"]).name


def _shape(details: dict[str, Any]) -> list[int]:
    return [int(s) for s in details.get("shape_signature", details["shape"])]


def _listed(names: list[str]) -> str:
    return ", ".join(names[:MAX_LISTED]) + (f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "")


def edge_tpu_readiness(content: bytes, signature: str = TFLITE_SIGNATURE) -> dict[str, Any]:
    """Whether the model meets the Edge TPU's static requirements, and every reason it does not.

    Returns ``{"ready", "integer_only", "reasons", "io", "non_integer_ops", "cpu_fallback_ops",
    "cpu_from_op_index", "dynamic_tensors", "over_3d_tensors", "op_count", "checked_by"}``:
    ``integer_only`` is the int8 part alone (every op computes in int8/uint8 and the I/O is int8/uint8);
    ``non_integer_ops`` / ``cpu_fallback_ops`` name each op by ``op``, ``index`` and output ``tensor`` (with its
    ``dtype`` for the former); ``cpu_from_op_index`` is where the CPU partition would start (null when none).
    """
    interpreter = Interpreter(model_content=content)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    runner = interpreter.get_signature_runner(signature)
    io = {kind: {name: {"dtype": _dtype(d), "shape": _shape(d)} for name, d in sorted(details.items())}
          for kind, details in (("inputs", runner.get_input_details()), ("outputs", runner.get_output_details()))}
    ops = interpreter._get_ops_details()  # no public op listing; report.op_summary reads it too

    non_integer, unsupported = [], []
    for op in ops:
        outputs = [tensors[i] for i in op["outputs"] if i >= 0]
        name = outputs[0]["name"] if outputs else None
        if op["op_name"] not in EDGE_TPU_OPS:
            unsupported.append({"op": op["op_name"], "index": int(op["index"]), "tensor": name})
        wrong = [t for t in outputs if _dtype(t) not in INTEGER_DTYPES]
        if not outputs or wrong:
            non_integer.append({"op": op["op_name"], "index": int(op["index"]), "tensor": name,
                                "dtype": _dtype(wrong[0]) if wrong else None})
    dynamic = sorted(t["name"] for t in tensors.values() if any(s < 0 for s in _shape(t)))
    over_3d = sorted(t["name"] for t in tensors.values() if sum(s != 1 for s in _shape(t)[:-3]) > 0)
    non_integer_io = {f"{kind[:-1]} {name!r}": entry["dtype"] for kind, entries in io.items()
                      for name, entry in entries.items() if entry["dtype"] not in INTEGER_DTYPES}

    reasons = []
    if non_integer_io:
        reasons.append("model I/O is not int8/uint8: " + ", ".join(f"{k} is {v}" for k, v in non_integer_io.items())
                       + " (quantize with io_dtype='int8' or 'uint8')")
    if non_integer:
        reasons.append(f"{len(non_integer)} op(s) do not compute in int8/uint8: " + _listed(
            [f"{o['op']} (op {o['index']}, tensor {o['tensor']!r}, {o['dtype'] or 'no output'})" for o in non_integer]))
    if unsupported:
        reasons.append(f"{len(unsupported)} op(s) are not in the Edge TPU's supported-op table and would run on the "
                       f"CPU, with every op after op {unsupported[0]['index']}: "
                       + _listed([f"{o['op']} (op {o['index']}, tensor {o['tensor']!r})" for o in unsupported]))
    if dynamic:
        dynamic_io = [f"{kind[:-1]} {name!r} {entry['shape']}" for kind, entries in io.items()
                      for name, entry in entries.items() if any(d < 0 for d in entry["shape"])]
        reasons.append(f"{len(dynamic)} tensor(s) have a dynamic dimension (-1 in shape_signature; "
                       f"{_listed(dynamic_io) if dynamic_io else 'no model input or output'} among them), but the "
                       "Edge TPU needs sizes fixed at compile time: export the signature with a fixed batch size, e.g. "
                       "tf.TensorSpec([1, ...])")
    if over_3d:
        reasons.append(f"{len(over_3d)} tensor(s) have more than 3 dimensions larger than 1 (only the 3 innermost "
                       f"may be): {_listed(over_3d)}")
    return {
        "ready": not reasons,
        "integer_only": not non_integer_io and not non_integer,
        "reasons": reasons,
        "io": io,
        "non_integer_ops": non_integer,
        "cpu_fallback_ops": unsupported,
        "cpu_from_op_index": unsupported[0]["index"] if unsupported else None,
        "dynamic_tensors": dynamic,
        "over_3d_tensors": over_3d,
        "op_count": len(ops),
        "checked_by": "static check against Coral's published requirements (edgetpu_compiler not run)",
    }


def readiness_html(entry: dict[str, Any] | None) -> str:
    """The Edge TPU readiness as an HTML fragment for ``quantization_report.html``."""
    if entry is None:
        return "<p>Not checked.</p>"
    verdict = "ready" if entry["ready"] else "not ready"
    integer = "integer-only" if entry["integer_only"] else "not integer-only"
    reasons = "".join(f"<li>{html.escape(reason)}</li>" for reason in entry["reasons"])
    return (f"<p><b>{verdict}</b> ({integer}, {entry['op_count']} ops); {html.escape(entry['checked_by'])}: the "
            "Edge TPU compiler is closed, frozen and not installed here.</p>" + (f"<ul>{reasons}</ul>" if reasons else ""))
