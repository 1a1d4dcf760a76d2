"""Batched inference in Beam: serialized tf.Examples -> inputs, labels, slices -> both models' predictions.

Inputs go through the input path the Quantizer calibrates with (``shared.signature_inputs.examples_to_inputs``, or
with a transform graph ``shared.transform_inputs.TransformedInputs``) and both models run through the shared runners (``shared.model_runners.SavedModelRunner`` / ``TFLiteRunner``, which
quantize int8 inputs with round and clip and dequantize outputs), so the evaluator scores exactly what the
Quantizer calibrated. Each DoFn loads its models
once per worker in ``setup``; every call handles a whole ``BatchElements`` batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import tensorflow as tf
from tfx.dsl.io import fileio

from components.quantization_evaluator.metrics import PredictionBatch, top1_classes
from components.shared.digests import bytes_sha256
from components.shared.model_runners import SavedModelRunner, TFLiteRunner
from components.shared.signature_inputs import InputSpec, decode_examples, examples_to_inputs, nonfinite_rows
from components.shared.transform_inputs import TransformedInputs

_NAMESPACE = "quantgate.QuantizationEvaluator"
# The tagged output of PredictDoFn with the serving-signature comparison of each batch.
SERVING_TAG = "serving"
# A regression prediction agrees with the serving path's within this fraction of max(1, |value|).
SERVING_RELATIVE_TOLERANCE = 1e-3


@dataclass
class ParsedBatch:
    """A batch of examples decoded once: model inputs, labels (NaN when absent), slicing values, and per input
    feature with a NaN/inf value the mask of those examples."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray
    slice_values: dict[str, np.ndarray]
    nonfinite_inputs: dict[str, np.ndarray]
    # The batch's bytes, kept only when the float model's serving signature is compared on them.
    serialized: list[bytes] | None = None


def first_values(batch: pa.RecordBatch, feature: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The first value of ``feature`` in each example and a mask of the examples that have one.

    ``None`` when no example of the batch has the feature (tfx_bsl then leaves the column out). Vectorized: reads the
    list column's offsets instead of looping over examples.
    """
    index = batch.schema.get_field_index(feature)
    if index < 0:
        return None
    column = batch.column(index)
    lengths = pc.fill_null(pc.list_value_length(column), 0).to_numpy(zero_copy_only=False)
    present = lengths > 0
    starts = column.offsets.to_numpy()[:-1]
    values = column.values.take(pa.array(starts[present]))
    return values, present


def decode_labels(batch: pa.RecordBatch, label_key: str, source: str) -> np.ndarray:
    """The label of each example as float64, NaN where it has none or several; refuses non-numeric labels."""
    labels = np.full(batch.num_rows, np.nan)
    found = first_values(batch, label_key)
    if found is None:
        return labels
    values, present = found
    if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
        raise ValueError(
            f"QuantizationEvaluator: {source}: label {label_key!r} holds {values.type} values; the evaluator needs "
            "numeric labels (class indices for classification). Map the label to numbers upstream "
            "(ExampleGen or Transform) or pass the right label_key")
    labels[present] = values.to_numpy(zero_copy_only=False).astype(np.float64)
    # Several values are neither one class nor one target: such an example counts as missing, not as its first.
    lengths = pc.fill_null(pc.list_value_length(batch.column(batch.schema.get_field_index(label_key))), 0)
    labels[lengths.to_numpy(zero_copy_only=False) > 1] = np.nan
    return labels


def decode_slice_values(batch: pa.RecordBatch, feature: str, source: str) -> np.ndarray:
    """Each example's first value of a slicing feature as ``str`` (object array), ``None`` where absent.

    Bytes that are not UTF-8 are decoded with ``errors='backslashreplace'`` (``b'\\xff'`` becomes the text
    ``\\xff``): a slice value is a label for people, and one bad byte must not stop the evaluation.
    """
    out = np.full(batch.num_rows, None, dtype=object)
    found = first_values(batch, feature)
    if found is None:
        return out
    values, present = found
    out[present] = _slice_text(values, feature, source)
    return out


def transformed_slice_values(values: np.ndarray, feature: str, source: str) -> np.ndarray:
    """Each example's first value of a slicing feature computed by the transform, as ``str`` (object array)."""
    first = values.reshape(len(values), -1)[:, 0]
    return _slice_text(pa.array(first.tolist()), feature, source)


def _slice_text(values: pa.Array, feature: str, source: str) -> np.ndarray:
    try:
        try:
            text = pc.cast(values, pa.string())
        except pa.ArrowInvalid:  # invalid UTF-8: the vectorized cast refuses the whole batch
            if not (pa.types.is_binary(values.type) or pa.types.is_large_binary(values.type)):
                raise
            text = pa.array([v.decode("utf-8", errors="backslashreplace") for v in values.to_pylist()], pa.string())
        return text.to_numpy(zero_copy_only=False)
    except pa.ArrowException as e:
        raise ValueError(f"QuantizationEvaluator: {source}: slicing feature {feature!r} ({values.type} values) "
                         f"cannot be turned into slice names: {e}. Slice on a string or integer feature, or drop "
                         f"{feature!r} from slicing_feature_keys") from e


@dataclass(frozen=True)
class TransformSpec:
    """How a batch goes through a transform graph: its uri, and the label / slicing features that exist only after
    the transform (read from its outputs with these specs; the others are read from the raw examples)."""

    uri: str
    extra_specs: tuple[InputSpec, ...] = ()

    def build(self, specs: Sequence[InputSpec], source: str) -> TransformedInputs:
        return TransformedInputs(self.uri, [*specs, *self.extra_specs], source=source)


def parse_examples(serialized: Sequence[bytes], specs: Sequence[InputSpec], label_key: str,
                   slicing_feature_keys: Sequence[str], source: str, transform: TransformedInputs | None = None,
                   keep_serialized: bool = False) -> ParsedBatch:
    """Decodes one batch: model inputs via the shared input path (through ``transform`` when given), labels and
    slices from the raw examples via tfx_bsl, or from the transform's outputs for features that only it computes
    (the ones ``transform`` produces beyond ``specs``)."""
    names = {spec.name for spec in specs}
    if transform is None:
        inputs, extra = examples_to_inputs(serialized, specs, source=source), {}
    else:
        outputs = transform(serialized)
        inputs = {name: value for name, value in outputs.items() if name in names}
        extra = {name: value for name, value in outputs.items() if name not in names}
    # A second decode of the same bytes: examples_to_inputs keeps its Arrow batch to itself, and this C++ pass is
    # cheap next to inference.
    batch = decode_examples(serialized, source=source)
    if label_key in extra:
        labels = extra[label_key].reshape(len(serialized), -1)[:, 0].astype(np.float64)
    else:
        labels = decode_labels(batch, label_key, source)
    return ParsedBatch(
        inputs=inputs,
        labels=labels,
        slice_values={key: transformed_slice_values(extra[key], key, source) if key in extra
                      else decode_slice_values(batch, key, source) for key in slicing_feature_keys},
        nonfinite_inputs=nonfinite_rows(inputs),
        serialized=list(serialized) if keep_serialized else None,
    )


class ParseExamplesDoFn(beam.DoFn):
    """``list[bytes]`` (a batch of serialized tf.Examples) -> ``ParsedBatch``; with ``transform`` the transform graph
    is loaded once per worker, in ``setup``."""

    def __init__(self, specs: Sequence[InputSpec], label_key: str, slicing_feature_keys: Sequence[str],
                 source: str, transform: TransformSpec | None = None, keep_serialized: bool = False) -> None:
        self._specs = list(specs)
        self._label_key = label_key
        self._slicing_feature_keys = tuple(slicing_feature_keys)
        self._source = source
        self._transform_spec = transform
        self._keep_serialized = keep_serialized

    def setup(self) -> None:
        spec = self._transform_spec
        self._transform = spec.build(self._specs, self._source) if spec else None

    def process(self, serialized: list[bytes]) -> Iterator[ParsedBatch]:
        yield parse_examples(serialized, self._specs, self._label_key, self._slicing_feature_keys, self._source,
                             self._transform, self._keep_serialized)


class SerializedExamplesRunner:
    """A SavedModel signature taking serialized tf.Examples (the model's serving path), on whole batches."""

    def __init__(self, saved_model_dir: str, signature_name: str) -> None:
        self.signature_name = signature_name
        self._model = tf.saved_model.load(saved_model_dir)  # kept alive: the signature holds weak refs to its vars
        self._fn = self._model.signatures[signature_name]
        (self._input,) = self._fn.structured_input_signature[1]
        (self._output,) = self._fn.structured_outputs

    def predict(self, serialized: Sequence[bytes]) -> np.ndarray:
        """The single output as ``[n, k]`` float32."""
        value = self._fn(**{self._input: tf.constant(list(serialized), dtype=tf.string)})[self._output].numpy()
        return value.reshape(len(value), -1).astype(np.float32, copy=False)


def serving_agreement(serving: np.ndarray, transformed: np.ndarray, classification: bool) -> tuple[int, int, float]:
    """(agreeing examples, compared examples, max |difference|) between the serving path's predictions and the
    float model's on transformed features, over the examples where both are finite. Agreeing: the same top-1 class
    for classifiers, within ``SERVING_RELATIVE_TOLERANCE`` for regressors."""
    finite = np.isfinite(serving).all(axis=1) & np.isfinite(transformed).all(axis=1)
    serving, transformed = serving[finite], transformed[finite]
    if not len(serving):
        return 0, 0, 0.0
    diff = np.abs(serving.astype(np.float64) - transformed)
    if classification:
        agree = top1_classes(serving) == top1_classes(transformed)
    else:
        agree = (diff <= SERVING_RELATIVE_TOLERANCE * np.maximum(1.0, np.abs(transformed))).all(axis=1)
    return int(np.count_nonzero(agree)), len(serving), float(diff.max())


def single_output(outputs: dict[str, np.ndarray], output_name: str) -> np.ndarray:
    """The gated output as ``[n, k]`` (a ``[n]`` output becomes one column)."""
    value = outputs[output_name]
    return value.reshape(len(value), -1).astype(np.float32, copy=False)


class PredictDoFn(beam.DoFn):
    """``ParsedBatch`` -> ``(candidate index, PredictionBatch)`` for each TFLite model: the float SavedModel (run
    once per batch) and every quantized candidate on the same inputs.

    Logs progress (examples, batches, examples/s) at most every ``log_every_s`` seconds per worker. With
    ``tflite_sha256s`` the worker refuses a ``model.tflite`` whose bytes changed since the driver hashed them: the
    blessing names the bytes that were scored. With ``serving_signature`` (batches keep their bytes) the float
    model's serving path also runs on each batch and ``serving_agreement``'s counts go to the ``SERVING_TAG`` output.
    """

    def __init__(self, saved_model_dir: str, signature_name: str, tflite_paths: Sequence[str], float_output: str,
                 quant_outputs: Sequence[str], log_every_s: float = 10.0, tflite_sha256s: Sequence[str] | None = None,
                 serving_signature: str | None = None, classification: bool = True) -> None:
        self._serving_signature = serving_signature
        self._classification = classification
        self._saved_model_dir = saved_model_dir
        self._signature_name = signature_name
        self._tflite_paths = list(tflite_paths)
        self._tflite_sha256s = None if tflite_sha256s is None else list(tflite_sha256s)
        self._float_output = float_output
        self._quant_outputs = list(quant_outputs)
        self._log_every_s = log_every_s
        self._examples = beam.metrics.Metrics.counter(_NAMESPACE, "examples_predicted")
        self._batches = beam.metrics.Metrics.counter(_NAMESPACE, "batches_predicted")

    def setup(self) -> None:
        self._float_runner = SavedModelRunner(self._saved_model_dir, self._signature_name)
        self._quant_runners = []
        for i, path in enumerate(self._tflite_paths):
            with fileio.open(path, "rb") as f:
                content = f.read()  # hashed and loaded from the same bytes: no gap between the check and the load
            expected = None if self._tflite_sha256s is None else self._tflite_sha256s[i]
            if expected is not None:
                found = bytes_sha256(content)
                if found != expected:
                    raise ValueError(
                        f"QuantizationEvaluator: {path} changed during the evaluation (sha256 {expected} when "
                        f"checked, {found} on a worker); nothing was blessed. Re-run the evaluator once the "
                        "quantized model stops changing")
            self._quant_runners.append(TFLiteRunner(path, content=content))
        self._serving_runner = (SerializedExamplesRunner(self._saved_model_dir, self._serving_signature)
                                if self._serving_signature else None)
        self._seen_examples = 0
        self._seen_batches = 0
        self._started = self._last_log = time.monotonic()

    def process(self, batch: ParsedBatch) -> Iterator[tuple[int, PredictionBatch] | beam.pvalue.TaggedOutput]:
        float_pred = single_output(self._float_runner.predict(batch.inputs), self._float_output)
        if self._serving_runner is not None and batch.serialized is not None:
            serving = self._serving_runner.predict(batch.serialized)
            yield beam.pvalue.TaggedOutput(SERVING_TAG, serving_agreement(serving, float_pred, self._classification))
        n = len(batch.labels)
        self._examples.inc(n)
        self._batches.inc()
        self._seen_examples += n
        self._seen_batches += 1
        now = time.monotonic()
        if now - self._last_log >= self._log_every_s:
            self._last_log = now
            self._log_progress(now)
        for i, (runner, output) in enumerate(zip(self._quant_runners, self._quant_outputs, strict=True)):
            quant_pred = single_output(runner.predict(batch.inputs), output)
            yield i, PredictionBatch(batch.labels, float_pred, quant_pred, batch.slice_values,
                                     batch.nonfinite_inputs)

    def teardown(self) -> None:
        if getattr(self, "_seen_batches", 0):
            self._log_progress(time.monotonic())

    def _log_progress(self, now: float) -> None:
        elapsed = max(now - self._started, 1e-9)
        logging.info("QuantizationEvaluator: predicted %d examples in %d batches with both models, %.0f examples/s",
                     self._seen_examples, self._seen_batches, self._seen_examples / elapsed)


@dataclass(frozen=True)
class Latency:
    """Batch-1 latency of one model in milliseconds, measured after warm-up."""

    p50_ms: float
    p95_ms: float
    calls: int


# Batch-1 calls timed per model, after warm-up: enough for a stable p95 on a tiny model, a second on a big one.
LATENCY_WARMUP_CALLS = 50
LATENCY_CALLS = 300


def measure_latency(runner: SavedModelRunner | TFLiteRunner, inputs: dict[str, np.ndarray],
                    warmup: int = LATENCY_WARMUP_CALLS, calls: int = LATENCY_CALLS) -> Latency:
    """Times ``calls`` single-example ``predict`` calls on the first example of ``inputs`` after ``warmup`` calls."""
    one = {name: value[:1] for name, value in inputs.items()}
    for _ in range(warmup):
        runner.predict(one)
    timings = np.empty(calls)
    for i in range(calls):
        started = time.perf_counter()
        runner.predict(one)
        timings[i] = time.perf_counter() - started
    p50, p95 = np.percentile(timings * 1000.0, [50, 95])
    return Latency(p50_ms=float(p50), p95_ms=float(p95), calls=calls)
