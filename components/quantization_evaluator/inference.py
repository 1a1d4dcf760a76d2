"""Batched inference in Beam: serialized tf.Examples -> inputs, labels, slices -> both models' predictions.

Inputs go through the input path the Quantizer calibrates with (``shared.signature_inputs.examples_to_inputs``, or
with a transform graph ``shared.transform_inputs.TransformedInputs``) and both models run through the shared runners (``shared.model_runners.SavedModelRunner`` / ``TFLiteRunner``, which
quantize int8 inputs with round and clip and dequantize outputs), so the evaluator scores exactly what the
Quantizer calibrated. ``ScoreDoFn`` decodes each ``BatchElements`` batch once (``BatchParser``) and runs both
models on it; it loads its models once per worker in ``setup``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import tensorflow as tf
from tfx.dsl.io import fileio

from quantgate.components.quantization_evaluator.gate import KERNEL
from quantgate.components.quantization_evaluator.metrics import PredictionBatch, top1_classes
from quantgate.components.shared import properties
from quantgate.components.shared.digests import bytes_sha256
from quantgate.components.shared.model_runners import SavedModelRunner, TFLiteRunner
from quantgate.components.shared.signature_inputs import (
    InputSpec,
    cast_to_input,
    decode_examples,
    examples_to_inputs,
    nonfinite_rows,
)
from quantgate.components.shared.task_metrics import PROBABILITIES, to_probabilities
from quantgate.components.shared.tfrecord_crc import use_compiled_crc32c
from quantgate.components.shared.transform_inputs import TransformedInputs

_NAMESPACE = "quantgate.QuantizationEvaluator"
# The tagged output of PredictDoFn with the serving-signature comparison of each batch.
SERVING_TAG = "serving"
# A regression prediction agrees with the serving path's within this fraction of max(1, |value|).
SERVING_RELATIVE_TOLERANCE = 1e-3
# Examples each worker compares the serving path on (the first it scores): enough to catch a transform or export
# mismatch, which shows on most examples (one on 1% of them still shows in 512 with probability 0.994), without running
# the float model twice over a large split (measured on a MobileNetV2 over PNG examples: the serving pass cost half the
# plain scoring loop's per-example time, 0.33 s of fixed cost at 2,048).
SERVING_SAMPLE_PER_WORKER = 512


# Runners loaded in this process, by thread: the driver's checks load both models, and the DirectRunner's default
# in-process worker runs bundles in the driver's thread, so its DoFn reuses them instead of loading them again
# (a SavedModel load costs about half a second). By thread because a TFLite interpreter must not run in two threads
# at once; bounded because a long-lived process (a test session) evaluates many models.
_RUNNER_CACHE: OrderedDict[tuple, SavedModelRunner | TFLiteRunner] = OrderedDict()
_RUNNER_CACHE_SIZE = 4


def _cached(key: tuple, load: Callable[[], SavedModelRunner | TFLiteRunner]) -> SavedModelRunner | TFLiteRunner:
    key = (*key, threading.get_ident())
    if key in _RUNNER_CACHE:
        _RUNNER_CACHE.move_to_end(key)
        return _RUNNER_CACHE[key]
    runner = _RUNNER_CACHE[key] = load()
    while len(_RUNNER_CACHE) > _RUNNER_CACHE_SIZE:
        _RUNNER_CACHE.popitem(last=False)
    return runner


def saved_model_runner(saved_model_dir: str, signature_name: str) -> SavedModelRunner:
    """The float model's runner, loaded once per process and thread."""
    return _cached(("saved_model", saved_model_dir, signature_name),
                   lambda: SavedModelRunner(saved_model_dir, signature_name))


def tflite_runner(path: str, content: bytes, sha256: str) -> TFLiteRunner:
    """The runner of the TFLite model whose bytes are ``content`` (hashed ``sha256`` by the caller), loaded once per
    process and thread: a file rewritten in place gets a new hash, so a new runner."""
    return _cached(("tflite", path, sha256), lambda: TFLiteRunner(path, content=content))


@dataclass
class ParsedBatch:
    """A batch of examples decoded once: model inputs (NaN / inf replaced by 0, see ``finite_model_inputs``), labels
    (NaN when absent), slicing values, and per input feature with a NaN/inf value the mask of those examples."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray
    slice_values: dict[str, np.ndarray]
    nonfinite_inputs: dict[str, np.ndarray]
    # The batch's bytes, kept only when the float model's serving signature is compared on them.
    serialized: list[bytes] | None = None


def finite_model_inputs(inputs: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The model inputs with every NaN / inf value replaced by 0, and per input the mask of the examples that held
    one (``nonfinite_rows``, taken before the replacement).

    Those examples are counted per feature and never scored (``RowCounts``), whatever their predictions; feeding
    them zeros instead means neither model ever gets a NaN, which an int8 input cannot represent and a float model
    may turn into an index (a cast before a lookup) that fails the whole batch. Inputs without a non-finite value
    are returned as they are, without a copy.
    """
    rows = nonfinite_rows(inputs)
    if not rows:
        return inputs, rows
    finite = dict(inputs)
    for name in rows:
        value = inputs[name]
        finite[name] = np.where(np.isfinite(value), value, value.dtype.type(0))
    return finite, rows


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
    """Decodes one batch with tfx_bsl (the reference path, and the one whose errors name each problem): model inputs
    via the shared input path (through ``transform`` when given), labels and slices from the raw examples, or from
    the transform's outputs for features that only it computes (the ones ``transform`` produces beyond ``specs``)."""
    names = {spec.name for spec in specs}
    if transform is None:
        inputs, extra = examples_to_inputs(serialized, specs, source=source), {}
    else:
        outputs = transform(serialized)
        inputs = {name: value for name, value in outputs.items() if name in names}
        extra = {name: value for name, value in outputs.items() if name not in names}
    batch = decode_examples(serialized, source=source)
    if label_key in extra:
        labels = extra[label_key].reshape(len(serialized), -1)[:, 0].astype(np.float64)
    else:
        labels = decode_labels(batch, label_key, source)
    inputs, nonfinite = finite_model_inputs(inputs)
    return ParsedBatch(
        inputs=inputs,
        labels=labels,
        slice_values={key: transformed_slice_values(extra[key], key, source) if key in extra
                      else decode_slice_values(batch, key, source) for key in slicing_feature_keys},
        nonfinite_inputs=nonfinite,
        serialized=list(serialized) if keep_serialized else None,
    )


_TF_DTYPES = {"float": tf.float32, "int": tf.int64, "bytes": tf.string}


def feature_kinds(batch: pa.RecordBatch) -> dict[str, str]:
    """Each feature's tf.Example list type in a decoded batch: ``float``, ``int`` or ``bytes``."""
    kinds = {}
    for field in batch.schema:
        value_type = field.type.value_type if pa.types.is_list(field.type) or pa.types.is_large_list(field.type) \
            else field.type
        kinds[field.name] = ("float" if pa.types.is_floating(value_type) else
                             "int" if pa.types.is_integer(value_type) else "bytes")
    return kinds


@dataclass(frozen=True)
class _Ragged:
    """One feature of a batch as tf.io.parse_example's VarLenFeature gives it: all values, and per example how many
    and where they start."""

    values: np.ndarray
    counts: np.ndarray
    starts: np.ndarray

    @classmethod
    def of(cls, sparse: tf.SparseTensor, n: int) -> _Ragged:
        counts = np.bincount(sparse.indices.numpy()[:, 0], minlength=n)
        starts = np.zeros(n, dtype=np.int64)
        np.cumsum(counts[:-1], out=starts[1:])
        return cls(sparse.values.numpy(), counts, starts)

    def first(self, rows: np.ndarray) -> np.ndarray:
        return self.values[self.starts[rows]]


class BatchParser:
    """Serialized tf.Examples -> ``ParsedBatch``, decoding each batch once, and only the features the signature, the
    label and the slices need, with ``tf.io.parse_example`` (measured 5-8x faster than tfx_bsl's ``DecodeBatch`` of
    the whole example on taxi-like records).

    The feature types come from ``kinds`` (``feature_kinds`` of the split's first records). A batch the fast path
    cannot take as it is (a feature whose type changed, an input missing or with another number of values) goes
    through ``parse_examples``, which decodes it or raises the error that names the problem: the results and the
    refusals are those of ``parse_examples``, which the tests compare against.
    """

    def __init__(self, specs: Sequence[InputSpec], label_key: str, slicing_feature_keys: Sequence[str],
                 source: str, kinds: dict[str, str] | None = None, transform: TransformedInputs | None = None,
                 extra_names: Sequence[str] = ()) -> None:
        self._specs = list(specs)
        self._label_key = label_key
        self._slicing_feature_keys = tuple(slicing_feature_keys)
        self._source = source
        self._transform = transform
        raw = [] if transform is not None else [spec.name for spec in self._specs]
        raw += [key for key in (label_key, *self._slicing_feature_keys) if key not in extra_names]
        known = kinds or {}
        # Inputs must be numeric and the label too; anything else goes the exact path, which says what is wrong.
        usable = (kinds is not None and known.get(label_key) != "bytes"
                  and all(known.get(spec.name) in ("float", "int") for spec in self._specs if transform is None))
        self._feature_spec = ({name: tf.io.VarLenFeature(_TF_DTYPES[known[name]]) for name in raw if name in known}
                              if usable else None)

    def __call__(self, serialized: Sequence[bytes], keep_serialized: bool = False) -> ParsedBatch:
        parsed = self._fast(serialized) if self._feature_spec is not None else None
        if parsed is None:
            return parse_examples(serialized, self._specs, self._label_key, self._slicing_feature_keys, self._source,
                                  self._transform, keep_serialized)
        if keep_serialized:
            parsed.serialized = list(serialized)
        return parsed

    def _fast(self, serialized: Sequence[bytes]) -> ParsedBatch | None:
        n = len(serialized)
        if n == 0:
            return None
        sparse = {}
        if self._feature_spec:
            batch = tf.constant(serialized if isinstance(serialized, list) else list(serialized), dtype=tf.string)
            try:
                sparse = tf.io.parse_example(batch, self._feature_spec)
            except tf.errors.InvalidArgumentError:  # a type differs from the first records': the exact path says how
                return None
        columns = {name: _Ragged.of(value, n) for name, value in sparse.items()}
        if self._transform is None:
            inputs = {}
            for spec in self._specs:
                column = columns[spec.name]
                dims = spec.example_dims
                if (column.counts != int(np.prod(dims, dtype=np.int64))).any():
                    return None
                inputs[spec.name] = cast_to_input(column.values, spec, self._source).reshape((n, *dims))
            extra: dict[str, np.ndarray] = {}
        else:
            outputs = self._transform(serialized)
            names = {spec.name for spec in self._specs}
            inputs = {name: value for name, value in outputs.items() if name in names}
            extra = {name: value for name, value in outputs.items() if name not in names}
        inputs, nonfinite = finite_model_inputs(inputs)
        return ParsedBatch(inputs=inputs, labels=self._labels(columns, extra, n),
                           slice_values={key: self._slices(columns, extra, key, n)
                                         for key in self._slicing_feature_keys},
                           nonfinite_inputs=nonfinite)

    def _labels(self, columns: dict[str, _Ragged], extra: dict[str, np.ndarray], n: int) -> np.ndarray:
        if self._label_key in extra:
            return extra[self._label_key].reshape(n, -1)[:, 0].astype(np.float64)
        labels = np.full(n, np.nan)
        column = columns.get(self._label_key)
        if column is not None:
            # Several values are neither one class nor one target: such an example counts as missing.
            one = column.counts == 1
            labels[one] = column.first(one)
        return labels

    def _slices(self, columns: dict[str, _Ragged], extra: dict[str, np.ndarray], key: str, n: int) -> np.ndarray:
        if key in extra:
            return transformed_slice_values(extra[key], key, self._source)
        out = np.full(n, None, dtype=object)
        column = columns.get(key)
        if column is not None:
            present = column.counts > 0
            out[present] = _slice_text(pa.array(column.first(present)), key, self._source)
        return out


class SerializedExamplesRunner:
    """A SavedModel signature taking serialized tf.Examples (the model's serving path), on whole batches; on the
    model ``model`` when given (loaded already, e.g. ``SavedModelRunner.loaded_model``: a large export takes
    seconds to load)."""

    def __init__(self, saved_model_dir: str, signature_name: str, model: tf.Module | None = None) -> None:
        self.signature_name = signature_name
        # kept alive: the signature holds weak refs to its vars
        self._model = model if model is not None else tf.saved_model.load(saved_model_dir)
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


@dataclass(frozen=True)
class ParserSpec:
    """What a worker needs to build its ``BatchParser``: picklable, the transform graph loaded on the worker."""

    specs: tuple[InputSpec, ...]
    label_key: str
    slicing_feature_keys: tuple[str, ...]
    source: str
    kinds: dict[str, str] | None = None
    transform: TransformSpec | None = None

    def build(self) -> BatchParser:
        transform = self.transform.build(self.specs, self.source) if self.transform else None
        extra = [spec.name for spec in self.transform.extra_specs] if self.transform else []
        return BatchParser(self.specs, self.label_key, self.slicing_feature_keys, self.source, self.kinds,
                           transform, extra)


class ScoreDoFn(beam.DoFn):
    """A batch of serialized tf.Examples -> ``(candidate index, PredictionBatch)`` for each TFLite candidate:
    decoded once (``BatchParser``), then the float SavedModel (once per batch) and every TFLite candidate on the
    same inputs, in one DoFn (no hand-over between parse and predict).

    Models, parser and transform graph are loaded once per worker in ``setup``. Logs progress (examples, batches,
    examples/s) at most every ``log_every_s`` seconds per worker. With ``tflite_sha256s`` the worker refuses a
    ``model.tflite`` whose bytes changed since the driver hashed them: the blessing names the bytes that were scored.
    With ``serving_signature`` the float model's serving path also runs on each batch and ``serving_agreement``'s
    counts go to the ``SERVING_TAG`` output.

    This is where predictions enter the metrics: with ``output_kind='logits'`` every model's output (the float
    model's, its serving path's, each candidate's after the runner dequantizes it) goes through
    ``to_probabilities`` here, so every metric, agreement, confusion matrix and bound downstream sees
    probabilities. Latency is measured elsewhere, on the models alone.
    """

    def __init__(self, parser: ParserSpec, saved_model_dir: str, signature_name: str, tflite_paths: Sequence[str],
                 float_output: str, quant_outputs: Sequence[str], log_every_s: float = 10.0,
                 tflite_sha256s: Sequence[str] | None = None,
                 serving_signature: str | None = None, classification: bool = True,
                 output_kind: str = PROBABILITIES) -> None:
        self._parser_spec = parser
        self._output_kind = output_kind
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
        # Before the first record is read: the read is fused with this DoFn, and a worker process has imported
        # nothing else of ours that would have installed the compiled CRC.
        use_compiled_crc32c()
        self._parser = self._parser_spec.build()
        self._float_runner = saved_model_runner(self._saved_model_dir, self._signature_name)
        self._quant_runners = []
        for i, path in enumerate(self._tflite_paths):
            with fileio.open(path, "rb") as f:
                content = f.read()  # hashed and loaded from the same bytes: no gap between the check and the load
            found = bytes_sha256(content)
            expected = None if self._tflite_sha256s is None else self._tflite_sha256s[i]
            if expected is not None and found != expected:
                raise ValueError(
                    f"QuantizationEvaluator: {path} changed during the evaluation (sha256 {expected} when checked, "
                    f"{found} on a worker); nothing was blessed. Re-run the evaluator once the quantized model "
                    "stops changing")
            self._quant_runners.append(tflite_runner(path, content, found))
        self._serving_runner = (SerializedExamplesRunner(self._saved_model_dir, self._serving_signature,
                                                         self._float_runner.loaded_model)
                                if self._serving_signature else None)
        self._serving_compared = 0
        self._seen_examples = 0
        self._seen_batches = 0
        self._started = self._last_log = time.monotonic()

    def process(self, serialized: list[bytes]) -> Iterator[tuple[int, PredictionBatch] | beam.pvalue.TaggedOutput]:
        # The serving path runs the float model a second time: compared on a bounded sample per worker.
        compare_serving = self._serving_runner is not None and self._serving_compared < SERVING_SAMPLE_PER_WORKER
        batch = self._parser(serialized, keep_serialized=compare_serving)
        float_pred = to_probabilities(single_output(self._float_runner.predict(batch.inputs), self._float_output),
                                      self._output_kind)
        if compare_serving and batch.serialized is not None:
            # The serving path outputs what the dense signature does (logits too): compared as probabilities.
            rows = SERVING_SAMPLE_PER_WORKER - self._serving_compared
            serving = to_probabilities(self._serving_runner.predict(batch.serialized[:rows]), self._output_kind)
            self._serving_compared += len(serving)
            yield beam.pvalue.TaggedOutput(SERVING_TAG, serving_agreement(serving, float_pred[:rows],
                                                                          self._classification))
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
            quant_pred = to_probabilities(single_output(runner.predict(batch.inputs), output), self._output_kind)
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
    """Batch-1 latency of one model in milliseconds after warm-up: end to end (``predict``: input quantization,
    the call, output copies) and kernel (the model call alone on inputs already set; ``None`` when the runner cannot
    isolate it).

    A quantized TFLite model's latency also carries ``float_tflite``: the float32 TFLite model of the same function
    (the Quantizer's ``FLOAT_TFLITE_FILENAME``), timed right after it in the same interpreter class with the same
    threads: the like-for-like reference (the float SavedModel's call is mostly TensorFlow's per-call overhead at
    batch 1). ``None`` for the float model, or when the artifact has no such file (a Quantizer before it wrote one).
    """

    p50_ms: float
    p95_ms: float
    calls: int
    kernel_p50_ms: float | None = None
    kernel_p95_ms: float | None = None
    float_tflite: Latency | None = None

    def gated_p95_ms(self, measure: str) -> float | None:
        """The p95 that ``max_latency_ms`` gates on under ``latency_measure=measure``."""
        return self.kernel_p95_ms if measure == KERNEL else self.p95_ms


# Batch-1 calls timed per model and per measure, after warm-up: enough for a stable p95 on a small model. A slow
# model stops at the time budget instead (never under LATENCY_MIN_CALLS): the cost is the same at any split size
# and at most ~4 budgets per evaluation.
LATENCY_WARMUP_CALLS = 20
LATENCY_CALLS = 300
LATENCY_MIN_CALLS = 30
LATENCY_BUDGET_S = 0.05


def _percentiles(call: Callable[[], object], warmup: int, calls: int, budget_s: float) -> tuple[float, float, int]:
    for _ in range(warmup):
        call()
    timings = np.empty(calls)
    deadline = time.perf_counter() + budget_s
    done = 0
    while done < calls and (done < LATENCY_MIN_CALLS or time.perf_counter() < deadline):
        started = time.perf_counter()
        call()
        timings[done] = time.perf_counter() - started
        done += 1
    p50, p95 = np.percentile(timings[:done] * 1000.0, [50, 95])
    return float(p50), float(p95), done


def float_tflite_reference_path(tflite_path: str) -> str:
    """Where the Quantizer put the float32 TFLite reference of the model at ``tflite_path``
    (``<uri>/Format-Serving/model.tflite`` -> ``<uri>/float32_reference.tflite``)."""
    return os.path.join(os.path.dirname(os.path.dirname(tflite_path)), properties.FLOAT_TFLITE_FILENAME)


def _time(runner: SavedModelRunner | TFLiteRunner, one: dict[str, np.ndarray], warmup: int, calls: int,
          budget_s: float) -> Latency:
    p50, p95, done = _percentiles(lambda: runner.predict(one), warmup, calls, budget_s)
    kernel = runner.kernel(one)
    kernel_p50, kernel_p95, _ = _percentiles(kernel, warmup, calls, budget_s) if kernel else (None, None, 0)
    return Latency(p50_ms=p50, p95_ms=p95, calls=done, kernel_p50_ms=kernel_p50, kernel_p95_ms=kernel_p95)


def float_tflite_runner(tflite_path: str) -> TFLiteRunner | None:
    """The float32 TFLite reference beside the quantized model at ``tflite_path``, loaded as the quantized model's
    runner is (``tflite_runner``: the same interpreter class, the interpreter's default thread count, cached per
    process and thread); ``None`` when the artifact holds none or it does not load (logged: latency is reported,
    never gated, on it)."""
    path = float_tflite_reference_path(tflite_path)
    if not fileio.exists(path):
        return None
    with fileio.open(path, "rb") as f:
        content = f.read()
    try:
        return tflite_runner(path, content, bytes_sha256(content))
    except ValueError as e:
        logging.warning("QuantizationEvaluator: float32 TFLite reference %s not timed: %s", path, e)
        return None


def measure_latency(runner: SavedModelRunner | TFLiteRunner, inputs: dict[str, np.ndarray],
                    warmup: int = LATENCY_WARMUP_CALLS, calls: int = LATENCY_CALLS,
                    budget_s: float = LATENCY_BUDGET_S) -> Latency:
    """Times up to ``calls`` single-example calls (fewer when they take more than ``budget_s``, but at least
    ``min(calls, LATENCY_MIN_CALLS)``) on the first example of ``inputs`` after ``warmup`` calls, end to end
    (``runner.predict``) and kernel only (``runner.kernel``). ``calls`` of the result is the end-to-end count.

    For a quantized TFLite model with the Quantizer's float32 TFLite reference beside it, that model is timed the
    same way right after, on the same example, into ``float_tflite`` (see ``Latency``)."""
    one = {name: value[:1] for name, value in inputs.items()}
    latency = _time(runner, one, warmup, calls, budget_s)
    if not isinstance(runner, TFLiteRunner):
        return latency
    reference = float_tflite_runner(runner.model_path)
    if reference is None:
        return latency
    float_tflite = _time(reference, one, warmup, calls, budget_s)
    logging.info("QuantizationEvaluator: %s batch-1 kernel p50 %s ms, its float32 TFLite reference %s ms (same "
                 "interpreter, same threads): %s", runner.model_path, _ms(latency.kernel_p50_ms),
                 _ms(float_tflite.kernel_p50_ms), speedup_text(float_tflite.kernel_p50_ms, latency.kernel_p50_ms))
    return replace(latency, float_tflite=float_tflite)


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def speedup_text(baseline_ms: float | None, quantized_ms: float | None) -> str:
    """``2.31x faster`` / ``1.25x slower`` (baseline over quantized), ``n/a`` when either is missing or zero."""
    if not baseline_ms or not quantized_ms or not np.isfinite(baseline_ms) or not np.isfinite(quantized_ms):
        return "n/a"
    ratio = baseline_ms / quantized_ms
    return f"{ratio:.2f}x faster" if ratio >= 1 else f"{1 / ratio:.2f}x slower"
