"""The QuantizationEvaluator's work as plain functions: check inputs, run the Beam evaluation, decide, publish.

``evaluate`` is the whole run; the executor only unpacks TFX's dicts. Everything that can be refused is refused in
``check_inputs``, before Beam starts; outputs are written into a staging folder and moved into place at the end,
so a failed run leaves no half-written artifact.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import numpy as np
import tensorflow as tf
from tfx.components.evaluator import constants as evaluator_constants
from tfx.types import Artifact
from tfx.utils import path_utils
from tfx_bsl.coders import example_coder
from tfx_bsl.public import tfxio

from components.examples_split import tf_example_split_patterns
from components.quantization_evaluator import report
from components.quantization_evaluator.gate import (
    CLASSIFICATION,
    REGRESSION,
    GateInputs,
    GateResult,
    SliceValues,
    Thresholds,
    degradation,
    gate,
)
from components.quantization_evaluator.inference import (
    Latency,
    ParseExamplesDoFn,
    PredictDoFn,
    measure_latency,
    parse_examples,
    single_output,
)
from components.quantization_evaluator.metrics import OVERALL, ComputeSliceMetrics, SliceKey, slice_name
from components.quantizer.calibration import InputSpec, dense_signature_specs
from components.quantizer.runners import SavedModelRunner, TFLiteRunner

TFLITE_FILENAME = "model.tflite"
METRICS_FILENAME = "metrics.json"
REPORT_FILENAME = "report.html"
STAGING_DIRNAME = ".staging"
SCHEMA_VERSION = 1
# How many records of the split are read up front to check labels, slicing features and both models' outputs.
PEEK_RECORDS = 64
_TELEMETRY = ["quantgate", "QuantizationEvaluator"]


@dataclass(frozen=True)
class EvaluatorConfig:
    """The component's parameters (see ``component.QuantizationEvaluator``)."""

    label_key: str
    thresholds: Thresholds
    split: str = "eval"
    slicing_feature_keys: tuple[str, ...] = ()
    signature_name: str | None = None
    max_batch_size: int = 1024
    latency_calls: int = 300

    def validate(self) -> EvaluatorConfig:
        """Raises ``ValueError`` naming the parameter and the fix; returns ``self``."""
        self.thresholds.validate()
        if not isinstance(self.label_key, str) or not self.label_key:
            raise ValueError(f"QuantizationEvaluator: label_key must name the label feature, got {self.label_key!r}")
        if not isinstance(self.split, str) or not self.split:
            raise ValueError(f"QuantizationEvaluator: split must name a split of the examples, got {self.split!r}")
        keys = self.slicing_feature_keys
        if any(not isinstance(k, str) or not k for k in keys) or len(set(keys)) != len(keys):
            raise ValueError(f"QuantizationEvaluator: slicing_feature_keys must be distinct feature names, got {keys!r}")
        if self.label_key in keys:
            raise ValueError(f"QuantizationEvaluator: slicing on the label {self.label_key!r} makes every slice "
                             "single-class; remove it from slicing_feature_keys (per-class recall covers it)")
        for name in ("max_batch_size", "latency_calls"):
            if getattr(self, name) < 1:
                raise ValueError(f"QuantizationEvaluator: {name} must be >= 1, got {getattr(self, name)}")
        return self


@dataclass(frozen=True)
class EvaluationPlan:
    """What ``check_inputs`` resolved: file patterns, model paths, the signature, the outputs to compare."""

    patterns: list[str]
    source: str
    saved_model_dir: str
    signature_name: str
    specs: list[InputSpec]
    tflite_path: str
    float_output: str
    quant_output: str
    sample_inputs: dict[str, np.ndarray]
    # Loaded in the driver for the checks and reused for latency; the Beam DoFns load their own copies.
    float_runner: SavedModelRunner
    quant_runner: TFLiteRunner


def _fail(message: str) -> ValueError:
    return ValueError(f"QuantizationEvaluator: {message}")


def _peek(patterns: Sequence[str], limit: int) -> list[bytes]:
    files = sorted(f for pattern in patterns for f in tf.io.gfile.glob(pattern))
    records: list[bytes] = []
    for path in files:
        compression = "GZIP" if path.endswith(".gz") else ""
        for record in tf.data.TFRecordDataset(path, compression_type=compression).take(limit - len(records)):
            records.append(record.numpy())
        if len(records) >= limit:
            break
    return records


def check_split(examples: Artifact, split: str) -> tuple[list[str], list[bytes]]:
    """The split's file patterns and its first records; refuses a missing, empty or non-tf.Example split."""
    patterns = tf_example_split_patterns(examples, split, component="QuantizationEvaluator")
    records = _peek(patterns, PEEK_RECORDS)
    if not records:
        raise _fail(f"split {split!r} of Examples artifact {examples.uri!r} is empty (no record in {patterns}); "
                    "pass a split that has examples")
    return patterns, records


def _load_tflite(quantized_model: Artifact) -> tuple[str, TFLiteRunner]:
    path = os.path.join(path_utils.serving_model_dir(quantized_model.uri), TFLITE_FILENAME)
    if not tf.io.gfile.exists(path):
        raise _fail(f"quantized_model artifact {quantized_model.uri!r} (id {quantized_model.id}) has no {path}; "
                    "wire the Quantizer's quantized_model output")
    try:
        return path, TFLiteRunner(path)
    except ValueError as e:
        raise _fail(f"quantized_model artifact (id {quantized_model.id}) cannot be loaded: {e}. Re-run the "
                    "Quantizer to rewrite it") from e


def _pick_output(names: Sequence[str], model: str) -> str:
    if len(names) != 1:
        raise _fail(f"the {model} has outputs {sorted(names)}; the evaluator compares a single output: export a "
                    "signature with one output (e.g. probabilities)")
    return names[0]


def check_inputs(model: Artifact, quantized_model: Artifact, examples: Artifact,
                 config: EvaluatorConfig) -> EvaluationPlan:
    """Checks everything that can be checked before Beam runs; raises ``ValueError`` naming artifact and fix.

    Refused: a missing or empty split; a label or slicing feature absent from the split's first records; a float
    model without the dense signature; a quantized model that is missing or cannot be loaded; the two models
    disagreeing on inputs (names, shapes) or outputs (count, width); AUC on a model that is not binary.
    """
    patterns, records = check_split(examples, config.split)
    source = f"Examples artifact {examples.uri!r} split {config.split!r}"
    features = set(example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(records).schema.names)
    for role, key in [("label_key", config.label_key)] + [("slicing_feature_keys", k)
                                                          for k in config.slicing_feature_keys]:
        if key not in features:
            raise _fail(f"{role} {key!r} is not a feature of the first {len(records)} examples of {source}; "
                        f"features present: {sorted(features)}. Pass one of them")
    saved_model_dir = path_utils.serving_model_path(model.uri)
    try:
        signature_name, specs = dense_signature_specs(saved_model_dir, config.signature_name)
    except (OSError, ValueError) as e:
        raise _fail(f"model artifact {model.uri!r} (id {model.id}): {e}") from e
    tflite_path, quant_runner = _load_tflite(quantized_model)
    float_shapes = {s.name: s.example_dims for s in specs}
    quant_shapes = {s.name: s.example_dims for s in quant_runner.input_specs}
    if float_shapes != quant_shapes:
        raise _fail(f"signature mismatch: the float model's {signature_name!r} takes {float_shapes} but the "
                    f"quantized model ({tflite_path}) takes {quant_shapes} (name: per-example shape). Quantize the "
                    "same signature (the Quantizer's signature_name) or pass it here as signature_name")
    float_runner = SavedModelRunner(saved_model_dir, signature_name)
    parsed = parse_examples(records, specs, config.label_key, (), source)
    float_output = _pick_output(float_runner.output_names, f"float model's {signature_name!r} signature")
    quant_output = _pick_output(quant_runner.output_names, f"quantized model {tflite_path}")
    float_width = single_output(float_runner.predict(parsed.inputs), float_output).shape[1]
    quant_width = single_output(quant_runner.predict(parsed.inputs), quant_output).shape[1]
    if float_width != quant_width:
        raise _fail(f"signature mismatch: the float model gives {float_width} values per example "
                    f"({float_output!r}) but the quantized model gives {quant_width} ({quant_output!r}); quantize "
                    "the float model this evaluator is given")
    if config.thresholds.metric == "auc" and float_width > 2:
        raise _fail(f"metric='auc' needs a binary classifier (1 or 2 outputs per example); the model gives "
                    f"{float_width}: use metric='accuracy'")
    if config.thresholds.info.task == REGRESSION and float_width != 1:
        raise _fail(f"metric={config.thresholds.metric!r} is a regression metric and needs one prediction per "
                    f"example; the model gives {float_width}: use metric='accuracy' or 'auc'")
    return EvaluationPlan(patterns=patterns, source=source, saved_model_dir=saved_model_dir,
                          signature_name=signature_name, specs=specs, tflite_path=tflite_path,
                          float_output=float_output, quant_output=quant_output,
                          sample_inputs=parsed.inputs, float_runner=float_runner, quant_runner=quant_runner)


def _json_safe(value: Any) -> Any:
    """NaN and infinities become ``null`` (strict JSON); numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _to_json_line(row: tuple[SliceKey, dict[str, Any]]) -> str:
    key, values = row
    return json.dumps({"slice": list(key), "metrics": _json_safe(values)})


def run_beam_evaluation(pipeline: beam.Pipeline, plan: EvaluationPlan, config: EvaluatorConfig,
                        staging_dir: str) -> dict[SliceKey, dict[str, Any]]:
    """Runs ``pipeline`` (not yet run): read -> batch -> parse -> predict -> per-slice metrics. Returns them by slice."""
    prefix = os.path.join(staging_dir, "slice_metrics")
    task = config.thresholds.info.task
    with pipeline as p:
        _ = (
            p
            | "ReadSplit" >> tfxio.TFExampleRecord(plan.patterns, telemetry_descriptors=_TELEMETRY).RawRecordBeamSource()
            | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=config.max_batch_size)
            | "Parse" >> beam.ParDo(ParseExamplesDoFn(plan.specs, config.label_key, config.slicing_feature_keys,
                                                      plan.source))
            | "Predict" >> beam.ParDo(PredictDoFn(plan.saved_model_dir, plan.signature_name, plan.tflite_path,
                                                  plan.float_output, plan.quant_output))
            | "Metrics" >> ComputeSliceMetrics(task, config.slicing_feature_keys)
            | "ToJson" >> beam.Map(_to_json_line)
            | "Write" >> beam.io.WriteToText(prefix, file_name_suffix=".jsonl")
        )
    results: dict[SliceKey, dict[str, Any]] = {}
    for path in tf.io.gfile.glob(prefix + "*.jsonl"):
        with tf.io.gfile.GFile(path) as f:
            for line in f:
                row = json.loads(line)
                results[tuple(row["slice"])] = row["metrics"]
    return results


def _size_bytes(artifact: Artifact, name: str, fallback_path: str | None = None) -> int | None:
    if artifact.has_custom_property(name):
        return int(artifact.get_int_custom_property(name))
    return int(tf.io.gfile.stat(fallback_path).length) if fallback_path else None


def _slice_entry(key: SliceKey, values: dict[str, Any], thresholds: Thresholds) -> dict[str, Any]:
    metric = thresholds.metric
    float_value, quant_value = values["float"].get(metric), values["quantized"].get(metric)
    delta = None
    if float_value is not None and quant_value is not None:
        delta = degradation(float_value, quant_value, thresholds.info, thresholds.delta_type)
    entry = {"feature": key[0], "value": key[1]} if key != OVERALL else {}
    return {**entry, **values, "delta": delta}


def _slice_values(name: str, entry: dict[str, Any], metric: str) -> SliceValues:
    def number(v: float | None) -> float:
        return math.nan if v is None else float(v)

    return SliceValues(name, entry["num_examples"], number(entry["float"].get(metric)),
                       number(entry["quantized"].get(metric)))


def build_metrics(results: dict[SliceKey, dict[str, Any]], config: EvaluatorConfig, plan: EvaluationPlan,
                  model: Artifact, quantized_model: Artifact, latency: dict[str, Latency]) -> tuple[dict, GateResult]:
    """Assembles ``metrics.json`` (schema in the README) and decides the gate."""
    thresholds = config.thresholds
    if OVERALL not in results:  # the split's files held no record that reached the combiner
        raise _fail(f"{plan.source} produced no predictions; pass a split that has examples")
    overall = _slice_entry(OVERALL, results[OVERALL], thresholds)
    slices, skipped = [], []
    for key in sorted(k for k in results if k != OVERALL):
        entry = _slice_entry(key, results[key], thresholds)
        if entry["num_examples"] >= thresholds.min_slice_size:
            slices.append(entry)
        else:
            skipped.append({"feature": key[0], "value": key[1], "num_examples": entry["num_examples"]})
    sizes = {"float_bytes": _size_bytes(quantized_model, "float_size_bytes"),
             "quantized_bytes": _size_bytes(quantized_model, "size_bytes", plan.tflite_path)}
    verdict = gate(GateInputs(
        overall=_slice_values("overall", overall, thresholds.metric),
        slices=[_slice_values(slice_name((s["feature"], s["value"])), s, thresholds.metric) for s in slices],
        agreement=overall["agreement"] if thresholds.info.task == CLASSIFICATION else None,
        nonfinite_predictions=overall["nonfinite"],
        missing_predictions=overall["missing"],
        model_bytes=sizes["quantized_bytes"],
        latency_p95_ms=latency["quantized"].p95_ms,
    ), thresholds)
    metrics = {
        "schema_version": SCHEMA_VERSION,
        "metric": thresholds.metric,
        "task": thresholds.info.task,
        "higher_is_better": thresholds.info.higher_is_better,
        "split": config.split,
        "label_key": config.label_key,
        "slicing_feature_keys": list(config.slicing_feature_keys),
        "models": {
            "float": {"id": model.id, "uri": model.uri, "signature_name": plan.signature_name,
                      "output": plan.float_output},
            "quantized": {"id": quantized_model.id, "uri": quantized_model.uri, "path": plan.tflite_path,
                          "output": plan.quant_output,
                          "quantization_mode": quantized_model.get_string_custom_property("quantization_mode") or None,
                          "sha256": quantized_model.get_string_custom_property("sha256") or None},
        },
        "overall": overall,
        "slices": slices,
        "skipped_slices": skipped,
        "latency_ms": {name: dataclasses.asdict(value) for name, value in latency.items()},
        "sizes": sizes,
        "thresholds": dataclasses.asdict(thresholds),
        "verdict": {"blessed": verdict.blessed, "reason": verdict.reason, "reasons": verdict.reasons,
                    "delta": verdict.delta, "threshold": verdict.threshold},
    }
    return _json_safe(metrics), verdict


def _write_outputs(evaluation_uri: str, blessing_uri: str, metrics: dict[str, Any], verdict: GateResult) -> None:
    """Writes metrics.json and report.html via a staging folder, then the BLESSED / NOT_BLESSED marker."""
    staging = os.path.join(evaluation_uri, STAGING_DIRNAME)
    tf.io.gfile.makedirs(staging)
    for name, content in ((METRICS_FILENAME, json.dumps(metrics, indent=2, sort_keys=True)),
                          (REPORT_FILENAME, report.render_html(metrics))):
        with tf.io.gfile.GFile(os.path.join(staging, name), "w") as f:
            f.write(content)
    for name in (REPORT_FILENAME, METRICS_FILENAME):  # metrics.json last: its presence means complete
        tf.io.gfile.rename(os.path.join(staging, name), os.path.join(evaluation_uri, name), overwrite=True)
    marker = evaluator_constants.BLESSED_FILE_NAME if verdict.blessed else evaluator_constants.NOT_BLESSED_FILE_NAME
    tf.io.gfile.makedirs(blessing_uri)
    with tf.io.gfile.GFile(os.path.join(blessing_uri, marker), "w") as f:
        f.write("")


def set_properties(evaluation: Artifact, blessing: Artifact, metrics: dict[str, Any], verdict: GateResult,
                   quantized_model: Artifact) -> None:
    """The numbers people gate on, as custom properties (MLMD, Vertex and KFP show them; the stock Pusher and
    ``LatestBlessedModelStrategy`` read ``blessed`` and ``current_model_id``, as TFX's Evaluator writes them)."""
    delta = math.nan if verdict.delta is None else verdict.delta
    blessing.set_int_custom_property(evaluator_constants.ARTIFACT_PROPERTY_BLESSED_KEY,
                                     evaluator_constants.BLESSED_VALUE if verdict.blessed
                                     else evaluator_constants.NOT_BLESSED_VALUE)
    blessing.set_string_custom_property(evaluator_constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY,
                                        quantized_model.uri)
    blessing.set_int_custom_property(evaluator_constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY, quantized_model.id)
    metric = metrics["metric"]
    overall = metrics["overall"]
    for artifact in (blessing, evaluation):
        artifact.set_string_custom_property("reason", verdict.reason)
        artifact.set_float_custom_property("delta", delta)
        artifact.set_float_custom_property("threshold", verdict.threshold)
        artifact.set_string_custom_property("metric", metric)
        artifact.set_string_custom_property("delta_type", metrics["thresholds"]["delta_type"])
    for name, value in ((f"float_{metric}", overall["float"].get(metric)),
                        (f"quantized_{metric}", overall["quantized"].get(metric)),
                        ("agreement", overall["agreement"]),
                        ("quantized_latency_p95_ms", metrics["latency_ms"]["quantized"]["p95_ms"]),
                        ("float_latency_p95_ms", metrics["latency_ms"]["float"]["p95_ms"])):
        evaluation.set_float_custom_property(name, math.nan if value is None else value)
    evaluation.set_int_custom_property("blessed", int(verdict.blessed))
    evaluation.set_int_custom_property("num_examples", overall["num_examples"])
    if metrics["sizes"]["quantized_bytes"] is not None:
        evaluation.set_int_custom_property("quantized_size_bytes", metrics["sizes"]["quantized_bytes"])
    evaluation.set_string_custom_property("report_path", os.path.join(evaluation.uri, REPORT_FILENAME))
    evaluation.set_string_custom_property("metrics_path", os.path.join(evaluation.uri, METRICS_FILENAME))


def evaluate(pipeline: beam.Pipeline, *, model: Artifact, quantized_model: Artifact, examples: Artifact,
             evaluation: Artifact, blessing: Artifact, config: EvaluatorConfig) -> dict[str, Any]:
    """The whole run: check, evaluate with Beam, time both models, gate, publish. Returns ``metrics.json``."""
    config.validate()
    plan = check_inputs(model, quantized_model, examples, config)
    staging = os.path.join(evaluation.uri, STAGING_DIRNAME)
    started = time.monotonic()
    try:
        results = run_beam_evaluation(pipeline, plan, config, staging)
        n = results.get(OVERALL, {}).get("num_examples", 0)
        elapsed = time.monotonic() - started
        logging.info("QuantizationEvaluator: scored %d examples of %s in %.1f s (%.0f examples/s), %d slices",
                     n, plan.source, elapsed, n / max(elapsed, 1e-9), len(results) - 1)
        latency = {
            "float": measure_latency(plan.float_runner, plan.sample_inputs, calls=config.latency_calls),
            "quantized": measure_latency(plan.quant_runner, plan.sample_inputs, calls=config.latency_calls),
        }
        logging.info("QuantizationEvaluator: batch-1 latency p50/p95 float %.3f/%.3f ms, quantized %.3f/%.3f ms "
                     "(%d calls each after warm-up)", latency["float"].p50_ms, latency["float"].p95_ms,
                     latency["quantized"].p50_ms, latency["quantized"].p95_ms, config.latency_calls)
        metrics, verdict = build_metrics(results, config, plan, model, quantized_model, latency)
        _write_outputs(evaluation.uri, blessing.uri, metrics, verdict)
    finally:
        if tf.io.gfile.exists(staging):
            tf.io.gfile.rmtree(staging)
    set_properties(evaluation, blessing, metrics, verdict, quantized_model)
    logging.info("QuantizationEvaluator: %s (float %s %s, quantized %s, delta %s, threshold %s)", verdict.reason,
                 metrics["metric"], metrics["overall"]["float"].get(metrics["metric"]),
                 metrics["overall"]["quantized"].get(metrics["metric"]), verdict.delta, verdict.threshold)
    return metrics
