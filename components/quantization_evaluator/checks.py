"""Everything the QuantizationEvaluator can refuse before Beam starts, each refusal naming artifact, field and fix.

``check_inputs`` returns the ``EvaluationPlan`` the Beam pipeline runs: file patterns, model paths, the signature
and the outputs to compare.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from tfx.dsl.io import fileio
from tfx.types import Artifact
from tfx.utils import path_utils

from quantgate.components.quantization_evaluator.config import LOGITS, EvaluatorConfig
from quantgate.components.quantization_evaluator.gate import CLASSIFICATION, REGRESSION
from quantgate.components.quantization_evaluator.inference import (
    SerializedExamplesRunner,
    TransformSpec,
    feature_kinds,
    parse_examples,
    saved_model_runner,
    single_output,
    tflite_runner,
    to_probabilities,
)
from quantgate.components.shared import properties
from quantgate.components.shared.digests import bytes_sha256
from quantgate.components.shared.examples_split import tf_example_split_patterns
from quantgate.components.shared.model_runners import SavedModelRunner, TFLiteRunner
from quantgate.components.shared.signature_inputs import (
    InputSpec,
    decode_examples,
    dense_signature_specs,
    serialized_example_signatures,
)
from quantgate.components.shared.transform_inputs import transformed_feature_specs

# How many records of the split are read up front to check labels, slicing features and both models' outputs.
PEEK_RECORDS = 64


@dataclass(frozen=True)
class CandidatePlan:
    """One quantized model to score against the float one: its artifact, file, the sha256 of the bytes loaded here
    (the Beam workers check theirs against it; the blessing records the chosen one's), output, and runner."""

    artifact: Artifact
    tflite_path: str
    tflite_sha256: str
    output: str
    runner: TFLiteRunner

    @property
    def name(self) -> str:
        """A short label for people: the quantization mode and the artifact id (``int8 #7``)."""
        mode = (self.artifact.get_string_custom_property(properties.QUANTIZATION_MODE)
                if self.artifact.has_custom_property(properties.QUANTIZATION_MODE) else "") or "quantized"
        return f"{mode} #{self.artifact.id}"


@dataclass(frozen=True)
class EvaluationPlan:
    """What ``check_inputs`` resolved: file patterns, model paths, the signature, the outputs to compare."""

    patterns: list[str]
    source: str
    saved_model_dir: str
    signature_name: str
    specs: list[InputSpec]
    float_output: str
    sample_inputs: dict[str, np.ndarray]
    # Loaded in the driver for the checks and reused for latency; the Beam DoFns load their own copies.
    float_runner: SavedModelRunner
    # The quantized models, in the order they were wired; all scored in the same Beam pass.
    candidates: list[CandidatePlan]
    # With a transform_graph: the transform, the artifact (for metrics.json), and the float model's serving
    # signature (serialized examples in) compared with the transformed-feature path, when it has one.
    transform: TransformSpec | None = None
    transform_graph: dict[str, object] | None = None
    serving_signature: str | None = None
    # The tf.Example list type of each feature of the first records, for the workers' one-pass decoder.
    kinds: dict[str, str] | None = None


def fail(message: str) -> ValueError:
    """A ValueError with the component's name in front, for the caller to raise."""
    return ValueError(f"QuantizationEvaluator: {message}")


def _peek(patterns: Sequence[str], limit: int) -> list[bytes]:
    files = sorted(f for pattern in patterns for f in fileio.glob(pattern))
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
        raise fail(f"split {split!r} of Examples artifact {examples.uri!r} is empty (no record in {patterns}); "
                    "pass a split that has examples")
    return patterns, records


def _load_tflite(quantized_model: Artifact) -> tuple[str, str, TFLiteRunner]:
    """The model file's path, the sha256 of its bytes, and a runner loaded from it."""
    path = os.path.join(path_utils.serving_model_dir(quantized_model.uri), properties.TFLITE_FILENAME)
    if not fileio.exists(path):
        raise fail(f"quantized_model artifact {quantized_model.uri!r} (id {quantized_model.id}) has no {path}; "
                    "wire the Quantizer's quantized_model output")
    with fileio.open(path, "rb") as f:
        content = f.read()
    sha256 = bytes_sha256(content)
    try:
        return path, sha256, tflite_runner(path, content, sha256)
    except ValueError as e:
        raise fail(f"quantized_model artifact (id {quantized_model.id}) cannot be loaded: {e}; re-run the "
                    "Quantizer to rewrite it") from e


def _pick_output(names: Sequence[str], model: str) -> str:
    if len(names) != 1:
        raise fail(f"the {model} has outputs {sorted(names)}; the evaluator compares a single output: export a "
                    "signature with one output (e.g. probabilities)")
    return names[0]


def _label(key: str, artifact: Artifact) -> str:
    return f"{key} artifact {artifact.uri!r} (id {artifact.id})"


def check_transform_graph(quantized_model: Artifact, transform_graph: Artifact | None) -> None:
    """Refuses a transform graph wired to only one of the Quantizer and the evaluator, or two different ones: the
    evaluator would then score other tensors than those the model was calibrated on."""
    calibrated = (quantized_model.get_string_custom_property(properties.TRANSFORM_GRAPH_URI)
                  if quantized_model.has_custom_property(properties.TRANSFORM_GRAPH_URI) else None)
    wired = transform_graph.uri if transform_graph is not None else None
    if calibrated == wired:
        return
    quantized = f"{_label('quantized_model', quantized_model)}"
    fix = ("Wire the same transform_graph (Transform's output) to both the Quantizer and the QuantizationEvaluator, "
           "or to neither")
    if wired is None:
        raise fail(f"{quantized} was calibrated through transform graph {calibrated!r} (its "
                   f"{properties.TRANSFORM_GRAPH_URI} property) but no {properties.TRANSFORM_GRAPH_KEY} is wired to "
                   f"the evaluator, which would feed the models raw features. {fix}")
    if calibrated is None:
        raise fail(f"{_label(properties.TRANSFORM_GRAPH_KEY, transform_graph)} is wired to the evaluator but "
                   f"{quantized} has no {properties.TRANSFORM_GRAPH_URI} property: the Quantizer had no "
                   f"{properties.TRANSFORM_GRAPH_KEY} and calibrated on other tensors. {fix}")
    raise fail(f"{_label(properties.TRANSFORM_GRAPH_KEY, transform_graph)} is not the transform graph "
               f"{quantized} was calibrated through ({calibrated!r}, its {properties.TRANSFORM_GRAPH_URI} property). "
               f"{fix}")


def _resolve_features(config: EvaluatorConfig, raw_features: set[str], transform_graph: Artifact | None,
                      source: str, count: int) -> tuple[InputSpec, ...]:
    """Where the label and slicing features come from: the raw examples when they carry them (slicing on the raw
    ``payment_type`` is what a user expects), else the transform's outputs. Returns the specs of the latter."""
    transformed: dict[str, InputSpec] = {}
    if transform_graph is not None:
        try:
            transformed = transformed_feature_specs(transform_graph.uri)
        except ValueError as e:
            raise fail(f"{_label(properties.TRANSFORM_GRAPH_KEY, transform_graph)}: {e}") from e
    extra = []
    for role, key in [("label_key", config.label_key)] + [("slicing_feature_keys", k)
                                                          for k in config.slicing_feature_keys]:
        if key in raw_features:
            continue
        if key in transformed:
            spec = transformed[key]
            if role == "label_key":
                if spec.dtype.kind not in "iuf":
                    raise fail(f"label_key {key!r} is a {spec.dtype} output of the transform graph "
                               f"{transform_graph.uri!r}; the evaluator needs numeric labels (class indices for "
                               "classification). Pass a numeric label_key")
                spec = dataclasses.replace(spec, dtype=np.dtype(np.float64))
            extra.append(spec)
            continue
        after = (f"; transformed features ({_label(properties.TRANSFORM_GRAPH_KEY, transform_graph)}): "
                 f"{sorted(transformed)}" if transform_graph is not None else "")
        raise fail(f"{role} {key!r} is not a feature of the first {count} examples of {source}; "
                   f"features present: {sorted(raw_features)}{after}. Pass one of them")
    return tuple(extra)


def _serving_signature(saved_model_dir: str, records: list[bytes], width: int, model: tf.Module) -> str | None:
    """The float model's signature taking serialized examples whose output has ``width`` values, if any (run on
    ``model``, the float runner's loaded SavedModel)."""
    for name in serialized_example_signatures(saved_model_dir):
        try:
            found = SerializedExamplesRunner(saved_model_dir, name, model).predict(records).shape[1]
        except (tf.errors.OpError, ValueError, TypeError) as e:
            logging.warning("QuantizationEvaluator: signature %r of %s cannot score the eval examples (%s); not "
                            "compared with the transformed-feature path", name, saved_model_dir, e)
            continue
        if found == width:
            return name
    return None


# Probabilities from a float32 softmax sum to 1 within rounding; logits are off by far more.
_PROBABILITY_TOLERANCE = 1e-3


def check_probabilities(scores: np.ndarray, what: str) -> None:
    """Refuses classifier outputs that are not probabilities: accuracy thresholds one column at 0.5 and AUC ranks
    scores in [0, 1], so logits would be scored wrong without a word. The fix it names first is the evaluator's
    own ``output_kind='logits'``: a Trainer's export is rarely changed for the gate's sake."""
    finite = scores[np.isfinite(scores).all(axis=1)]
    if not finite.size:
        return
    outside = (finite < -_PROBABILITY_TOLERANCE) | (finite > 1 + _PROBABILITY_TOLERANCE)
    unnormalized = finite.shape[1] > 1 and bool(np.any(np.abs(finite.sum(axis=1) - 1) > _PROBABILITY_TOLERANCE))
    if outside.any() or unnormalized:
        raise fail(f"{what} does not look like probabilities (values in [{finite.min():.4g}, {finite.max():.4g}]"
                   f"{', rows not summing to 1' if unnormalized else ''}): logits? Then pass output_kind='logits' "
                   "to the QuantizationEvaluator (sigmoid / softmax is applied to the float and the quantized "
                   "models' outputs before scoring), or export sigmoid / softmax probabilities from the signature; "
                   "for a regressor, use a regression metric")


def warn_if_probabilities(scores: np.ndarray, what: str) -> None:
    """Logs a warning when raw outputs declared as logits look like one column of probabilities.

    The sigmoid of a value in [0, 1] is in [0.5, 0.73]: every example would be class 1 for both models, so
    accuracy and agreement would say nothing while the gate passes. Only one column is at risk (a softmax keeps
    each row's order, so the top class and a 2-column AUC are unchanged); and only a warning, because a weak
    binary model can give logits in [0, 1] on the first records.
    """
    finite = scores[np.isfinite(scores).all(axis=1)]
    if finite.shape[1] == 1 and finite.size > 1 and finite.min() >= 0.0 and finite.max() <= 1.0:
        logging.warning("QuantizationEvaluator: output_kind='logits' but %s is in [%.4g, %.4g] on the first %d "
                        "examples, like a sigmoid probability: its sigmoid makes every example class 1. If the "
                        "signature already outputs probabilities, drop output_kind='logits'", what, finite.min(),
                        finite.max(), len(finite))


def check_inputs(model: Artifact, quantized_models: Sequence[Artifact], examples: Artifact,
                 config: EvaluatorConfig, transform_graph: Artifact | None = None) -> EvaluationPlan:
    """Checks everything that can be checked before Beam runs; raises ``ValueError`` naming artifact and fix.

    Refused: a missing or empty split; a label or slicing feature absent from the split's first records (and from
    the transform's outputs); a float model without the dense signature; a quantized model that is missing or
    cannot be loaded; the two models disagreeing on inputs (names, shapes) or outputs (count, width); AUC on a
    model that is not binary; a transform graph wired here and not to the Quantizer (or the reverse), one that does
    not produce the signature's inputs, or whose raw features the examples lack. Every quantized model (candidate)
    is checked the same way.
    """
    if not quantized_models:
        raise fail("no quantized_model artifact is wired; wire the Quantizer's quantized_model output")
    ids = [q.id for q in quantized_models]
    if len(set(ids)) != len(ids):
        raise fail(f"quantized_model artifacts {ids} hold the same artifact twice; wire each candidate once")
    for quantized_model in quantized_models:
        check_transform_graph(quantized_model, transform_graph)
    patterns, records = check_split(examples, config.split)
    source = f"Examples artifact {examples.uri!r} split {config.split!r}"
    try:
        kinds = feature_kinds(decode_examples(records, source=source))
    except ValueError as e:
        raise fail(str(e)) from e
    extra_specs = _resolve_features(config, set(kinds), transform_graph, source, len(records))
    saved_model_dir = path_utils.serving_model_path(model.uri)
    try:
        signature_name, specs = dense_signature_specs(saved_model_dir, config.signature_name)
    except (OSError, ValueError) as e:
        raise fail(f"model artifact {model.uri!r} (id {model.id}): {e}") from e
    float_shapes = {s.name: s.example_dims for s in specs}
    loaded = []
    for quantized_model in quantized_models:
        tflite_path, tflite_sha256, quant_runner = _load_tflite(quantized_model)
        quant_shapes = {s.name: s.example_dims for s in quant_runner.input_specs}
        if float_shapes != quant_shapes:
            raise fail(f"signature mismatch: the float model's {signature_name!r} takes {float_shapes} but the "
                       f"quantized model ({tflite_path}) takes {quant_shapes} (name: per-example shape). Quantize "
                       "the same signature (the Quantizer's signature_name) or pass it here as signature_name")
        loaded.append((quantized_model, tflite_path, tflite_sha256, quant_runner))
    float_runner = saved_model_runner(saved_model_dir, signature_name)
    transform = transformer = None
    if transform_graph is not None:
        transform = TransformSpec(transform_graph.uri, extra_specs)
        try:
            transformer = transform.build(specs, source)
            parsed = parse_examples(records, specs, config.label_key, config.slicing_feature_keys, source,
                                    transformer)
        except ValueError as e:
            raise fail(f"signature {signature_name!r} of {_label('model', model)} through "
                       f"{_label(properties.TRANSFORM_GRAPH_KEY, transform_graph)}: {e}") from e
    else:
        parsed = parse_examples(records, specs, config.label_key, config.slicing_feature_keys, source)
    float_output = _pick_output(float_runner.output_names, f"float model's {signature_name!r} signature")
    raw_scores = single_output(float_runner.predict(parsed.inputs), float_output)
    float_scores = to_probabilities(raw_scores, config.output_kind)
    float_width = float_scores.shape[1]
    candidates = []
    for quantized_model, tflite_path, tflite_sha256, quant_runner in loaded:
        quant_output = _pick_output(quant_runner.output_names, f"quantized model {tflite_path}")
        quant_width = single_output(quant_runner.predict(parsed.inputs), quant_output).shape[1]
        if float_width != quant_width:
            raise fail(f"signature mismatch: the float model gives {float_width} values per example "
                       f"({float_output!r}) but the quantized model gives {quant_width} ({quant_output!r}, "
                       f"{tflite_path}); quantize the float model this evaluator is given")
        candidates.append(CandidatePlan(quantized_model, tflite_path, tflite_sha256, quant_output, quant_runner))
    if any(m == "auc" for m, _ in config.thresholds.gated) and float_width > 2:
        raise fail(f"metric='auc' needs a binary classifier (1 or 2 outputs per example); the model gives "
                    f"{float_width}: use metric='accuracy'")
    if config.thresholds.info.task == CLASSIFICATION:
        what = f"the float model's {signature_name!r} output {float_output!r}"
        if config.output_kind == LOGITS:
            warn_if_probabilities(raw_scores, what)
        check_probabilities(float_scores, what)
    if config.thresholds.info.task == REGRESSION and float_width != 1:
        raise fail(f"metric={config.thresholds.metric!r} is a regression metric and needs one prediction per "
                    f"example; the model gives {float_width}: use metric='accuracy' or 'auc'")
    serving_signature = (_serving_signature(saved_model_dir, records, float_width, float_runner.loaded_model)
                         if transformer else None)
    return EvaluationPlan(patterns=patterns, source=source, saved_model_dir=saved_model_dir,
                          signature_name=signature_name, specs=specs, float_output=float_output,
                          sample_inputs=parsed.inputs, float_runner=float_runner, candidates=candidates,
                          transform=transform,
                          transform_graph=None if transform_graph is None else
                          {"id": transform_graph.id, "uri": transform_graph.uri},
                          serving_signature=serving_signature, kinds=kinds)
