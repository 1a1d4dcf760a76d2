"""Ops TFLite builtins lack: rewrite the ones with a builtin equivalent, name the rest, and the Select-ops opt-in.

``DenseBincount`` (Keras' ``CategoryEncoding`` one_hot / multi_hot / count, ``tf.math.bincount(axis=-1)``, TFX's
taxi example) has no TFLite builtin: the float conversion fails ("TF Select ops: DenseBincount") and the int8 one
kills the converter (SIGSEGV, measured with TF 2.16). ``rewrite_dense_bincount`` works on the saved graph alone (no
user Python code): it freezes the concrete function, replaces each ``DenseBincount`` node over integer ids by
``where(one_hot(ids, size, on=True, off=False), 1, 0)`` followed by a ``Max`` over the id axis (binary output: one /
multi-hot) or a ``Sum`` (counts, times ``weights`` when given), and imports the result into a new ``tf.function``
with the same input names and output structure. TFLite: ``ONE_HOT`` (bool), ``SELECT_V2``, ``REDUCE_MAX`` / ``SUM``.

Why a bool one-hot and a select, not ``tf.one_hot(ids, size)`` in float: in full int8 the converter gives a float
ONE_HOT's on/off constants and its output different quantization parameters, and TFLite's int8 ONE_HOT kernel
copies the raw on/off bytes, so the one-hot reads as garbage (measured: one-hot -> REDUCE_MAX -> CONCATENATION ->
FULLY_CONNECTED -> SOFTMAX, probabilities off by up to 0.79; SUM 0.64). SELECT_V2 shares one scale between its
values and its output, so 1 and 0 stay exact (off by 0.013, the int8 model's own error).

Semantics, measured with TF 2.16: ids >= size are dropped by ``DenseBincount`` and ``one_hot`` gives an all-zero
row for them, the same thing. Negative ids make ``DenseBincount`` fail ("Input 'in' must be non-negative!") where
``one_hot`` gives zeros: the rewritten function answers where the original refuses (Keras' CategoryEncoding also
asserts 0 <= id < num_tokens, an Assert TFLite drops anyway). ``check_rewrite_equal`` compares both functions on real
rows (the calibration set in the Quantizer).

Any other op the builtins lack is refused naming the op, its node and layer (``MissingBuiltinOps``), unless the
Quantizer's ``allow_select_ops`` opt-in keeps it as a TF Select ("Flex") op, which the report then lists
(``select_ops_section``): the app needs the Flex delegate.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import tensorflow as tf
from ai_edge_litert import schema_py_generated as tflite_schema
from tensorflow.core.framework import attr_value_pb2, graph_pb2, node_def_pb2, types_pb2
from tensorflow.lite.python import lite as tflite_lite
from tensorflow.lite.python.convert_phase import ConverterError
from tensorflow.python.eager import context as tf_context
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

DENSE_BINCOUNT = "DenseBincount"
REAL_DIV = "RealDiv"
# Ops a constant divisor may be computed with (a Keras Normalization's maximum(sqrt(variance), epsilon)).
_CONSTANT_FOLDABLE = frozenset({"Const", "Identity", "Cast", "Sqrt", "Maximum", "Minimum", "Add", "AddV2", "Sub",
                                "Mul", "Reshape", "Square", "Rsqrt", "Reciprocal", "RealDiv", "Neg", "Abs"})
# Name-scope segments TensorFlow adds around a model's own layers (call wrappers, function-input identities, the
# default import scope): not part of the layer a user named.
_WRAPPER_SEGMENT = re.compile(r"^(StatefulPartitionedCall(_\d+)?|PartitionedCall(_\d+)?|Func|import|input|_\d+)$")
# The scope tf.math.bincount opens around its own ops: the layer is the scope above it.
_OP_SCOPES = ("bincount",)
# How the Flex ops of a TFLite model are named (custom op code "Flex<TF op name>").
FLEX_PREFIX = "Flex"
# check_rewrite_equal: float outputs may differ by summation order in weighted counts, nothing else.
RTOL, ATOL = 1e-5, 1e-5
# Rows per call when comparing on a dynamic batch (bounds the memory of a large calibration set).
CHECK_BATCH_ROWS = 256
FLEX_DELEGATE_WARNING = (
    "the model keeps TF Select (Flex) op(s) {ops} (allow_select_ops=True): the app must link the Flex delegate "
    "(Android: org.tensorflow:tensorflow-lite-select-tf-ops; iOS: TensorFlowLiteSelectTfOps). ai-edge-litert's Python interpreter runs them only in a process that imported tensorflow (it finds "
    "TensorFlow's Flex delegate there); alone it fails with 'Select TensorFlow op(s) ... are not supported by this "
    "interpreter'. Microcontrollers and the Edge TPU cannot run them at all.")


def layer_of(node_name: str) -> str:
    """The layer (name scope) a graph node comes from: the node's scope without TensorFlow's call wrappers and
    without the scope of the op helper that made it (``model/enc/bincount/DenseBincount`` -> ``model/enc``)."""
    segments = [s for s in node_name.split("@", 1)[0].split("/") if not _WRAPPER_SEGMENT.match(s)]
    scope = segments[:-1]
    while scope and scope[-1] in _OP_SCOPES:
        scope.pop()
    return "/".join(scope) or node_name


# ---------------------------------------------------------------------------------------------------------------
# The DenseBincount rewrite
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BincountRewrite:
    """One ``DenseBincount`` node replaced by builtin-friendly ops."""

    node: str  # the node's name in the frozen graph
    layer: str  # ``layer_of(node)``
    output: str  # "multi_hot" (binary output: one- or multi-hot), "count" or "weighted_count"
    size: int | None  # the number of bins; None when it is computed at run time
    function: str | None  # the library function holding the node (a control-flow body); None: the main graph

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DivisionRewrite:
    """One division by a constant replaced by a multiplication by its reciprocal: TFLite's DIV has no int8 kernel
    (an un-adapted or adapted Keras ``Normalization``, as in TFX's taxi example, divides by its constant
    variance), MUL has."""

    node: str
    layer: str
    function: str | None = None  # always the main graph: divisors are evaluated there only
    output: str = "reciprocal_multiply"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Rewritten:
    """``rewrite_dense_bincount``'s result: the function to convert and what was replaced in it."""

    function: tf.types.experimental.ConcreteFunction
    rewrites: tuple[BincountRewrite | DivisionRewrite, ...]


class RewriteRefused(ValueError):
    """A ``DenseBincount`` the rewrite cannot replace faithfully (the message names node, layer and why)."""


def _graph_defs(graph_def: graph_pb2.GraphDef) -> Iterator[tuple[str | None, Any]]:
    yield None, graph_def.node
    for function in graph_def.library.function:
        yield function.signature.name, function.node_def


def has_dense_bincount(function: tf.types.experimental.ConcreteFunction) -> bool:
    """Whether the function, or a function it calls, runs ``DenseBincount`` (a loaded signature's body is a
    library function: its graph holds one call op)."""
    return any(node.op == DENSE_BINCOUNT for _, nodes in _graph_defs(function.graph.as_graph_def()) for node in nodes)


def _has_division(function: tf.types.experimental.ConcreteFunction) -> bool:
    return any(node.op == REAL_DIV for _, nodes in _graph_defs(function.graph.as_graph_def()) for node in nodes)


def _constant_subgraph(nodes_by_name: dict[str, node_def_pb2.NodeDef], ref: str) -> list[node_def_pb2.NodeDef] | None:
    """The nodes computing ``ref`` in a (main) GraphDef when they read only constants, else ``None``."""
    found: dict[str, node_def_pb2.NodeDef] = {}
    pending = [ref]
    while pending:
        name = pending.pop().split(":")[0]
        if name in found:
            continue
        node = nodes_by_name.get(name)
        if node is None or node.op not in _CONSTANT_FOLDABLE:
            return None
        # Control inputs (the inlined function's input_control_node NoOps) order execution; they carry no value.
        copy = node_def_pb2.NodeDef()
        copy.CopyFrom(node)
        del copy.input[:]
        copy.input.extend(i for i in node.input if not i.startswith("^"))
        found[name] = copy
        pending.extend(copy.input)
    return list(found.values())


def _rewrite_constant_divisions(graph_def: graph_pb2.GraphDef) -> list[DivisionRewrite]:
    """Replaces every main-graph ``RealDiv`` whose divisor is computed from constants alone by a ``Mul`` by the
    divisor's reciprocal (the divisor is evaluated once, here: it reads no input)."""
    nodes_by_name = {node.name: node for node in graph_def.node}
    rewrites = []
    scope = _Scope(graph_def.node, None)
    for node in [n for n in graph_def.node if n.op == REAL_DIV]:
        subgraph = _constant_subgraph(nodes_by_name, node.input[1])
        if subgraph is None:
            continue
        constants = graph_pb2.GraphDef(node=subgraph)
        with tf.Graph().as_default() as graph:
            tensor = node.input[1] if ":" in node.input[1] else f"{node.input[1]}:0"  # a bare name is an operation
            (divisor,) = tf.graph_util.import_graph_def(constants, return_elements=[tensor], name="")
            with tf.compat.v1.Session(graph=graph) as session:
                value = session.run(divisor)
        value = np.asarray(value)
        if value.dtype.kind != "f" or not np.all(np.isfinite(value)) or np.any(value == 0):
            continue
        reciprocal = _const(scope, f"{node.name}/reciprocal", (1.0 / value.astype(np.float64)).astype(value.dtype),
                            tf.as_dtype(value.dtype))
        node.op = "Mul"
        node.input[1] = reciprocal
        rewrites.append(DivisionRewrite(node=node.name, layer=layer_of(node.name)))
    return rewrites


class _Scope:
    """The nodes of the main graph or of one library function, with how an input string refers to an output
    there (GraphDef ``name:index``; FunctionDef ``name:output_arg:index``)."""

    def __init__(self, nodes: Any, function: str | None) -> None:
        self.nodes = nodes
        self.function = function
        self.by_name = {node.name: node for node in nodes}

    def ref(self, name: str, output_arg: str = "output") -> str:
        # Every op built here has one output; its op definition names it "output" (Const, OneHot, SelectV2,
        # ExpandDims, Max, Sum), "y" (Cast) or "z" (Mul).
        return f"{name}:{output_arg}:0" if self.function else name

    def producer(self, ref: str) -> node_def_pb2.NodeDef | None:
        return self.by_name.get(ref.lstrip("^").split(":")[0])

    def unique(self, name: str) -> str:
        candidate, i = name, 0
        while candidate in self.by_name:
            i += 1
            candidate = f"{name}_{i}"
        return candidate

    def add(self, node: node_def_pb2.NodeDef) -> str:
        node.name = self.unique(node.name)
        self.nodes.append(node)
        self.by_name[node.name] = node
        return node.name


def _const_value(scope: _Scope, ref: str) -> np.ndarray | None:
    node = scope.producer(ref)
    while node is not None and node.op in ("Identity", "Cast") and node.input:
        node = scope.producer(node.input[0])
    if node is None or node.op != "Const":
        return None
    return tf.make_ndarray(node.attr["value"].tensor)


def _bounds(scope: _Scope, ref: str, depth: int = 0) -> tuple[int | None, int | None]:
    """Static (lower, upper) bounds of an integer scalar: enough for tf.math.bincount's
    ``min(maxlength, max(minlength, reduce_max(ids) + 1))``, a constant when minlength == maxlength (Keras)."""
    value = _const_value(scope, ref)
    if value is not None and value.size == 1:
        return int(value.reshape(())), int(value.reshape(()))
    node = scope.producer(ref)
    if node is None or depth > 8:
        return None, None
    if node.op in ("Identity", "Cast"):
        return _bounds(scope, node.input[0], depth + 1)
    if node.op in ("Minimum", "Maximum"):
        (lo_a, hi_a), (lo_b, hi_b) = (_bounds(scope, r, depth + 1) for r in node.input[:2])
        if node.op == "Minimum":
            his = [h for h in (hi_a, hi_b) if h is not None]
            lo = min(lo_a, lo_b) if lo_a is not None and lo_b is not None else None
            return lo, (min(his) if his else None)
        los = [x for x in (lo_a, lo_b) if x is not None]
        hi = max(hi_a, hi_b) if hi_a is not None and hi_b is not None else None
        return (max(los) if los else None), hi
    return None, None


def _static_size(scope: _Scope, ref: str) -> int | None:
    lo, hi = _bounds(scope, ref)
    return lo if lo is not None and lo == hi else None


def _node(name: str, op: str, inputs: list[str], **attrs: attr_value_pb2.AttrValue) -> node_def_pb2.NodeDef:
    node = node_def_pb2.NodeDef(name=name, op=op, input=inputs)
    for key, value in attrs.items():
        node.attr[key].CopyFrom(value)
    return node


def _type(dtype: int) -> attr_value_pb2.AttrValue:
    return attr_value_pb2.AttrValue(type=dtype)


def _const(scope: _Scope, name: str, value: np.ndarray | int | float, dtype: tf.DType) -> str:
    node = _node(name, "Const", [], dtype=_type(dtype.as_datatype_enum),
                 value=attr_value_pb2.AttrValue(tensor=tf.make_tensor_proto(value, dtype=dtype)))
    return scope.ref(scope.add(node))


def _weights_kind(scope: _Scope, node: node_def_pb2.NodeDef, weights_shape: tf.TensorShape | None) -> str:
    """``"none"`` for tf.math.bincount's empty placeholder weights, ``"given"`` for weights shaped as the ids;
    refuses weights of unknown size (which could be either)."""
    value = _const_value(scope, node.input[2])
    if value is not None:
        return "none" if value.size == 0 else "given"
    if weights_shape is not None and weights_shape.num_elements() == 0:
        return "none"
    if weights_shape is not None and weights_shape.rank is not None and weights_shape.rank >= 1 and \
            weights_shape.num_elements() != 0:
        first = weights_shape[0]
        if first is None or first > 0:
            return "given"
    raise RewriteRefused(
        f"DenseBincount node {node.name!r} (layer {layer_of(node.name)!r}) has weights of unknown size "
        f"{weights_shape}: they may be tf.math.bincount's empty placeholder or real count weights, and the two rewrite "
        "differently. Give the weights a static shape, or convert with allow_select_ops=True.")


def _rewrite_node(scope: _Scope, node: node_def_pb2.NodeDef, weights_shape: tf.TensorShape | None) -> BincountRewrite:
    """Replaces ``node`` in place: the last new op takes its name, so consumers (``name`` / ``name:output:0``: the
    output arg of DenseBincount, Max and Sum is ``output`` alike) need no change."""
    ids, size_ref, weights = node.input[:3]
    controls = [i for i in node.input[3:] if i.startswith("^")]
    out_type, id_type = node.attr["T"].type, node.attr["Tidx"].type
    binary = node.attr["binary_output"].b
    # Binary output ignores the weights (DenseBincount writes 1 wherever an id occurs, measured).
    weighted = not binary and _weights_kind(scope, node, weights_shape) == "given"
    base = node.name
    size = _static_size(scope, size_ref)
    if size is not None:
        depth = _const(scope, f"{base}/one_hot_depth", size, tf.int32)
    elif id_type == types_pb2.DT_INT32:
        depth = size_ref
    else:  # OneHot's depth is int32; tf.math.bincount computes the size in the ids' dtype
        depth = scope.ref(scope.add(_node(f"{base}/one_hot_depth", "Cast", [size_ref], SrcT=_type(id_type),
                                          DstT=_type(types_pb2.DT_INT32), Truncate=attr_value_pb2.AttrValue(b=False))),
                          "y")
    dtype = tf.dtypes.as_dtype(out_type)
    on, off = _const(scope, f"{base}/one_hot_on", True, tf.bool), _const(scope, f"{base}/one_hot_off", False, tf.bool)
    # One row per id, all False for an id outside [0, size): DenseBincount drops ids >= size too.
    hot = scope.ref(scope.add(_node(f"{base}/one_hot", "OneHot", [ids, depth, on, off], T=_type(types_pb2.DT_BOOL),
                                    TI=_type(id_type), axis=attr_value_pb2.AttrValue(i=-1))))
    # 1 / 0 in the output dtype through a select (see the module docstring: int8 keeps them exact so).
    one, zero = _const(scope, f"{base}/one", 1, dtype), _const(scope, f"{base}/zero", 0, dtype)
    encoded = scope.ref(scope.add(_node(f"{base}/one_hot_values", "SelectV2", [hot, one, zero], T=_type(out_type))))
    if weighted:
        expand_axis = _const(scope, f"{base}/weights_axis", -1, tf.int32)
        expanded = scope.ref(scope.add(_node(f"{base}/weights_expanded", "ExpandDims", [weights, expand_axis],
                                             T=_type(out_type), Tdim=_type(types_pb2.DT_INT32))))
        encoded = scope.ref(scope.add(_node(f"{base}/weighted", "Mul", [encoded, expanded], T=_type(out_type))), "z")
    # The id axis is the one before the bins, for rank-1 ids ([n] -> [size]) and rank-2 ones ([b, n] -> [b, size]).
    axis = _const(scope, f"{base}/id_axis", -2, tf.int32)
    node.Clear()
    node.name, node.op = base, "Max" if binary else "Sum"
    node.input.extend([encoded, axis, *controls])
    for key, value in {"T": _type(out_type), "Tidx": _type(types_pb2.DT_INT32),
                       "keep_dims": attr_value_pb2.AttrValue(b=False)}.items():
        node.attr[key].CopyFrom(value)
    output = "multi_hot" if binary else "weighted_count" if weighted else "count"
    return BincountRewrite(node=base, layer=layer_of(base), output=output, size=size, function=scope.function)


# Makes the library function names of each rewritten graph unique in the process (see _rename_library).
_RENAMES = itertools.count()


def _func_attrs(node: node_def_pb2.NodeDef) -> Iterator[attr_value_pb2.NameAttrList]:
    for value in node.attr.values():
        if value.HasField("func"):
            yield value.func
        yield from value.list.func


def _rename_library(graph_def: graph_pb2.GraphDef) -> None:
    """Gives every library function a new name, and every reference to it (If / While branches, calls) too.

    Importing a function under a name the eager context already holds with another body fails ("Attempting to add
    a duplicate function ... definitions differ"): the original function's control-flow bodies are there, and the
    rewritten ones (or their callers) differ from them."""
    if not graph_def.library.function:
        return
    suffix = f"_builtins{next(_RENAMES)}"
    renamed = {f.signature.name: f.signature.name + suffix for f in graph_def.library.function}
    nodes = [*graph_def.node, *(n for f in graph_def.library.function for n in f.node_def)]
    for node in nodes:
        if node.op in renamed:  # a function called as an op
            node.op = renamed[node.op]
        for func in _func_attrs(node):
            func.name = renamed.get(func.name, func.name)
    for function in graph_def.library.function:
        function.signature.name = renamed[function.signature.name]
    for gradient in graph_def.library.gradient:
        gradient.function_name = renamed.get(gradient.function_name, gradient.function_name)


def _input_names(function: tf.types.experimental.ConcreteFunction) -> list[str]:
    """The function's input names in its flat input order: a signature's keyword names (sorted, as TensorFlow
    flattens them), else its TensorSpecs' names."""
    args, kwargs = function.structured_input_signature
    if kwargs:
        return sorted(kwargs)
    return [spec.name for spec in tf.nest.flatten(args) if isinstance(spec, tf.TensorSpec)]


def _input_specs(function: tf.types.experimental.ConcreteFunction) -> list[tf.TensorSpec]:
    return [spec for spec in tf.nest.flatten(function.structured_input_signature) if isinstance(spec, tf.TensorSpec)]


def rewrite_dense_bincount(function: tf.types.experimental.ConcreteFunction) -> Rewritten:
    """An equivalent of ``function`` with every ``DenseBincount`` replaced by ``OneHot`` + ``SelectV2`` + ``Max`` /
    ``Sum``.

    The same function object comes back (no rewrites) when it runs no ``DenseBincount``. Otherwise the result is a
    new concrete function over frozen weights (variables become constants, as the converter would make them) whose
    inputs have the original names, dtypes and shapes, taken positionally (a signature's keyword inputs in sorted
    order, which is also how they are passed by keyword), and whose outputs have the original structure.

    Raises:
      RewriteRefused: a ``DenseBincount`` whose weights have an unknown size, naming node and layer.
    """
    if not has_dense_bincount(function) and not _has_division(function):
        return Rewritten(function, ())
    # As the converter freezes: control flow stays functional (If / While bodies are library functions).
    frozen = convert_variables_to_constants_v2(function, lower_control_flow=False)
    graph_def = frozen.graph.as_graph_def()
    rewrites: list[BincountRewrite | DivisionRewrite] = list(_rewrite_constant_divisions(graph_def))
    for name, nodes in _graph_defs(graph_def):
        scope = _Scope(nodes, name)
        for node in [n for n in nodes if n.op == DENSE_BINCOUNT]:
            weights_shape = None
            if name is None:  # the main graph's static shapes are known; a library function's are not
                weights_shape = frozen.graph.get_operation_by_name(node.name).inputs[2].shape
            rewrites.append(_rewrite_node(scope, node, weights_shape))
    if not rewrites:
        return Rewritten(function, ())
    _rename_library(graph_def)
    names, specs = _input_names(function), _input_specs(function)
    # A concrete function's inputs are its flat arguments, then its captures (tables; variables are constants now).
    inputs, captured = list(frozen.inputs[:len(specs)]), list(frozen.inputs[len(specs):])
    if [t.dtype for t in inputs] != [s.dtype for s in specs] or len(captured) != len(frozen.captured_inputs):
        raise RewriteRefused(f"cannot map the inputs of {function.name} ({names}) onto its frozen graph's "
                             f"placeholders {[t.name for t in frozen.inputs]}; convert with allow_select_ops=True.")
    outputs = [t.name for t in frozen.outputs]
    structure = function.structured_outputs

    def rewritten(*args: tf.Tensor) -> Any:
        input_map = {t.name: arg for t, arg in zip(inputs, args, strict=True)}
        # Resources the frozen graph still captures (lookup tables) map onto the same objects.
        input_map.update({t.name: c for t, c in zip(captured, frozen.captured_inputs, strict=True)})
        flat = tf.graph_util.import_graph_def(graph_def, input_map=input_map, return_elements=outputs, name="")
        return tf.nest.pack_sequence_as(structure, flat)

    # import_graph_def puts the library functions (control-flow bodies) in the traced graph only; calling the
    # function eagerly needs them in the context too (saving it takes them from the graph).
    for function_def in graph_def.library.function:
        tf_context.context().add_function_def(function_def)

    signature = [tf.TensorSpec(spec.shape, spec.dtype, name=name) for spec, name in zip(specs, names, strict=True)]
    concrete = tf.function(rewritten, input_signature=signature).get_concrete_function()
    for rewrite in rewrites:
        if isinstance(rewrite, DivisionRewrite):
            logging.info("builtin rewrite: RealDiv %r (layer %r) by a constant -> MUL by its reciprocal",
                         rewrite.node, rewrite.layer)
        else:
            logging.info("builtin rewrite: DenseBincount %r (layer %r) -> ONE_HOT + %s, size %s", rewrite.node,
                         rewrite.layer, "REDUCE_MAX" if rewrite.output == "multi_hot" else "SUM", rewrite.size)
    return Rewritten(concrete, tuple(rewrites))


# What this process rewrote, by original function, with the SavedModel it came from: engines report and check the
# rewrites of the model they convert (a process may convert several models: a test session, a warm child).
_DONE: dict[tf.types.experimental.ConcreteFunction, Rewritten] = {}
_SOURCES: dict[tf.types.experimental.ConcreteFunction, str | None] = {}


def rewrite_for_builtins(function: tf.types.experimental.ConcreteFunction,
                         source: str | None = None) -> tf.types.experimental.ConcreteFunction:
    """``rewrite_dense_bincount(function).function``, once per function object, recorded (with ``source``, the
    SavedModel's directory) for ``rewrites_done`` and ``check_rewrites``."""
    if function not in _DONE:
        _DONE[function] = rewrite_dense_bincount(function)
        _SOURCES[function] = source
    return _DONE[function].function


def _done_for(source: str | None) -> list[tuple[tf.types.experimental.ConcreteFunction, Rewritten]]:
    return [(function, done) for function, done in _DONE.items() if source is None or _SOURCES[function] == source]


def rewrites_done(source: str | None = None) -> list[dict[str, Any]]:
    """The rewrites ``rewrite_for_builtins`` made in this process (of the SavedModel ``source`` when given), each
    node once (JSON-ready)."""
    seen: dict[tuple[str, str | None], dict[str, Any]] = {}
    for _, done in _done_for(source):
        for rewrite in done.rewrites:
            seen.setdefault((rewrite.node, rewrite.function), rewrite.to_json())
    return list(seen.values())


# ---------------------------------------------------------------------------------------------------------------
# Checking a rewrite on real rows
# ---------------------------------------------------------------------------------------------------------------


def _fixed_batch(function: tf.types.experimental.ConcreteFunction) -> int | None:
    batches = {spec.shape[0] for spec in _input_specs(function) if spec.shape.rank}
    return batches.pop() if len(batches) == 1 and None not in batches else None


def _flat_outputs(result: Any, path: str = "") -> dict[str, Any]:
    """A function's (nested) outputs by path: dict keys and list indices joined with '/'."""
    if isinstance(result, Mapping):
        items: Any = sorted(result.items())
    elif isinstance(result, list | tuple):
        items = enumerate(result)
    else:
        return {path or "output": result}
    flat = {}
    for key, value in items:
        flat.update(_flat_outputs(value, f"{path}/{key}" if path else str(key)))
    return flat


def run_function(function: tf.types.experimental.ConcreteFunction,
                 inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Runs a concrete function on numpy inputs by name (all rows; in slices of its fixed batch size, if it has
    one); returns its flattened outputs by path (``out``, ``output_0``, ``0/1`` ...)."""
    names, specs = _input_names(function), _input_specs(function)
    missing = sorted(set(names) - set(inputs))
    if missing:
        raise ValueError(f"inputs lack {missing} of {function.name}'s inputs {names}")
    n = len(np.asarray(inputs[names[0]])) if names else 0
    step = _fixed_batch(function) or CHECK_BATCH_ROWS
    keyword = bool(function.structured_input_signature[1])
    parts: dict[str, list[np.ndarray]] = collections.defaultdict(list)
    for start in range(0, n, step):
        feed = [tf.constant(np.asarray(inputs[name])[start:start + step], dtype=spec.dtype)
                for name, spec in zip(names, specs, strict=True)]
        result = function(**dict(zip(names, feed, strict=True))) if keyword else function(*feed)
        for path, value in _flat_outputs(result).items():
            parts[path].append(np.asarray(value))
    return {path: np.concatenate(values) if values[0].ndim else np.stack(values) for path, values in parts.items()}


def _op_error_reason(error: tf.errors.OpError) -> str:
    # A graph's error message is "Graph execution error:", where the node was defined (a Python traceback), the
    # reason, then the node: keep the reason.
    noise = ("Graph execution error", "Detected at node", "File ", "[[", "{{")
    lines = [line.strip() for line in error.message.splitlines()]
    reasons = [line for line in lines if line and not line.startswith(noise)]
    return reasons[-1] if reasons else error.message


def check_rewrite_equal(original_fn: tf.types.experimental.ConcreteFunction,
                        rewritten_fn: tf.types.experimental.ConcreteFunction,
                        inputs: dict[str, np.ndarray], *, rtol: float = RTOL, atol: float = ATOL) -> int:
    """Runs both functions on ``inputs`` (e.g. the calibration rows) and returns the number of rows compared.

    Float outputs must agree within ``rtol`` / ``atol`` (a weighted count may sum in another order), the rest
    exactly.

    Raises:
      ValueError: the outputs differ (naming the output, the first differing row, both values and the largest
        difference), differ in structure, or the original function fails on the rows (e.g. a negative id, which
        ``DenseBincount`` refuses and the rewrite maps to zeros).
    """
    try:
        want = run_function(original_fn, inputs)
    except tf.errors.OpError as error:
        raise ValueError(f"builtin rewrite check: the original function fails on these rows, so the rewritten one "
                         f"cannot be checked against it: {_op_error_reason(error)}") from error
    got = run_function(rewritten_fn, inputs)
    if sorted(want) != sorted(got):
        raise ValueError(f"builtin rewrite check: the rewritten function's outputs {sorted(got)} are not the "
                         f"original's {sorted(want)}")
    rows = 0
    for name in sorted(want):
        a, b = want[name], got[name]
        rows = max(rows, len(a) if a.ndim else 1)
        if a.shape != b.shape or a.dtype != b.dtype:
            raise ValueError(f"builtin rewrite check: output {name!r} is {b.dtype}{list(b.shape)} after the "
                             f"rewrite, {a.dtype}{list(a.shape)} before")
        close = np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True) if a.dtype.kind in "fc" else a == b
        if not close.all():
            bad = np.argwhere(~close)[0]
            diff = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
            row = int(bad[0]) if a.ndim else 0
            raise ValueError(
                f"builtin rewrite check: output {name!r} differs after replacing DenseBincount by ONE_HOT on "
                f"{int((~close).sum())} value(s) of {a.size}; first at index {bad.tolist()} (row {row}): "
                f"{a[tuple(bad)]!r} before, {b[tuple(bad)]!r} after (largest difference {diff:.3g}). Do not use this "
                "conversion; convert with allow_select_ops=True to keep DenseBincount as a Flex op, and report it.")
    return rows


def check_rewrites(inputs: dict[str, np.ndarray] | None, source: str | None = None) -> int:
    """``check_rewrite_equal`` for every function ``rewrite_for_builtins`` rewrote in this process (of the
    SavedModel ``source`` when given); returns the rows checked (0 without inputs or without rewrites)."""
    if not inputs:
        return 0
    rows = 0
    for original, done in _done_for(source):
        if done.rewrites:
            rows = max(rows, check_rewrite_equal(original, done.function, inputs))
    return rows


# ---------------------------------------------------------------------------------------------------------------
# Ops the builtins lack, and the Select-ops opt-in
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MissingOp:
    """A TF op of the function that TFLite builtins lack, with the nodes running it and their layers."""

    op: str
    nodes: tuple[str, ...]
    layers: tuple[str, ...]


class MissingBuiltinOps(ValueError):
    """The conversion needs ops TFLite builtins lack (``missing``); the message names ops, layers and fixes."""

    def __init__(self, message: str, missing: list[MissingOp]) -> None:
        super().__init__(message)
        self.missing = missing


_OP_IN_MESSAGE = re.compile(r"'tf\.(\w+)' op is neither a custom op nor a flex op")
_SELECT_LINE = re.compile(r"TF Select ops: ([\w, ]+)")


def missing_ops_from_error(error: Exception) -> list[MissingOp]:
    """The ops a failed builtins-only conversion names, with the node and layer of each occurrence: from the
    converter's structured errors (``ConverterError.errors``: op name and call-site locations), else from its text."""
    nodes: dict[str, list[str]] = collections.defaultdict(list)
    for data in getattr(error, "errors", None) or []:
        op = data.operator.name.removeprefix("tf.")
        if not op or data.error_code not in (data.ERROR_NEEDS_FLEX_OPS, data.ERROR_NEEDS_CUSTOM_OPS):
            continue
        # The innermost named call site is the node (``model/enc/bincount/DenseBincount@__inference_...``).
        name = next((call.name.split("@", 1)[0] for call in data.location.call if "@" in call.name), "")
        if name and name not in nodes[op]:
            nodes[op].append(name)
        nodes.setdefault(op, [])
    text = str(error)
    for op in _OP_IN_MESSAGE.findall(text):
        nodes.setdefault(op, [])
    for line in _SELECT_LINE.findall(text):
        for op in (o.strip() for o in line.split(",")):
            if op:
                nodes.setdefault(op, [])
    return [MissingOp(op, tuple(found), tuple(dict.fromkeys(layer_of(n) for n in found)))
            for op, found in sorted(nodes.items())]


def refusal_message(missing: list[MissingOp], where: str) -> str:
    """Names each op, its layer(s) and node(s), and the two fixes."""
    listed = "; ".join(
        f"{m.op} (layer {', '.join(repr(layer) for layer in m.layers)}; node {', '.join(repr(n) for n in m.nodes)})"
        if m.nodes else f"{m.op} (node not located by the converter)" for m in missing)
    return (f"Quantizer: {where} needs TensorFlow op(s) that TFLite builtins lack: {listed}. Change those layers to "
            "ops TFLite has (https://www.tensorflow.org/lite/guide/ops_compatibility), or set the Quantizer's "
            "allow_select_ops=True to keep them as TF Select (Flex) ops: the report lists them and the app then "
            "needs the Flex delegate.")


def missing_builtin_ops(function: tf.types.experimental.ConcreteFunction) -> list[MissingOp]:
    """The ops of ``function`` (as given: rewrite it first) that a float conversion to TFLite builtins lacks;
    empty when it converts. Costs one float conversion."""
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        converter.convert()
    except ConverterError as error:
        return missing_ops_from_error(error)
    return []


# The Quantizer's allow_select_ops for the conversion this process runs: the float reference conversions
# (float_reference) know only the SavedModel and signature, not the options, so the engines set it first.
_select_ops_allowed = False


def set_select_ops_allowed(allowed: bool) -> None:
    """Lets every converter ``tflite_converter`` makes from now on in this process keep TF Select ops (or not)."""
    global _select_ops_allowed
    _select_ops_allowed = bool(allowed)


def select_ops_allowed() -> bool:
    """Whether converters made in this process may keep TF Select ops (``set_select_ops_allowed``)."""
    return _select_ops_allowed


@contextlib.contextmanager
def allowing_select_ops(allowed: bool) -> Iterator[None]:
    """``set_select_ops_allowed`` for a block, restored afterwards."""
    before = select_ops_allowed()
    set_select_ops_allowed(allowed)
    try:
        yield
    finally:
        set_select_ops_allowed(before)


class BuiltinsConverter(tflite_lite.TFLiteFrozenGraphConverterV2):
    """TFLiteConverter on concrete functions (what ``from_concrete_functions`` returns) whose ``convert`` turns
    "ops the builtins lack" into ``MissingBuiltinOps``; the converter's own text stays at the end of the message
    (callers match on it, e.g. the fixed-batch retry of recurrent layers)."""

    def convert(self) -> bytes:
        try:
            return super().convert()
        except ConverterError as error:
            missing = missing_ops_from_error(error)
            if not missing or tf.lite.OpsSet.SELECT_TF_OPS in set(self.target_spec.supported_ops):
                raise
            # The converter knows no signature name: the input names identify the function.
            where = "the converted function (inputs " + ", ".join(
                name for function in self._funcs for name in _input_names(function)) + ")"
            raise MissingBuiltinOps(f"{refusal_message(missing, where)} Converter error: {error}", missing) from error


def tflite_converter(function: tf.types.experimental.ConcreteFunction, trackable: Any = None,
                     source: str | None = None) -> tf.lite.TFLiteConverter:
    """``TFLiteConverter.from_concrete_functions([function], trackable)`` on ``rewrite_for_builtins(function,
    source)``, keeping TF Select ops only when ``select_ops_allowed()``; its ``convert`` raises
    ``MissingBuiltinOps``."""
    converter = BuiltinsConverter([rewrite_for_builtins(function, source)], trackable)
    if select_ops_allowed():
        converter.target_spec.supported_ops = {tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS}
    return converter


def flex_ops(content: bytes) -> list[str]:
    """The TF ops a TFLite model keeps as Flex ops (custom op codes ``Flex<op>``), sorted; read from the
    flatbuffer, so it works where no interpreter with the Flex delegate is at hand."""
    model = tflite_schema.Model.GetRootAs(content, 0)
    found = set()
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i).CustomCode()
        name = code.decode() if code else ""
        if name.startswith(FLEX_PREFIX):
            found.add(name[len(FLEX_PREFIX):])
    return sorted(found)


def refuse_select_ops(content: bytes, allowed: bool, where: str) -> None:
    """Refuses a converted model holding Flex ops without the opt-in: a float conversion made earlier in this
    process under the opt-in (float_reference caches them per SavedModel and signature) must not pass silently.

    Raises:
      MissingBuiltinOps: naming the ops (their nodes are no longer known in a converted model) and the fixes.
    """
    ops = flex_ops(content)
    if ops and not allowed:
        missing = [MissingOp(op, (), ()) for op in ops]
        raise MissingBuiltinOps(refusal_message(missing, where), missing)


def select_ops_section(content: bytes, allowed: bool) -> dict[str, Any]:
    """The report's ``allow_select_ops`` / ``select_ops`` entries and the Flex-delegate warning when any."""
    ops = flex_ops(content)
    warnings = [FLEX_DELEGATE_WARNING.format(ops=", ".join(ops))] if ops else []
    return {"allow_select_ops": bool(allowed), "select_ops": ops, "warnings": warnings}
