"""The Quantizer with a transform_graph, on a real tiny TFT graph and a model over its outputs (no pipeline):
calibration through the transform, what the artifact records, and the refusals naming both artifacts."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from tfx.types import standard_artifacts

from quantgate.components.quantizer import diagnostics, executor
from quantgate.components.representative_dataset_gen.storage import write_representative_dataset
from quantgate.components.shared import properties
from quantgate.components.shared.model_runners import SavedModelRunner, TFLiteRunner
from quantgate.components.shared.signature_inputs import dense_signature_specs
from quantgate.components.shared.transform_inputs import TransformedInputs
from quantgate.components.types import RepresentativeDataset


def _do(tiny_transform, output_uri: str, *, signature: str = "serving_features",
        dataset: RepresentativeDataset | None = None) -> standard_artifacts.Model:
    output = standard_artifacts.Model()
    output.uri = output_uri
    exec_properties = {executor.MODE_KEY: "int8", executor.ENGINE_KEY: "tflite_converter",
                       executor.SIGNATURE_NAME_KEY: signature, executor.DENYLISTED_OPS_KEY: "[]",
                       executor.ALLOW_FLOAT_FALLBACK_KEY: 0}
    executor.Executor().Do(
        {executor.MODEL_KEY: [tiny_transform.model],
         executor.REPRESENTATIVE_DATASET_KEY: [dataset or tiny_transform.representative_dataset],
         executor.TRANSFORM_GRAPH_KEY: [tiny_transform.transform_graph]},
        {executor.QUANTIZED_MODEL_KEY: [output]}, exec_properties)
    return output


def test_calibrated_through_the_transform_and_recorded(tiny_transform) -> None:
    quantized, graph = tiny_transform.quantized, tiny_transform.transform_graph
    props = quantized.mlmd_artifact.custom_properties
    assert props[properties.TRANSFORM_GRAPH_URI].string_value == graph.uri
    assert props[properties.TRANSFORM_GRAPH_ID].int_value == graph.id
    with open(os.path.join(quantized.uri, properties.QUANTIZATION_REPORT_FILENAME)) as f:
        report = json.load(f)
    assert report["transform_graph"] == {"uri": graph.uri, "id": graph.id}
    # The .tflite takes the transformed features: x_xf quantized (z-scores: a fine step), color_xf int ids.
    assert sorted(report["inputs"]) == ["color_xf", "x_xf"]
    assert report["inputs"]["x_xf"]["dtype"] == "int8" and report["inputs"]["color_xf"]["dtype"] == "int32"
    step = report["input_steps"]["x_xf"]
    assert -4 < step["min"] < -1 and 1 < step["max"] < 4 and not step["coarse"]  # raw x is ~40: not what it saw
    # Both models fed the same transformed tensors agree.
    saved_model_dir = os.path.join(tiny_transform.model.uri, "Format-Serving")
    _, specs = dense_signature_specs(saved_model_dir, "serving_features")
    inputs = TransformedInputs(graph.uri, specs)(tiny_transform.records)
    float_probs = SavedModelRunner(saved_model_dir, "serving_features").predict(inputs)["probabilities"]
    tflite = os.path.join(quantized.uri, "Format-Serving", "model.tflite")
    quant_probs = TFLiteRunner(tflite).predict(inputs)["probabilities"]
    assert np.mean(float_probs.argmax(1) == quant_probs.argmax(1)) >= 0.95
    assert np.abs(float_probs - quant_probs).max() < 0.05


def test_the_artifact_has_layer_errors_and_the_html_report_beside_the_json(tiny_transform) -> None:
    uri = tiny_transform.quantized.uri
    with open(os.path.join(uri, properties.QUANTIZATION_REPORT_FILENAME)) as f:
        layer_errors = json.load(f)["layer_errors"]
    assert layer_errors["method"] == diagnostics.PER_LAYER and layer_errors["error"] is None
    assert layer_errors["num_examples"] == 60 and layer_errors["num_tensors"] == len(layer_errors["tensors"]) >= 3
    ops = {r["op"] for r in layer_errors["tensors"]}
    assert {"FULLY_CONNECTED", "SOFTMAX"} <= ops
    with open(os.path.join(uri, properties.QUANTIZATION_REPORT_HTML_FILENAME)) as f:
        page = f.read()
    assert layer_errors["tensors"][0]["tensor"] in page and "data:image/png;base64," in page
    assert sorted(os.listdir(uri)) == sorted([properties.SERVING_DIR, properties.QUANTIZATION_REPORT_FILENAME,
                                              properties.QUANTIZATION_REPORT_HTML_FILENAME,
                                              properties.FLOAT_TFLITE_FILENAME])


def test_a_signature_over_features_the_transform_does_not_produce(tiny_transform, tmp_path) -> None:
    out = tmp_path / "out"
    with pytest.raises(ValueError) as error:
        _do(tiny_transform, str(out), signature="raw_features")
    message = str(error.value)
    assert f"signature 'raw_features' of model {tiny_transform.model.uri} (artifact id 12)" in message
    assert f"transform_graph {tiny_transform.transform_graph.uri} (artifact id 11)" in message
    assert "does not produce the signature inputs ['x']" in message
    assert "transformed features: ['color_xf', 'label_xf', 'x_xf']" in message
    assert not out.exists()


def test_calibration_examples_lacking_a_raw_feature(tiny_transform, raw_example, tmp_path) -> None:
    dataset = RepresentativeDataset()
    dataset.uri, dataset.id = str(tmp_path / "rep"), 21
    records = [raw_example(i, drop=("x",)) for i in range(10)]
    write_representative_dataset(dataset.uri, records, {"num_examples": len(records)})
    out = tmp_path / "out"
    with pytest.raises(ValueError) as error:
        _do(tiny_transform, str(out), dataset=dataset)
    message = str(error.value)
    assert message.startswith(f"representative_dataset {dataset.uri} (artifact id 21): the examples lack the raw "
                              "feature 'x'")
    assert tiny_transform.transform_graph.uri in message and "Feed raw examples as Transform saw them" in message
    assert not out.exists()


def test_non_finite_transformed_inputs_are_refused(tiny_transform, example, tmp_path) -> None:
    dataset = RepresentativeDataset()
    dataset.uri, dataset.id = str(tmp_path / "rep"), 22
    # A raw inf becomes a NaN/inf z-score: the check runs on what the converter would see.
    records = [example(x=[float("inf") if i == 3 else 40.0 + i], color=[b"red"], tips=[0.1]) for i in range(8)]
    write_representative_dataset(dataset.uri, records, {"num_examples": len(records)})
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"calibration values must be finite.*'x_xf' in 1 of 8 examples"):
        _do(tiny_transform, str(out), dataset=dataset)
    assert not out.exists()
