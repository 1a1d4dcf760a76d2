"""The one input path from serialized tf.Examples to a dense signature's inputs.

The Quantizer calibrates with it and the QuantizationEvaluator feeds both models with it, so the quantized model is
calibrated on exactly the tensors it is later evaluated on. Decoding is tfx_bsl's C++ ``ExamplesToRecordBatchDecoder``
(one call per batch, no per-example Python); the Arrow columns are reshaped to the signature's input shapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tensorflow.core.framework import tensor_shape_pb2, types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.python.framework import dtypes
from tensorflow.python.framework.tensor import TensorSpec
from tensorflow.python.saved_model import loader_impl, nested_structure_coder
from tfx_bsl.coders import example_coder


@dataclass(frozen=True)
class InputSpec:
    """One dense input of a signature: its name (the tf.Example feature it is read from), dtype and shape.

    ``shape`` includes the batch dimension first; ``None`` marks an unknown size.
    """

    name: str
    dtype: np.dtype
    shape: tuple[int | None, ...]

    @property
    def example_dims(self) -> tuple[int, ...]:
        """The shape of one example's value (the shape without the batch dimension)."""
        dims = self.shape[1:]
        if any(d is None for d in dims):
            raise ValueError(
                f"input {self.name!r} has shape {self.shape}: only the batch dimension may be unknown. "
                "Export a signature whose inputs have a fixed size per example (e.g. [None, 1])."
            )
        return tuple(int(d) for d in dims)


_DENSE_NUMERIC = {
    types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE, types_pb2.DT_HALF, types_pb2.DT_BFLOAT16,
    types_pb2.DT_INT8, types_pb2.DT_INT16, types_pb2.DT_INT32, types_pb2.DT_INT64,
    types_pb2.DT_UINT8, types_pb2.DT_UINT16, types_pb2.DT_UINT32, types_pb2.DT_UINT64,
}


def _is_dense_numeric(info: meta_graph_pb2.TensorInfo) -> bool:
    # Sparse and ragged inputs are composite tensors (several component tensors), not one dense array.
    return info.WhichOneof("encoding") == "name" and info.dtype in _DENSE_NUMERIC


def _shape(proto: tensor_shape_pb2.TensorShapeProto) -> tuple[int | None, ...]:
    return tuple(None if d.size < 0 else int(d.size) for d in proto.dim)


def _describe(signature: meta_graph_pb2.SignatureDef) -> str:
    inputs = ", ".join(
        f"{name}: {dtypes.as_dtype(info.dtype).name}{list(_shape(info.tensor_shape))}"
        + ("" if info.WhichOneof("encoding") == "name" else f" ({info.WhichOneof('encoding')})")
        for name, info in sorted(signature.inputs.items())
    )
    return f"{{{inputs}}}"


# The signature name the derived function travels under: the Keras model's own call (``training=False``) over its
# inputs, found in a stock export whose only signature parses serialized tf.Examples (``keras_call_specs``).
KERAS_CALL = "__call__"
# Where the function the Quantizer converts and the evaluator scores came from (``signature_source``).
NAMED, DENSE, DERIVED = "named", "dense", "derived"


@dataclass(frozen=True)
class KerasCall:
    """The restored Keras call of a SavedModel (``training=False``): its input structure (a dict of TensorSpecs by
    feature name, one TensorSpec, or a list of them) and the same inputs as ``InputSpec`` (sorted by name)."""

    structure: object
    specs: list[InputSpec]
    function_name: str  # the inference trace's name in the graph's function library

    @property
    def flat_names(self) -> list[str]:
        """The input names in ``tf.nest.flatten(structure)`` order (a dict flattens by sorted key)."""
        if isinstance(self.structure, dict):
            return sorted(self.structure)
        return [spec.name for spec in _flat_tensor_specs(self.structure)]


def _flat_tensor_specs(structure: object) -> list:
    if isinstance(structure, dict):
        return [structure[key] for key in sorted(structure)]
    if isinstance(structure, list | tuple):
        return [spec for item in structure for spec in _flat_tensor_specs(item)]
    return [structure]


def keras_call(saved_model_dir: str) -> KerasCall:
    """The restored Keras call of a SavedModel, read from its object graph (the proto only: nothing is run).

    ``tf.saved_model.save(model)`` and ``model.save(..., save_format='tf')`` both keep a Keras model's ``__call__``
    as concrete functions, one per ``training`` value; the one with ``training=False`` and no mask is taken.

    Raises:
      ValueError: no ``__call__`` on the SavedModel's root (not a Keras model), no inference trace, several traces
        with different inputs, or inputs that are not dense numeric tensors. The message names what was looked at.
    """
    saved_model = loader_impl.parse_saved_model(saved_model_dir)
    graph = saved_model.meta_graphs[0].object_graph_def
    children = {child.local_name: child.node_id for child in graph.nodes[0].children} if graph.nodes else {}
    if KERAS_CALL not in children or graph.nodes[children[KERAS_CALL]].WhichOneof("kind") != "function":
        raise ValueError(f"SavedModel {saved_model_dir} has no Keras call (no restorable __call__ function on its "
                         f"root object; root attributes: {sorted(children)[:12]})")
    traces = []
    for name in graph.nodes[children[KERAS_CALL]].function.concrete_functions:
        args, kwargs = nested_structure_coder.decode_proto(graph.concrete_functions[name].canonicalized_input_signature)
        inputs, rest = (args[0], args[1:]) if args else (None, ())
        training = rest[0] if rest else kwargs.get("training")
        mask = rest[1] if len(rest) > 1 else kwargs.get("mask")
        if inputs is not None and training in (False, None) and mask is None:
            traces.append((inputs, name))
    distinct = {repr(t) for t, _ in traces}
    if len(distinct) != 1:
        raise ValueError(f"SavedModel {saved_model_dir}: its Keras call has {len(distinct)} inference traces "
                         f"(training=False, no mask) with distinct inputs{': ' + '; '.join(sorted(distinct)) if distinct else ''}")
    structure, function_name = traces[0]
    flat = _flat_tensor_specs(structure)
    names = sorted(structure) if isinstance(structure, dict) else [spec.name for spec in flat]
    specs_by_name = dict(zip(names, [structure[n] for n in names] if isinstance(structure, dict) else flat,
                             strict=True))
    refused = [f"{n}: {spec!r}" for n, spec in specs_by_name.items()
               if not isinstance(spec, TensorSpec) or spec.dtype.as_datatype_enum not in _DENSE_NUMERIC]
    if refused or len(set(names)) != len(names):
        raise ValueError(f"SavedModel {saved_model_dir}: the Keras call's inputs are not dense numeric tensors with "
                         f"distinct names ({'; '.join(refused) or names})")
    specs = [InputSpec(name=n, dtype=np.dtype(spec.dtype.as_numpy_dtype),
                       shape=tuple(None if d is None else int(d) for d in spec.shape.as_list()))
             for n, spec in sorted(specs_by_name.items())]
    return KerasCall(structure=structure, specs=specs, function_name=function_name)


def signature_source(requested: str | None, resolved: str) -> str:
    """``named`` (``signature_name`` was given), ``dense`` (the one dense signature) or ``derived`` (the Keras
    call of a stock export): where the function that is converted and scored came from."""
    if resolved == KERAS_CALL:
        return DERIVED
    return NAMED if requested else DENSE


def dense_signature_specs(saved_model_dir: str, signature_name: str | None) -> tuple[str, list[InputSpec]]:
    """Resolves the function to convert and score of a SavedModel: its name and input specs (sorted by name).

    Reads only the SavedModel proto (no graph is loaded). With ``signature_name=None`` it is the only signature
    whose inputs are all dense numeric tensors; when there is none (a stock TFX export: ``serving_default`` parses
    serialized tf.Examples), the Keras model's own call (``keras_call``), named ``KERAS_CALL``. ``KERAS_CALL`` may
    also be asked for by name.

    Raises:
      ValueError: the signature is missing, takes a string/sparse input (e.g. serialized tf.Examples), or (when
        ``signature_name`` is None) several signatures qualify, or none does and no Keras call can be derived. The
        message lists every signature's inputs, what was looked at, and the fixes.
    """
    saved_model = loader_impl.parse_saved_model(saved_model_dir)
    signatures = {
        key: sig
        for key, sig in saved_model.meta_graphs[0].signature_def.items()
        if not key.startswith("__")  # __saved_model_init_op and friends are not callable signatures
    }
    listing = "; ".join(f"{key} {_describe(sig)}" for key, sig in sorted(signatures.items()))
    guidance = (
        "Export a signature that takes one dense numeric tensor per feature, named after the feature "
        "(e.g. a tf.function with input_signature {feature: tf.TensorSpec([None, 1], tf.float32, name=feature)}), "
        "and pass its name as signature_name."
    )
    if signature_name == KERAS_CALL:
        return KERAS_CALL, keras_call(saved_model_dir).specs
    if signature_name is None:
        dense = [key for key, sig in signatures.items() if sig.inputs and all(map(_is_dense_numeric, sig.inputs.values()))]
        if len(dense) > 1:
            raise ValueError(
                f"SavedModel {saved_model_dir}: signature_name was not given and several signatures "
                f"({', '.join(sorted(dense))}) take only dense numeric inputs. Signatures: {listing}. "
                "Pass signature_name to pick one."
            )
        if not dense:
            try:
                return KERAS_CALL, keras_call(saved_model_dir).specs
            except ValueError as e:
                raise ValueError(
                    f"SavedModel {saved_model_dir}: signature_name was not given, no signature takes only dense "
                    f"numeric inputs (signatures: {listing}), and the model's own call cannot be derived: {e}. "
                    f"Either {guidance[0].lower()}{guidance[1:]} Or save the Keras model itself "
                    "(tf.saved_model.save(model, ...) or model.save(..., save_format='tf'), as TFX's Trainer "
                    "examples do), so that its call over the transformed (or raw) features is kept."
                ) from e
        (signature_name,) = dense
    if signature_name not in signatures:
        raise ValueError(
            f"SavedModel {saved_model_dir} has no signature {signature_name!r}. Signatures: {listing}. "
            "Set signature_name to one of them."
        )
    signature = signatures[signature_name]
    refused = sorted(name for name, info in signature.inputs.items() if not _is_dense_numeric(info))
    if refused or not signature.inputs:
        strings = sorted(name for name in refused if signature.inputs[name].dtype == types_pb2.DT_STRING)
        # Measured: a lookup from a vocabulary file (what TFT writes) converts, then fails at invoke ("hashtable
        # need to be initialized"), and int8-only op sets leave string inputs unquantized: ids are the way in.
        string_fixes = (
            f"The string inputs {strings} cannot be fed to an int8 TFLite model: either move the lookup into "
            "Transform and export a signature over the transformed ids (wire transform_graph), or export a "
            "signature over integer ids. " if strings else ""
        )
        raise ValueError(
            f"SavedModel {saved_model_dir}: signature {signature_name!r} {_describe(signature)} has inputs that are "
            f"not dense numeric tensors ({', '.join(refused) or 'it has no inputs'}); a signature taking serialized "
            f"tf.Examples cannot be converted or calibrated. {string_fixes}Signatures: {listing}. {guidance}"
        )
    specs = [
        InputSpec(name=name, dtype=np.dtype(dtypes.as_dtype(info.dtype).as_numpy_dtype), shape=_shape(info.tensor_shape))
        for name, info in sorted(signature.inputs.items())
    ]
    return signature_name, specs


def serialized_example_signatures(saved_model_dir: str) -> list[str]:
    """The signatures taking one dense string tensor (serialized tf.Examples) and giving one output,
    ``serving_default`` first: the model's own serving path, which parses (and transforms) examples itself."""
    saved_model = loader_impl.parse_saved_model(saved_model_dir)
    names = [
        key for key, sig in saved_model.meta_graphs[0].signature_def.items()
        if not key.startswith("__") and len(sig.inputs) == 1 and len(sig.outputs) == 1
        and all(info.WhichOneof("encoding") == "name" and info.dtype == types_pb2.DT_STRING
                for info in sig.inputs.values())
    ]
    return sorted(names, key=lambda key: (key != "serving_default", key))


def decode_examples(serialized: Sequence[bytes], *, source: str) -> pa.RecordBatch:
    """Decodes serialized tf.Examples into an Arrow batch (tfx_bsl's C++ decoder, one call).

    tfx_bsl raises a bare ``RuntimeError`` (``Feature had wrong type ...``, ``Unable to parse example``) naming
    neither the data nor the fix: it becomes a ``ValueError`` that names ``source`` and says what to change.
    """
    try:
        return example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(list(serialized))
    except RuntimeError as error:
        detail = str(error).strip()
        fix = ("encode every feature with one type in all examples (float_list, int64_list or bytes_list), e.g. "
               "write a label as int64 everywhere" if "wrong type" in detail else
               "the records are not serialized tf.Examples (a corrupt file, or another payload format)")
        raise ValueError(f"{source}: cannot decode the examples ({detail}); {fix}") from error


def examples_to_inputs(serialized: Sequence[bytes], specs: Sequence[InputSpec], *, source: str) -> dict[str, np.ndarray]:
    """Decodes a batch of serialized tf.Examples into one ``[n, *dims]`` array per spec, cast to the spec's dtype.

    Args:
      serialized: the serialized tf.Examples (a list, or a numpy object array: an ``S`` array drops trailing NULs).
      specs: the signature's inputs, e.g. from ``dense_signature_specs``.
      source: where the examples come from (artifact and split), named in errors.

    Raises:
      ValueError: no examples; a feature is missing from some examples, has the wrong number of values, or is not
        numeric. The message names the feature, ``source`` and the fix.
    """
    if len(serialized) == 0:
        raise ValueError(f"{source}: no examples to decode; it must hold at least one tf.Example.")
    batch = decode_examples(serialized, source=source)
    n = batch.num_rows
    inputs = {}
    for spec in specs:
        dims = spec.example_dims
        per_example = int(np.prod(dims, dtype=np.int64))
        index = batch.schema.get_field_index(spec.name)
        if index < 0:
            raise ValueError(
                f"{source}: the examples have no feature {spec.name!r}, which the model's input needs. "
                f"Features present: {sorted(batch.schema.names)}. Feed examples that carry {spec.name!r} "
                "(or export a signature whose input names match the example features)."
            )
        column = batch.column(index)
        if column.null_count:
            raise ValueError(
                f"{source}: feature {spec.name!r} is missing from {column.null_count} of a batch of {n} examples; every "
                "example must carry it (impute missing values upstream, e.g. in ExampleGen or Transform)."
            )
        lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
        wrong = np.flatnonzero(lengths != per_example)
        if wrong.size:
            raise ValueError(
                f"{source}: feature {spec.name!r} must have {per_example} value(s) per example (input shape "
                f"{spec.shape}) but example #{wrong[0]} of a batch of {n} has {lengths[wrong[0]]} ({wrong.size} of the {n} "
                "differ). "
                "Fix the examples or export the signature with the matching input shape."
            )
        values = column.flatten()
        if not (pa.types.is_floating(values.type) or pa.types.is_integer(values.type)):
            raise ValueError(
                f"{source}: feature {spec.name!r} holds {values.type} values but the input is {spec.dtype}. "
                "Encode it as a float_list or int64_list (or map it to numbers in Transform)."
            )
        inputs[spec.name] = cast_to_input(values.to_numpy(zero_copy_only=False), spec, source).reshape((n, *dims))
    return inputs


def cast_to_input(values: np.ndarray, spec: InputSpec, source: str) -> np.ndarray:
    """``values`` as the input's dtype; float values for an integer input must be finite whole numbers.

    A cast would turn NaN into some integer and 1.9 into 1, silently: the non-finite check, which looks at float
    inputs, would never see them.
    """
    if np.issubdtype(spec.dtype, np.integer) and np.issubdtype(values.dtype, np.floating):
        bad = np.flatnonzero(~np.isfinite(values) | (values != np.round(values)))
        if bad.size:
            raise ValueError(
                f"{source}: input {spec.name!r} is {spec.dtype} but the examples hold {bad.size} value(s) that are "
                f"not whole numbers (e.g. {values[bad[0]]!r}); feed integer ids (an int64_list, or ids from "
                "Transform), or export the signature with a float input."
            )
    return values.astype(spec.dtype, copy=False)


def nonfinite_rows(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per input, a boolean mask of the examples holding a NaN or infinite value (inputs without any are left out).

    The int8 input quantization turns NaN into some integer and the quantized model answers as if nothing were
    wrong, so both the calibration and the evaluation count non-finite *inputs*, not only non-finite predictions.
    """
    rows = {}
    for name, values in inputs.items():
        if np.issubdtype(values.dtype, np.floating):
            bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
            if bad.any():
                rows[name] = bad
    return rows


def nonfinite_counts(inputs: dict[str, np.ndarray]) -> dict[str, int]:
    """Per input, how many examples hold a NaN or infinite value (inputs without any are left out)."""
    return {name: int(np.count_nonzero(bad)) for name, bad in nonfinite_rows(inputs).items()}
