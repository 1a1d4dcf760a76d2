"""Whether a SavedModel signature was trained quantization-aware: the fake-quant ops in the graph it runs.

tfmot's ``quantize_model`` / ``quantize_apply`` (``components/shared/qat.py``) wraps layers in quantizers that run
``FakeQuantWithMinMaxVars`` (per-tensor activations) and ``FakeQuantWithMinMaxVarsPerChannel`` (per-channel
weights) with the ranges learned in training; TFLite's converter reads those ranges instead of calibrating. The
Quantizer reads this to pick the QAT conversion and to refuse post-training modes on such a model; the QAT helper
reads it to check what it exported.

Only the SavedModel proto is read (no graph is loaded, no TensorFlow runtime started): the walk follows the
signature's output nodes into the function library, through every function an op calls (``f``, branches, bodies).
"""

from __future__ import annotations

import collections

from tensorflow.core.framework import attr_value_pb2, function_pb2
from tensorflow.python.saved_model import loader_impl

from quantgate.components.shared.signature_inputs import KERAS_CALL, keras_call

# The training-time quantization ops TFLite's converter recognises (lite.py's is_quantization_aware_trained_model),
# V4 being what tf.quantization.quantize_and_dequantize_v2 emits in TF 2.16.
FAKE_QUANT_OPS = frozenset({
    "FakeQuantWithMinMaxVars",
    "FakeQuantWithMinMaxVarsPerChannel",
    "FakeQuantWithMinMaxArgs",
    "QuantizeAndDequantizeV2",
    "QuantizeAndDequantizeV3",
    "QuantizeAndDequantizeV4",
})


def _called_functions(attr: attr_value_pb2.AttrValue) -> list[str]:
    if attr.HasField("func"):
        return [attr.func.name]
    return [f.name for f in attr.list.func]


def fake_quant_ops(saved_model_dir: str, signature_name: str) -> dict[str, int]:
    """The fake-quant ops (type -> count) in the graph that ``signature_name`` of the SavedModel runs.

    Empty for a float model. Each function reached is counted once, however often it is called.

    Raises:
      ValueError: the SavedModel has no such signature.
    """
    meta_graph = loader_impl.parse_saved_model(saved_model_dir).meta_graphs[0]
    if signature_name != KERAS_CALL and signature_name not in meta_graph.signature_def:
        raise ValueError(f"SavedModel {saved_model_dir} has no signature {signature_name!r}.")
    library: dict[str, function_pb2.FunctionDef] = {f.signature.name: f for f in meta_graph.graph_def.library.function}
    graph_nodes = {node.name: node for node in meta_graph.graph_def.node}
    counts: collections.Counter = collections.Counter()
    pending: list[str] = []
    if signature_name == KERAS_CALL:
        pending.append(keras_call(saved_model_dir).function_name)
    for info in meta_graph.signature_def[signature_name].outputs.values() if signature_name != KERAS_CALL else ():
        node = graph_nodes.get(info.name.split(":")[0])
        if node is not None:
            pending.extend(name for attr in node.attr.values() for name in _called_functions(attr))
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen or name not in library:
            continue
        seen.add(name)
        for node_def in library[name].node_def:
            if node_def.op in FAKE_QUANT_OPS:
                counts[node_def.op] += 1
            elif node_def.op in library:  # a function called by name as an op
                pending.append(node_def.op)
            for attr in node_def.attr.values():
                pending.extend(_called_functions(attr))
    return dict(sorted(counts.items()))
