"""Batched model runners with one ``predict(inputs) -> outputs`` for the float SavedModel and the TFLite model.

Both take the dict that ``signature_inputs.examples_to_inputs`` makes (float arrays, one per feature) and return float32
outputs, so callers compare the two models without caring how either is quantized.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from tfx.dsl.io import fileio

from quantgate.components.shared.signature_inputs import (
    KERAS_CALL,
    InputSpec,
    dense_signature_specs,
    keras_call,
)

TFLITE_SIGNATURE = "serving_default"
_QUANTIZED_DTYPES = (np.int8, np.uint8, np.int16)


class InputQuantizer:
    """``clip(round(x / scale) + zero_point)`` to ``dtype``'s range, for one input tensor, its constants made once.

    Rounds to nearest (half to even), unlike TFMA's TFLite extractor, which truncates (a bias of up to one step per
    input). float32 throughout, as TFLite's own QUANTIZE op computes. A one-value array (a batch-1 latency call)
    takes a scalar path into a preallocated buffer: the whole-array path is five NumPy calls, about ten times the
    model's own kernel time on a small model.

    NaN has no integer value: both paths give it the zero point (the real value 0) instead of letting it reach the
    integer cast, where the scalar path raised NumPy's bare ``Error setting single item of array`` and the array
    path gave an unspecified integer. Callers that must not score such rows mask them (``nonfinite_rows``); +/-inf
    clip to the range's ends like any value out of range.
    """

    def __init__(self, scale: float, zero_point: int, dtype: np.dtype) -> None:
        if not scale > 0:
            raise ValueError(f"quantization scale must be > 0, got {scale}")
        info = np.iinfo(dtype)
        self._scale, self._zero_point = np.float32(scale), np.float32(zero_point)
        self._min, self._max = np.float32(info.min), np.float32(info.max)
        self._dtype = np.dtype(dtype)
        self._single: dict[tuple[int, ...], np.ndarray] = {}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.size == 1:
            value = np.rint(x.flat[0] / self._scale) + self._zero_point  # np.float32 arithmetic
            out = self._single.get(x.shape)
            if out is None:
                out = self._single[x.shape] = np.empty(x.shape, self._dtype)
            # NaN compares false both ways, so min/max would pass it through to the integer buffer.
            out.flat[0] = self._zero_point if value != value else min(max(value, self._min), self._max)
            return out
        q = np.divide(x, self._scale, dtype=np.float32)
        np.rint(q, out=q)
        q += self._zero_point
        np.maximum(q, self._min, out=q)  # np.clip costs several times these two on small arrays
        np.minimum(q, self._max, out=q)  # both propagate NaN: it is replaced below, before the integer cast
        nan = np.isnan(q)
        if nan.any():
            q[nan] = self._zero_point
        return q.astype(self._dtype)


def quantize_array(x: np.ndarray, scale: float, zero_point: int, dtype: np.dtype) -> np.ndarray:
    """Quantizes a whole array with ``InputQuantizer`` (see there)."""
    return InputQuantizer(scale, zero_point, dtype)(x)


def _per_tensor_params(details: dict) -> tuple[float, int]:
    scale, zero_point = details["quantization"]
    return float(scale), int(zero_point)


def _check_quantization(*tensors: dict[str, dict]) -> None:
    for details in tensors:
        for name, detail in details.items():
            scale, _ = _per_tensor_params(detail)
            if not (np.isfinite(scale) and scale >= 0):
                raise ValueError(f"tensor {name!r} has quantization scale {scale}")


def _check_inputs(model: str, expected: Iterable[str], inputs: Mapping[str, np.ndarray]) -> None:
    missing = sorted(set(expected) - set(inputs))
    if missing:
        raise ValueError(f"{model}: inputs {missing} are missing; the model takes {sorted(expected)}")


class TFLiteRunner:
    """Runs a TFLite model's ``serving_default`` signature on whole batches.

    Float inputs meant for int8/uint8/int16 input tensors are quantized with the tensor's scale and zero point
    (vectorized, round-and-clip); quantized outputs are dequantized to float32. Integer tensors without
    quantization parameters (scale 0) pass through unchanged.
    """

    def __init__(self, model_path: str, num_threads: int | None = None, content: bytes | None = None) -> None:
        """Loads ``model_path``, or ``content`` (its bytes, already read: hashed or checked by the caller).

        Raises ``ValueError`` when LiteRT cannot load or allocate the model, it has no ``serving_default``
        signature, or its tensors carry damaged names or quantization parameters.
        """
        try:
            if content is None:
                with fileio.open(model_path, "rb") as f:
                    content = f.read()
            self._interpreter = Interpreter(model_content=content, num_threads=num_threads)
            self._interpreter.allocate_tensors()
            runner = self._interpreter.get_signature_runner(TFLITE_SIGNATURE)
            # Read here, inside the try: a damaged file can load and still hold names that are not UTF-8.
            self._input_details = runner.get_input_details()
            self._output_details = runner.get_output_details()
            _check_quantization(self._input_details, self._output_details)
            # One signature is the first subgraph: it is driven through the interpreter itself, which re-allocates
            # only when the batch shape changes (the signature runner resizes and allocates on every call). The
            # runner is then dropped: the interpreter refuses to resize while anything else holds its wrapper.
            self._single_signature = len(self._interpreter.get_signature_list()) == 1
            self._runner = None if self._single_signature else runner
            del runner
            self._shapes: tuple[tuple[int, ...], ...] | None = None
            # scale 0 marks an integer input that is not quantized: its values go in as they are.
            self._quantizers = {name: InputQuantizer(*_per_tensor_params(d), d["dtype"])
                                for name, d in self._input_details.items()
                                if d["dtype"] in _QUANTIZED_DTYPES and _per_tensor_params(d)[0]}
            # A model converted with a fixed batch (a recurrent layer's fused op, whose state is sized for it)
            # cannot be resized: it is fed that many examples per invoke.
            batches = {int(d["shape_signature"][0]) if len(d["shape_signature"]) else -1
                       for d in self._input_details.values()}
            self.fixed_batch_size = batches.pop() if len(batches) == 1 and min(batches) > 0 else None
        except Exception as e:  # the interpreter raises ValueError, RuntimeError or UnicodeDecodeError by damage
            raise ValueError(
                f"cannot load TFLite model {model_path}: {e}; expected a TFLite flatbuffer with a "
                f"{TFLITE_SIGNATURE!r} signature (the Quantizer's Format-Serving/model.tflite)"
            ) from e
        self.model_path = model_path

    @property
    def input_specs(self) -> list[InputSpec]:
        """What ``predict`` takes, sorted by name: float32 for quantized input tensors (``predict`` quantizes them)."""
        specs = []
        for name, d in sorted(self._input_details.items()):
            quantized = d["dtype"] in _QUANTIZED_DTYPES and d["quantization"][0]
            dtype = np.dtype(np.float32) if quantized else np.dtype(d["dtype"])
            shape = tuple(None if s < 0 else int(s) for s in d["shape_signature"])
            specs.append(InputSpec(name=name, dtype=dtype, shape=shape))
        return specs

    @property
    def input_details(self) -> dict[str, dict]:
        """The interpreter's details of each input tensor (dtype, quantization parameters), by input name."""
        return self._input_details

    @property
    def output_details(self) -> dict[str, dict]:
        """The interpreter's details of each output tensor, by output name."""
        return self._output_details

    @property
    def output_names(self) -> list[str]:
        """The signature's output names, sorted."""
        return sorted(self._output_details)

    def _feed(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        _check_inputs(self.model_path, self._input_details, inputs)
        feed = {}
        for name, details in self._input_details.items():
            value = np.asarray(inputs[name])
            dtype = details["dtype"]
            if name in self._quantizers and value.dtype != dtype:
                value = self._quantizers[name](value)
            feed[name] = value.astype(dtype, copy=False)
        return feed

    def kernel(self, inputs: dict[str, np.ndarray]) -> Callable[[], object] | None:
        """A call that runs the model alone (``Interpreter.invoke``) on ``inputs``, quantized and set once here: what
        the model costs without our Python around it. ``None`` for a model with several signatures (``invoke``
        runs the first subgraph only)."""
        if not self._single_signature:
            return None
        self._set_inputs(self._feed(inputs))
        return self._interpreter.invoke

    def _set_inputs(self, feed: dict[str, np.ndarray]) -> None:
        shapes = tuple(value.shape for value in feed.values())
        if shapes != self._shapes:
            for name, value in feed.items():
                self._interpreter.resize_tensor_input(self._input_details[name]["index"], value.shape)
            self._interpreter.allocate_tensors()
            self._shapes = shapes
        for name, value in feed.items():
            self._interpreter.set_tensor(self._input_details[name]["index"], value)

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Runs one batch (the interpreter is resized when its size changes; a fixed-batch model is invoked once per
        ``fixed_batch_size`` examples); outputs by name, quantized/float ones as float32."""
        size = self.fixed_batch_size
        n = len(next(iter(inputs.values()))) if inputs else 0
        if size is not None and n != size:
            if n % size:
                raise ValueError(f"{self.model_path} takes batches of exactly {size} example(s) (converted with a "
                                 f"fixed batch); got {n}")
            parts = [self.predict({name: value[i:i + size] for name, value in inputs.items()})
                     for i in range(0, n, size)]
            return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]} if parts else {}
        feed = self._feed(inputs)
        if self._single_signature:
            self._set_inputs(feed)
            if self.fixed_batch_size is not None:
                # A recurrent layer's fused op keeps its state in variable tensors from one invoke to the next
                # (measured: every example after the first scored from the previous one's state); each batch is
                # scored from the zero state, as the float model scores it.
                self._interpreter.reset_all_variables()
            self._interpreter.invoke()
            raw = {name: self._interpreter.get_tensor(d["index"]) for name, d in self._output_details.items()}
        else:
            raw = self._runner(**feed)
        outputs = {}
        for name, value in raw.items():
            details = self._output_details[name]
            scale, zero_point = _per_tensor_params(details)
            if details["dtype"] in _QUANTIZED_DTYPES and scale:
                value = (value.astype(np.float32) - zero_point) * np.float32(scale)
            outputs[name] = value.astype(np.float32, copy=False) if value.dtype.kind == "f" else value
        return outputs


def _named_outputs(outputs: object) -> dict[str, tf.Tensor]:
    """A Keras call's outputs by name: a dict as it is, one tensor as ``output_0``, a list as ``output_<i>`` (the
    names TensorFlow gives a signature's unnamed outputs)."""
    if isinstance(outputs, dict):
        return dict(outputs)
    if isinstance(outputs, list | tuple):
        return {f"output_{i}": value for i, value in enumerate(outputs)}
    return {"output_0": outputs}


class ModelFunction:
    """The function a (resolved) signature name stands for, on a loaded SavedModel: a signature, or, for
    ``KERAS_CALL``, the model's restored Keras call with ``training=False`` over its inputs by name (see
    ``signature_inputs.keras_call``). With ``batch_size`` its inputs have that fixed batch size (recurrent layers
    convert to fused TFLite ops only so). ``concrete`` is what the TFLite converter converts; ``__call__`` runs it
    on a dict of tensors by input name, so the float baseline runs exactly the function that was converted.
    """

    def __init__(self, model: tf.Module, saved_model_dir: str, signature_name: str,
                 batch_size: int | None = None) -> None:
        self.signature_name = signature_name
        if signature_name == KERAS_CALL:
            call = keras_call(saved_model_dir)
            self.input_names = call.flat_names
            flat = tf.nest.flatten(call.structure)

            def run(*args: tf.Tensor) -> dict[str, tf.Tensor]:
                return _named_outputs(model(tf.nest.pack_sequence_as(call.structure, list(args)), training=False))
        else:
            signature = model.signatures[signature_name]
            self.input_names = sorted(signature.structured_input_signature[1])
            if batch_size is None:
                self.concrete = signature
                return
            flat = [signature.structured_input_signature[1][name] for name in self.input_names]

            def run(*args: tf.Tensor) -> dict[str, tf.Tensor]:
                return signature(**dict(zip(self.input_names, args, strict=True)))
        input_signature = [tf.TensorSpec((batch_size, *spec.shape[1:]), spec.dtype, name=name)
                           for spec, name in zip(flat, self.input_names, strict=True)]
        self.concrete = tf.function(run, input_signature=input_signature).get_concrete_function()

    def __call__(self, feed: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        if self.concrete.structured_input_signature[1]:  # a loaded signature takes its inputs by keyword only
            return self.concrete(**{name: feed[name] for name in self.input_names})
        return self.concrete(*[feed[name] for name in self.input_names])


class SavedModelRunner:
    """Runs a SavedModel's dense-input signature on whole batches (the float reference for the TFLite model)."""

    def __init__(self, saved_model_dir: str, signature_name: str | None) -> None:
        self.signature_name, self._specs = dense_signature_specs(saved_model_dir, signature_name)
        self._model = tf.saved_model.load(saved_model_dir)  # kept alive: the signature holds weak refs to its vars
        self._fn = ModelFunction(self._model, saved_model_dir, self.signature_name)
        self.output_names = sorted(self._fn.concrete.structured_outputs)

    @property
    def input_specs(self) -> list[InputSpec]:
        """The signature's inputs, sorted by name."""
        return list(self._specs)

    @property
    def loaded_model(self) -> tf.Module:
        """The loaded SavedModel (its other signatures run without loading it again)."""
        return self._model

    def _feed(self, inputs: dict[str, np.ndarray]) -> dict[str, tf.Tensor]:
        _check_inputs(self.signature_name, [spec.name for spec in self._specs], inputs)
        return {spec.name: tf.constant(np.asarray(inputs[spec.name]), dtype=spec.dtype) for spec in self._specs}

    def kernel(self, inputs: dict[str, np.ndarray]) -> Callable[[], object]:
        """A call that runs the signature alone on ``inputs`` already made tensors (it still pays TensorFlow's
        function dispatch, which is part of serving a SavedModel)."""
        feed = self._feed(inputs)
        return lambda: self._fn(feed)

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Runs one batch and returns the outputs by name (floating ones as float32, others keep their dtype)."""
        outputs = {name: value.numpy() for name, value in self._fn(self._feed(inputs)).items()}
        return {name: v.astype(np.float32) if np.issubdtype(v.dtype, np.floating) else v for name, v in outputs.items()}
