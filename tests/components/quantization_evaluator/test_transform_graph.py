"""The QuantizationEvaluator with a transform_graph, its real executor (Beam DirectRunner) on the tiny TFT graph of
tests/components/conftest.py: raw examples in, a label that exists only after the transform, slices on a raw
string, the serving signature compared with the transformed-feature path; and the refusals before Beam."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tfx import types
from tfx.types import Artifact, artifact_utils, standard_artifacts

from quantgate.components import QuantizationEvaluator
from quantgate.components.quantization_evaluator import executor
from quantgate.components.quantization_evaluator.spec import QUANTIZED_MODEL_KEY
from quantgate.components.shared import properties
from quantgate.components.types import QuantizationEvaluation


def _run(tiny_transform, examples: Artifact, root, *, quantized: Artifact | None = None,
         transform_graph: Artifact | None | str = "wired", **params: object) -> tuple[Artifact, Artifact]:
    graph = tiny_transform.transform_graph if transform_graph == "wired" else transform_graph
    component = QuantizationEvaluator(
        model=types.Channel(type=standard_artifacts.Model),
        quantized_model=types.Channel(type=standard_artifacts.Model),
        examples=types.Channel(type=standard_artifacts.Examples),
        transform_graph=types.Channel(type=standard_artifacts.TransformGraph),
        **{"label_key": "label_xf", "slicing_feature_keys": ["color"], "min_slice_size": 5,
           "signature_name": "serving_features", **params})
    evaluation, blessing = QuantizationEvaluation(), standard_artifacts.ModelBlessing()
    evaluation.uri, blessing.uri = str(root / "evaluation"), str(root / "blessing")
    inputs = {executor.MODEL_KEY: [tiny_transform.model],
              QUANTIZED_MODEL_KEY: [quantized or tiny_transform.quantized],
              executor.EXAMPLES_KEY: [examples]}
    if graph is not None:
        inputs[executor.TRANSFORM_GRAPH_KEY] = [graph]
    executor.Executor().Do(inputs, {executor.EVALUATION_KEY: [evaluation], executor.BLESSING_KEY: [blessing]},
                           dict(component.exec_properties))
    return evaluation, blessing


@pytest.fixture(scope="module")
def evaluated(tiny_transform, tmp_path_factory) -> tuple[Artifact, Artifact, dict, Artifact]:
    root = tmp_path_factory.mktemp("transform_eval")
    examples = standard_artifacts.Examples()
    examples.uri, examples.id = str(root / "examples"), 42
    examples.split_names = artifact_utils.encode_split_names(["eval"])
    os.makedirs(os.path.join(examples.uri, "Split-eval"))
    with tf.io.TFRecordWriter(os.path.join(examples.uri, "Split-eval", "data_tfrecord-00000-of-00001.gz"),
                              "GZIP") as w:
        for record in tiny_transform.records:
            w.write(record)
    evaluation, blessing = _run(tiny_transform, examples, root)
    with open(os.path.join(evaluation.uri, properties.METRICS_FILENAME)) as f:
        return evaluation, blessing, json.load(f), examples


def test_scored_on_transformed_features_with_a_transformed_label(evaluated, tiny_transform) -> None:
    evaluation, blessing, metrics, _ = evaluated
    overall = metrics["overall"]
    assert overall["num_examples"] == len(tiny_transform.records) and overall["missing"] == 0
    # The label is tips > 0.5 from the transform, checked against the raw values.
    tips = tf.io.parse_example(tiny_transform.records, {"tips": tf.io.FixedLenFeature([1], tf.float32)})["tips"]
    positives = int(np.count_nonzero(tips.numpy() > 0.5))
    assert 0 < positives < len(tiny_transform.records)
    recall = overall["float"]["recall"]
    assert set(recall) == {"0", "1"}
    assert metrics["transform_graph"] == {"id": 11, "uri": tiny_transform.transform_graph.uri}
    assert overall["agreement"] >= 0.95
    assert blessing.mlmd_artifact.custom_properties[properties.BLESSED].int_value == 1, metrics["verdict"]


def test_sliced_on_the_raw_string_feature(evaluated) -> None:
    _, _, metrics, _ = evaluated
    assert {s["value"]: s["num_examples"] for s in metrics["slices"]} == {"red": 40, "green": 40, "blue": 40}


def test_the_serving_signature_agrees_with_the_transformed_feature_path(evaluated, tiny_transform) -> None:
    evaluation, _, metrics, _ = evaluated
    serving = metrics["serving_signature_agreement"]
    assert serving["signature"] == "serving_default" and serving["num_examples"] == len(tiny_transform.records)
    assert serving["agreement"] == 1.0 and serving["max_abs_diff"] < 1e-5
    assert evaluation.mlmd_artifact.custom_properties[properties.SERVING_SIGNATURE_AGREEMENT].double_value == 1.0


def _nothing_written(root) -> None:
    assert not [p for p in root.rglob("*") if p.is_file()]  # no metrics, report or BLESSED / NOT_BLESSED marker


def test_a_transform_graph_wired_to_the_quantizer_only(evaluated, tiny_transform, tmp_path) -> None:
    examples = evaluated[3]
    with pytest.raises(ValueError) as error:
        _run(tiny_transform, examples, tmp_path, transform_graph=None)
    message = str(error.value)
    assert "quantized_model artifact" in message and "(id 14) was calibrated through transform graph" in message
    assert "Wire the same transform_graph" in message
    _nothing_written(tmp_path)


def test_a_transform_graph_wired_to_the_evaluator_only(evaluated, tiny_transform, tmp_path) -> None:
    uncalibrated = standard_artifacts.Model()
    uncalibrated.uri, uncalibrated.id = tiny_transform.quantized.uri, 15  # same bytes, no transform_graph_uri
    with pytest.raises(ValueError) as error:
        _run(tiny_transform, evaluated[3], tmp_path, quantized=uncalibrated)
    message = str(error.value)
    assert f"transform_graph artifact {tiny_transform.transform_graph.uri!r} (id 11) is wired" in message
    assert "(id 15) has no transform_graph_uri property" in message
    _nothing_written(tmp_path)


def test_examples_lacking_a_raw_feature_the_transform_needs(tiny_transform, make_examples, raw_example,
                                                            tmp_path) -> None:
    examples = make_examples({"eval": [raw_example(i, drop=("x",)) for i in range(20)]})
    with pytest.raises(ValueError) as error:
        _run(tiny_transform, examples, tmp_path / "out")
    message = str(error.value)
    assert message.startswith("QuantizationEvaluator: signature 'serving_features' of model artifact")
    assert "the examples lack the raw feature 'x'" in message and "(id 11)" in message
    _nothing_written(tmp_path / "out")


def test_a_label_neither_raw_nor_transformed(evaluated, tiny_transform, tmp_path) -> None:
    with pytest.raises(ValueError) as error:
        _run(tiny_transform, evaluated[3], tmp_path, label_key="nope")
    message = str(error.value)
    assert "label_key 'nope' is not a feature" in message and "'tips'" in message
    assert "transformed features (transform_graph artifact" in message and "'label_xf'" in message
