"""Issue 24 item 3, on real Keras models, real TFLite conversions and real Beam: a classifier exporting logits (a
final Dense with no activation, as TFX's IMDB example trains with ``from_logits=True``) is gated with
``output_kind='logits'``, and comes out with the same accuracy, AUC, agreement and confusion as the same weights
exporting sigmoid / softmax probabilities; logits declared as probabilities and logits with a regression metric
are refused naming ``output_kind``."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import roc_auc_score
from tfx import types
from tfx.types import Artifact, standard_artifacts

from quantgate.components import QuantizationEvaluator
from quantgate.components.quantization_evaluator import executor
from quantgate.components.quantization_evaluator.checks import warn_if_probabilities
from quantgate.components.quantization_evaluator.config import config_from_exec_properties
from quantgate.components.quantization_evaluator.inference import to_probabilities
from quantgate.components.quantization_evaluator.spec import OUTPUT_KIND_KEY, candidate_key
from quantgate.components.shared import properties
from quantgate.components.shared.model_runners import TFLiteRunner
from quantgate.components.types import QuantizationEvaluation

SIGNATURE = "dense"
FEATURES = 4
EVAL_ROWS = 600
CALIBRATION_ROWS = 200


# --- the transform alone --------------------------------------------------------------------------------------------

def test_sigmoid_and_softmax_are_stable_and_keep_non_finite_rows_non_finite() -> None:
    one = np.array([[0.0], [2.0], [-2.0], [1e4], [-1e4], [np.inf], [np.nan]], dtype=np.float32)
    # No overflow, no invalid value, no division by zero on the way (underflow to 0 is the right answer).
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        got = to_probabilities(one, "logits")
    assert got.dtype == np.float32
    np.testing.assert_allclose(got[:5, 0], [0.5, 1 / (1 + np.exp(-2.0)), 1 / (1 + np.exp(2.0)), 1.0, 0.0], rtol=1e-6)
    # sigmoid(inf) would be a finite 1.0: the row must still count as a non-finite prediction.
    assert np.isnan(got[5:]).all()
    three = np.array([[1.0, 2.0, 3.0], [1e4, 0.0, -1e4], [0.0, np.inf, 1.0]], dtype=np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        got = to_probabilities(three, "logits")
    e = np.exp([1.0, 2.0, 3.0])
    np.testing.assert_allclose(got[0], e / e.sum(), rtol=1e-6)
    np.testing.assert_allclose(got[1], [1.0, 0.0, 0.0])
    assert np.isnan(got[2]).all()
    probabilities = np.array([[0.2, 0.8]], dtype=np.float32)
    assert to_probabilities(probabilities, "probabilities") is probabilities  # today's path, untouched


def test_one_column_of_probabilities_declared_as_logits_is_warned_about(caplog) -> None:
    with caplog.at_level("WARNING"):
        warn_if_probabilities(np.array([[0.1], [0.9], [0.5]], dtype=np.float32), "output 'p'")
        assert "output_kind='logits' but output 'p' is in [0.1, 0.9]" in caplog.text
        caplog.clear()
        warn_if_probabilities(np.array([[-2.0], [3.0]], dtype=np.float32), "output 'p'")  # logits: no word
        warn_if_probabilities(np.array([[0.2, 0.8]], dtype=np.float32), "output 'p'")  # softmax keeps the order
        assert not caplog.text


# --- the component's parameter ---------------------------------------------------------------------------------------

def _component(**params: object) -> QuantizationEvaluator:
    return QuantizationEvaluator(model=types.Channel(type=standard_artifacts.Model),
                                 quantized_model=types.Channel(type=standard_artifacts.Model),
                                 examples=types.Channel(type=standard_artifacts.Examples),
                                 **{"label_key": "y", **params})


def test_output_kind_round_trips_and_old_executions_mean_probabilities() -> None:
    logits = _component(output_kind="logits", metric="auc")
    assert logits.exec_properties[OUTPUT_KIND_KEY] == "logits"
    assert config_from_exec_properties(logits.exec_properties).output_kind == "logits"
    default = dict(_component().exec_properties)
    assert config_from_exec_properties(default).output_kind == "probabilities"
    del default[OUTPUT_KIND_KEY]  # an execution recorded before the parameter existed
    assert config_from_exec_properties(default).output_kind == "probabilities"


def test_bad_output_kind_is_refused_at_construction_listing_the_values() -> None:
    with pytest.raises(ValueError, match=r"output_kind must be one of \('probabilities', 'logits'\).*got 'logit'"):
        _component(output_kind="logit")


@pytest.mark.parametrize("metric", ["mse", ["mae", "mse"]])
def test_logits_with_a_regression_metric_are_refused_at_construction(metric: str | list[str]) -> None:
    with pytest.raises(ValueError, match=r"output_kind='logits' is for classifiers, but metric='m[as]e' is a "
                                         r"regression metric.*drop output_kind"):
        _component(output_kind="logits", metric=metric)


# --- real models: the same weights exporting logits and probabilities ------------------------------------------------

@dataclass
class Variant:
    """One export of a classifier: the float Model artifact, its int8 and float32 TFLite candidates."""

    model: Artifact
    int8: Artifact
    float_tflite: Artifact
    output: str


@dataclass
class Case:
    """A classifier's two exports (``logits`` and ``probabilities``), the examples and the eval inputs/labels."""

    logits: Variant
    probabilities: Variant
    examples: Artifact
    eval_x: np.ndarray
    eval_y: np.ndarray


class _Export(tf.Module):
    """The Keras model behind one dense signature, as a Trainer exports it: raw output, or through ``activation``."""

    def __init__(self, model: tf.keras.Model, output: str, activation: str | None) -> None:
        super().__init__()
        self.model = model
        self._output = output
        self._activation = activation

    @tf.function(input_signature=[tf.TensorSpec([None, FEATURES], tf.float32, name="x")])
    def dense(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        out = self.model(x, training=False)
        if self._activation == "sigmoid":
            out = tf.sigmoid(out)
        elif self._activation == "softmax":
            out = tf.nn.softmax(out)
        return {self._output: out}


def _record(x: np.ndarray, y: int) -> bytes:
    return tf.train.Example(features=tf.train.Features(feature={
        "x": tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in x])),
        "y": tf.train.Feature(int64_list=tf.train.Int64List(value=[y]))})).SerializeToString()


def _examples(root: str, records: list[bytes], artifact_id: int) -> Artifact:
    artifact = standard_artifacts.Examples()
    artifact.uri, artifact.id = os.path.join(root, "examples"), artifact_id
    artifact.split_names = json.dumps(["eval"])
    os.makedirs(os.path.join(artifact.uri, "Split-eval"))
    with tf.io.TFRecordWriter(os.path.join(artifact.uri, "Split-eval", "data.gz"), "GZIP") as w:
        for record in records:
            w.write(record)
    return artifact


def _convert(saved_model_dir: str, calibration: np.ndarray | None, root: str, artifact_id: int) -> Artifact:
    """The dense signature as a TFLite Model artifact: all-int8 with int8 input and output tensors (the runner
    quantizes the input and dequantizes the output) when ``calibration`` is given, else float32."""
    loaded = tf.saved_model.load(saved_model_dir)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([loaded.signatures[SIGNATURE]], loaded)
    if calibration is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([row[None, :]] for row in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int8
    artifact = standard_artifacts.Model()
    artifact.uri, artifact.id = root, artifact_id
    os.makedirs(os.path.join(root, "Format-Serving"))
    with open(os.path.join(root, "Format-Serving", properties.TFLITE_FILENAME), "wb") as f:
        f.write(converter.convert())
    artifact.set_string_custom_property(properties.QUANTIZATION_MODE, "int8" if calibration is not None else "none")
    return artifact


def _variant(keras_model: tf.keras.Model, output: str, activation: str | None, calibration: np.ndarray, root: str,
             first_id: int) -> Variant:
    model = standard_artifacts.Model()
    model.uri, model.id = os.path.join(root, "model"), first_id
    saved_model_dir = os.path.join(model.uri, "Format-Serving")
    export = _Export(keras_model, output, activation)
    tf.saved_model.save(export, saved_model_dir, signatures={SIGNATURE: export.dense})
    return Variant(model, _convert(saved_model_dir, calibration, os.path.join(root, "int8"), first_id + 1),
                   _convert(saved_model_dir, None, os.path.join(root, "float_tflite"), first_id + 2), output)


def _case(root: str, classes: int, seed: int) -> Case:
    """A small classifier ending in a logit layer, trained as TFX's IMDB example is (``from_logits=True``) on
    noisy labels (so neither model is perfect and AUC has ties to break), exported both ways."""
    rng = np.random.default_rng(seed)
    n = CALIBRATION_ROWS + EVAL_ROWS
    x = rng.normal(size=(n, FEATURES)).astype(np.float32)
    width = classes if classes > 2 else 1
    truth = x @ rng.normal(size=(FEATURES, width)) + rng.normal(scale=0.8, size=(n, width))
    y = truth.argmax(1) if classes > 2 else (truth[:, 0] > 0).astype(np.int64)
    tf.keras.utils.set_random_seed(seed)
    keras_model = tf.keras.Sequential([tf.keras.Input((FEATURES,)), tf.keras.layers.Dense(8, activation="relu"),
                                       tf.keras.layers.Dense(width)])  # no activation: logits
    loss = (tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True) if classes > 2
            else tf.keras.losses.BinaryCrossentropy(from_logits=True))
    keras_model.compile(optimizer=tf.keras.optimizers.Adam(0.05), loss=loss)
    keras_model.fit(x[:CALIBRATION_ROWS], y[:CALIBRATION_ROWS], epochs=15, batch_size=32, verbose=0)
    calibration = x[:CALIBRATION_ROWS]
    activation = "softmax" if classes > 2 else "sigmoid"
    return Case(
        logits=_variant(keras_model, "logits", None, calibration, os.path.join(root, "logits"), seed * 100 + 1),
        probabilities=_variant(keras_model, "probabilities", activation, calibration,
                               os.path.join(root, "probabilities"), seed * 100 + 11),
        examples=_examples(root, [_record(x[i], int(y[i])) for i in range(CALIBRATION_ROWS, n)], seed * 100 + 21),
        eval_x=x[CALIBRATION_ROWS:], eval_y=y[CALIBRATION_ROWS:])


def _evaluate(root: str, variant: Variant, examples: Artifact, **params: object) -> tuple[dict, str]:
    """Builds the component (its checks and encoding) and runs the real executor on the int8 and the float32
    TFLite candidates; returns metrics.json and the blessing's marker file."""
    candidates = [variant.int8, variant.float_tflite]
    component = QuantizationEvaluator(
        model=types.Channel(type=standard_artifacts.Model),
        quantized_model=[types.Channel(type=standard_artifacts.Model) for _ in candidates],
        examples=types.Channel(type=standard_artifacts.Examples), **{"label_key": "y", **params})
    evaluation, blessing = QuantizationEvaluation(), standard_artifacts.ModelBlessing()
    evaluation.uri, blessing.uri = os.path.join(root, "evaluation"), os.path.join(root, "blessing")
    for artifact in (evaluation, blessing):
        os.makedirs(artifact.uri)  # the launcher creates output folders before Do
    executor.Executor().Do(
        {executor.MODEL_KEY: [variant.model], **{candidate_key(i): [c] for i, c in enumerate(candidates)},
         executor.EXAMPLES_KEY: [examples]},
        {executor.EVALUATION_KEY: [evaluation], executor.BLESSING_KEY: [blessing]},
        dict(component.exec_properties))
    with open(os.path.join(evaluation.uri, properties.METRICS_FILENAME)) as f:
        metrics = json.load(f)
    (marker,) = os.listdir(blessing.uri)
    return metrics, marker


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Case:
    return _case(str(tmp_path_factory.mktemp("binary_logits")), classes=2, seed=3)


@pytest.fixture(scope="module")
def three_class(tmp_path_factory: pytest.TempPathFactory) -> Case:
    return _case(str(tmp_path_factory.mktemp("three_class_logits")), classes=3, seed=5)


def _sigmoid(values: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-values.astype(np.float64)))


def _by_name(metrics: dict) -> dict[str, dict]:
    return {c["quantization_mode"]: c for c in metrics["candidates"]}


def test_binary_logits_score_as_their_sigmoid_probabilities(binary: Case, tmp_path) -> None:
    params = {"metric": ["accuracy", "auc"], "max_delta": 0.05, "min_agreement": 0.9}
    logits, logits_marker = _evaluate(str(tmp_path / "logits"), binary.logits, binary.examples,
                                      output_kind="logits", **params)
    probs, probs_marker = _evaluate(str(tmp_path / "probs"), binary.probabilities, binary.examples, **params)
    assert logits_marker == probs_marker == "BLESSED", logits["verdict"]["reasons"]
    assert logits["models"]["float"]["output_kind"] == "logits"
    assert probs["models"]["float"]["output_kind"] == "probabilities"
    assert {c["output_kind"] for c in logits["candidates"]} == {"logits"}
    with open(tmp_path / "logits" / "evaluation" / properties.EVALUATION_REPORT_FILENAME) as f:
        assert "Outputs are logits (<code>output_kind='logits'</code>)" in f.read()

    # Sane, and computed on probabilities: the float model's accuracy and AUC on the labels, recomputed here.
    float_logits = tf.saved_model.load(binary.logits.model.uri + "/Format-Serving").signatures[SIGNATURE](
        x=tf.constant(binary.eval_x))["logits"].numpy()[:, 0]
    overall = logits["overall"]
    assert overall["num_examples"] == EVAL_ROWS and overall["nonfinite"] == 0
    assert 0.75 < overall["float"]["accuracy"] < 1.0
    assert overall["float"]["accuracy"] == pytest.approx(np.mean((float_logits > 0) == binary.eval_y))
    assert overall["float"]["auc"] == pytest.approx(roc_auc_score(binary.eval_y, float_logits), abs=1e-3)

    # The same weights expressed two ways: every metric of the float model and of each candidate is the same.
    # The float32 TFLite candidate computes what the SavedModel does, so its numbers agree exactly across the two
    # exports; AUC up to its 10k-bucket histogram, where float32 rounding of a sigmoid can move a score over an edge.
    for name in ("none", "int8"):
        a, b = _by_name(logits)[name]["overall"], _by_name(probs)[name]["overall"]
        assert a["float"]["accuracy"] == b["float"]["accuracy"]
        assert a["float"]["auc"] == pytest.approx(b["float"]["auc"], abs=1e-4)
        assert a["float"]["recall"] == b["float"]["recall"]
        assert a["confusion"]["float"] == b["confusion"]["float"]
    a, b = _by_name(logits)["none"]["overall"], _by_name(probs)["none"]["overall"]
    assert a["agreement"] == b["agreement"] == 1.0
    assert a["quantized"]["accuracy"] == b["quantized"]["accuracy"]
    assert a["quantized"]["auc"] == pytest.approx(b["quantized"]["auc"], abs=1e-4)

    # The int8 candidate's output tensor is int8 logits: the runner dequantizes them and the evaluator's sigmoid
    # comes after, so its metrics are those of sigmoid(dequantized logits), recomputed here.
    int8 = _by_name(logits)["int8"]
    runner = TFLiteRunner(int8["path"])
    assert runner.output_details["logits"]["dtype"] == np.int8
    quant_logits = runner.predict({"x": binary.eval_x})["logits"][:, 0]
    quant_classes = (_sigmoid(quant_logits) > 0.5).astype(np.int64)
    assert int8["overall"]["quantized"]["accuracy"] == pytest.approx(np.mean(quant_classes == binary.eval_y))
    assert int8["overall"]["agreement"] == pytest.approx(np.mean(quant_classes == (float_logits > 0)))
    assert int8["overall"]["quantized"]["auc"] == pytest.approx(roc_auc_score(binary.eval_y, quant_logits), abs=2e-3)
    # The int8 models of the two exports are different models (a logit vs a [0, 1] output scale): close, not equal.
    other = _by_name(probs)["int8"]["overall"]
    assert int8["overall"]["quantized"]["auc"] == pytest.approx(other["quantized"]["auc"], abs=0.02)
    assert int8["overall"]["agreement"] == pytest.approx(other["agreement"], abs=0.03)


def test_three_class_logits_score_as_their_softmax_probabilities(three_class: Case, tmp_path) -> None:
    params = {"max_delta": 0.05, "min_agreement": 0.9}
    logits, logits_marker = _evaluate(str(tmp_path / "logits"), three_class.logits, three_class.examples,
                                      output_kind="logits", **params)
    probs, probs_marker = _evaluate(str(tmp_path / "probs"), three_class.probabilities, three_class.examples,
                                    **params)
    assert logits_marker == probs_marker == "BLESSED", logits["verdict"]["reasons"]
    assert 0.6 < logits["overall"]["float"]["accuracy"] < 1.0
    for name in ("none", "int8"):
        a, b = _by_name(logits)[name]["overall"], _by_name(probs)[name]["overall"]
        assert a["float"] == b["float"]  # accuracy and per-class recall
        assert a["confusion"]["float"] == b["confusion"]["float"]
    a, b = _by_name(logits)["none"]["overall"], _by_name(probs)["none"]["overall"]
    assert a["quantized"] == b["quantized"] and a["agreement"] == b["agreement"]
    assert a["confusion"]["disagreement"] == b["confusion"]["disagreement"]
    int8 = _by_name(logits)["int8"]
    quant_classes = TFLiteRunner(int8["path"]).predict({"x": three_class.eval_x})["logits"].argmax(1)
    assert int8["overall"]["quantized"]["accuracy"] == pytest.approx(np.mean(quant_classes == three_class.eval_y))


@pytest.mark.parametrize("case", ["binary", "three_class"])
def test_logits_declared_as_probabilities_are_refused_naming_output_kind(case: str, request, tmp_path) -> None:
    variant: Case = request.getfixturevalue(case)
    with pytest.raises(ValueError, match=r"output 'logits' does not look like probabilities .*logits\? Then pass "
                                         r"output_kind='logits' to the QuantizationEvaluator"):
        _evaluate(str(tmp_path), variant.logits, variant.examples, max_delta=0.05)
    assert os.listdir(tmp_path / "evaluation") == [] and os.listdir(tmp_path / "blessing") == []
