"""Bad inputs are refused before Beam runs, with errors naming the artifact, the field and the fix; nothing is
written and nothing is blessed. Plus the validation of the evaluator's parameters."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import tensorflow as tf
from tfx.types import Artifact, artifact_utils, standard_artifacts

from quantgate.components.quantization_evaluator.checks import check_probabilities
from quantgate.components.quantization_evaluator.config import EvaluatorConfig
from quantgate.components.quantization_evaluator.gate import Thresholds
from quantgate.pipelines.models.penguin.penguin_trainer import FEATURE_KEYS


def _model_artifact(root: str, tflite: bytes | None, artifact_id: int = 7) -> Artifact:
    model = standard_artifacts.Model()
    model.uri, model.id = root, artifact_id
    tf.io.gfile.makedirs(os.path.join(root, "Format-Serving"))
    if tflite is not None:
        with open(os.path.join(root, "Format-Serving", "model.tflite"), "wb") as f:
            f.write(tflite)
    return model


def _float_tflite(input_names: tuple[str, ...], width: int) -> bytes:
    """A float TFLite model with ``serving_default`` taking ``[None, 1]`` inputs and giving ``[None, width]``."""
    specs = {name: tf.TensorSpec([None, 1], tf.float32, name=name) for name in input_names}

    @tf.function(input_signature=[specs])
    def serve(features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        total = tf.add_n(list(features.values()))
        return {"probabilities": tf.nn.softmax(tf.tile(total, [1, width]))}

    holder = tf.Module()  # with a trackable object the converter keys the signature 'serving_default'
    holder.serve = serve
    return tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], holder).convert()


def _examples(root: str, records: list[bytes], split: str = "eval") -> Artifact:
    examples = standard_artifacts.Examples()
    examples.uri, examples.id = root, 3
    examples.split_names = artifact_utils.encode_split_names([split])
    split_dir = os.path.join(root, f"Split-{split}")
    tf.io.gfile.makedirs(split_dir)
    with tf.io.TFRecordWriter(os.path.join(split_dir, "data_tfrecord-00000-of-00001.gz"), "GZIP") as writer:
        for record in records:
            writer.write(record)
    return examples


def _refused(run_evaluator, tmp_path, message: str, **kwargs: object) -> None:
    name = "bad" + str(abs(hash(message)))[:8]
    with pytest.raises(ValueError, match=message) as error:
        run_evaluator(name, **kwargs)
    assert "QuantizationEvaluator" in str(error.value)
    # Nothing written: no metrics, no report, no BLESSED / NOT_BLESSED marker.
    written = [f for root in tmp_path.parent.glob(f"{name}*") for f in root.rglob("*") if f.is_file()]
    assert written == []


def test_label_missing_from_the_examples(run_evaluator, tmp_path) -> None:
    _refused(run_evaluator, tmp_path, r"label_key 'penguin_species' is not a feature of the first 64 examples of "
             r"Examples artifact .* split 'eval'; features present: \[.*'species'", label_key="penguin_species")


def test_slicing_feature_missing(run_evaluator, tmp_path) -> None:
    _refused(run_evaluator, tmp_path, "slicing_feature_keys 'continent' is not a feature",
             slicing_feature_keys=["continent"])


def test_string_label_is_refused(run_evaluator, tmp_path) -> None:
    _refused(run_evaluator, tmp_path, "label 'island' holds .* values; the evaluator needs numeric labels",
             label_key="island")


def test_split_missing(run_evaluator, tmp_path) -> None:
    _refused(run_evaluator, tmp_path, r"split 'test' is not in the Examples artifact .*; its splits are "
             r"\['train', 'eval'\]", split="test")


def test_split_empty(run_evaluator, tmp_path) -> None:
    _refused(run_evaluator, tmp_path, "split 'eval' of Examples artifact .* is empty",
             examples=_examples(str(tmp_path / "empty_examples"), []))


def test_quantized_model_corrupt(run_evaluator, penguin_quantized, tmp_path) -> None:
    with open(penguin_quantized.tflite_path, "rb") as f:
        truncated = f.read()[:200]
    _refused(run_evaluator, tmp_path, r"quantized_model artifact \(id 7\) cannot be loaded: .*re-run the Quantizer",
             quantized_model=_model_artifact(str(tmp_path / "corrupt"), truncated))


def test_quantized_model_file_missing(run_evaluator, tmp_path) -> None:
    _refused(run_evaluator, tmp_path, "has no .*model.tflite; wire the Quantizer's quantized_model output",
             quantized_model=_model_artifact(str(tmp_path / "no_file"), None))


def test_signature_mismatch_on_inputs(run_evaluator, tmp_path) -> None:
    _refused(run_evaluator, tmp_path, r"signature mismatch: the float model's 'serving_features' takes .* but the "
             r"quantized model .* takes \{'bill_length_mm': \(1,\)\}",
             quantized_model=_model_artifact(str(tmp_path / "fewer_inputs"), _float_tflite(("bill_length_mm",), 3)))


def test_signature_mismatch_on_outputs(run_evaluator, tmp_path) -> None:
    _refused(run_evaluator, tmp_path, "signature mismatch: the float model gives 3 values per example .* but the "
             "quantized model gives 2",
             quantized_model=_model_artifact(str(tmp_path / "two_outputs"), _float_tflite(FEATURE_KEYS, 2)))


def test_float_signature_without_dense_inputs(run_evaluator, tmp_path) -> None:
    _refused(run_evaluator, tmp_path, r"model artifact .*: .*signature 'serving_default' .* not dense numeric",
             signature_name="serving_default")


def test_auc_needs_a_binary_model(run_evaluator, tmp_path) -> None:
    _refused(run_evaluator, tmp_path, "metric='auc' needs a binary classifier .* gives 3", metric="auc")


def test_regression_metric_needs_one_output(run_evaluator, tmp_path) -> None:
    _refused(run_evaluator, tmp_path, "metric='mse' is a regression metric and needs one prediction per example; "
             "the model gives 3", metric="mse")


@pytest.mark.parametrize(("config", "message"), [
    (EvaluatorConfig(label_key="y", thresholds=Thresholds(max_delta=math.nan)), "max_delta must be a finite"),
    (EvaluatorConfig(label_key="y", thresholds=Thresholds(), split=""), "split must name a split"),
])
def test_config_validation(config: EvaluatorConfig, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config.validate()


@pytest.mark.parametrize("scores", [
    np.array([[2.5], [-1.0]], dtype=np.float32),              # one logit column
    np.array([[3.0, -1.0], [0.5, 0.2]], dtype=np.float32),    # two logit columns
    np.array([[0.7, 0.7], [0.1, 0.2]], dtype=np.float32),     # in [0, 1] but not summing to 1
])
def test_classifier_outputs_that_are_not_probabilities_are_refused(scores: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"QuantizationEvaluator: the model's output does not look like probabilities "
                                         r".*logits\? Then pass output_kind='logits' to the QuantizationEvaluator"):
        check_probabilities(scores, "the model's output")


def test_probabilities_pass_and_non_finite_rows_are_left_to_the_gate() -> None:
    check_probabilities(np.array([[0.2, 0.8], [1.0, 0.0], [np.nan, np.nan]], dtype=np.float32), "output")
    check_probabilities(np.array([[0.0], [1.0], [0.5]], dtype=np.float32), "output")
