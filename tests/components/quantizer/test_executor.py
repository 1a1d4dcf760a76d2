"""Quantizer executor: the demo pipeline's int8 model (``demo_run``, pipeline tier); on the golden penguin artifacts
(no pipeline): the int8 model's report and scales, every mode, bad inputs; on the tiny model: non-finite calibration values, a constant feature, the crash message."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from ai_edge_litert import schema_py_generated as schema
from ml_metadata.proto import metadata_store_pb2
from tfx.types import standard_artifacts

from quantgate.components.quantizer import executor, tflite_engine
from quantgate.components.quantizer.options import resolve_options
from quantgate.components.representative_dataset_gen.storage import (
    read_examples,
    write_representative_dataset,
)
from quantgate.components.shared import properties
from quantgate.components.shared.model_runners import SavedModelRunner, TFLiteRunner
from quantgate.components.shared.signature_inputs import dense_signature_specs
from quantgate.components.types import RepresentativeDataset
from quantgate.pipelines.models.penguin.penguin_trainer import DENSE_SIGNATURE, FEATURE_KEYS


@pytest.fixture(scope="module")
def penguin(penguin_artifacts) -> dict:
    """The golden penguin artifacts (tests/components/conftest.py: the demo Trainer module's model, a representative
    dataset, the real Quantizer's int8 model of it; no pipeline): calibration inputs, model bytes and report."""
    model_uri = penguin_artifacts.model.uri
    saved_model_dir = os.path.join(model_uri, "Format-Serving")
    rep_uri = penguin_artifacts.representative_dataset.uri
    _, specs = dense_signature_specs(saved_model_dir, DENSE_SIGNATURE)
    quantized = penguin_artifacts.quantized_model.mlmd_artifact
    with open(os.path.join(quantized.uri, "Format-Serving", "model.tflite"), "rb") as f:
        content = f.read()
    with open(os.path.join(quantized.uri, "quantization_report.json")) as f:
        report = json.load(f)
    inputs = executor.load_calibration_inputs(rep_uri, specs)
    return {"model_uri": model_uri, "saved_model_dir": saved_model_dir, "rep_uri": rep_uri, "inputs": inputs,
            "quantized": quantized, "content": content, "report": report,
            "float": SavedModelRunner(saved_model_dir, DENSE_SIGNATURE).predict(inputs)["probabilities"]}


def _agreement(path: str, penguin: dict) -> float:
    got = TFLiteRunner(path).predict(penguin["inputs"])["probabilities"]
    return float((got.argmax(1) == penguin["float"].argmax(1)).mean())


def test_the_pipeline_publishes_an_int8_model_artifact(demo_run) -> None:
    assert demo_run.execution("Quantizer").last_known_state == metadata_store_pb2.Execution.COMPLETE
    quantized = demo_run.output("Quantizer", "quantized_model")
    uri, props = quantized.uri, quantized.custom_properties
    with open(os.path.join(uri, "Format-Serving", "model.tflite"), "rb") as f:
        content = f.read()
    # No staging left behind.
    assert sorted(os.listdir(uri)) == sorted(["Format-Serving", "quantization_report.html", "quantization_report.json",
                                              properties.FLOAT_TFLITE_FILENAME])
    with open(os.path.join(uri, "Format-Serving", "tflite"), "rb") as f:
        assert f.read() == content  # the name TFMA's tf_lite loader reads
    assert props["quantization_mode"].string_value == "int8"
    assert props["engine"].string_value == "tflite_converter"
    assert props["size_bytes"].int_value == len(content)
    assert props["sha256"].string_value == hashlib.sha256(content).hexdigest()
    assert props["float_size_bytes"].int_value > props["size_bytes"].int_value > 0
    assert props["float_op_count"].int_value == 0


def test_the_demo_report_has_layer_errors_and_no_input_trap(penguin) -> None:
    report = penguin["report"]
    layer_errors = report["layer_errors"]
    assert layer_errors["error"] is None and layer_errors["num_tensors"] >= 3
    assert {r["op"] for r in layer_errors["tensors"]} >= {"FULLY_CONNECTED", "SOFTMAX"}
    assert report["shared_input_scales"] == [] and report["warnings"] == []


def test_int8_inputs_have_one_sensible_scale_per_feature(penguin) -> None:
    runner = TFLiteRunner(os.path.join(penguin["quantized"].uri, "Format-Serving", "model.tflite"))
    assert sorted(runner.input_details) == sorted(FEATURE_KEYS)
    scales = {}
    for name, details in runner.input_details.items():
        assert details["dtype"] == np.int8
        scale, zero_point = details["quantization"]
        values = penguin["inputs"][name]
        # The representable range covers the calibration values, and is not much wider (step ~ range / 255).
        assert (-128 - zero_point) * scale <= values.min() + scale and values.max() <= (127 - zero_point) * scale + scale
        assert scale <= max(abs(values.min()), abs(values.max())) / 100
        scales[name] = scale
    assert len(set(scales.values())) == len(FEATURE_KEYS)  # not one shared scale
    assert scales["body_mass_g"] > 10 * scales["bill_depth_mm"]


def test_int8_predictions_agree_with_the_float_model(penguin) -> None:
    agreement = _agreement(os.path.join(penguin["quantized"].uri, "Format-Serving", "model.tflite"), penguin)
    assert agreement >= 0.95, agreement


def test_the_report_counts_every_op_and_no_float_op(penguin) -> None:
    report = penguin["report"]
    operators = schema.Model.GetRootAs(penguin["content"], 0).Subgraphs(0).OperatorsLength()
    assert sum(sum(counts.values()) for counts in report["ops"]["ops"].values()) == operators
    assert report["ops"]["by_dtype"] == {"int8": operators}
    assert report["ops"]["float_ops"] == [] and report["ops"]["float_op_count"] == 0
    assert (report["mode"], report["io_dtype"], report["signature_name"]) == ("int8", "int8", DENSE_SIGNATURE)
    assert report["representative_dataset"] == {"uri": penguin["rep_uri"], "num_examples": len(penguin["float"])}
    assert {e["dtype"] for e in report["inputs"].values()} == {"int8"}
    assert set(report["input_steps"]) == set(FEATURE_KEYS)
    assert report["sizes"]["tflite_bytes"] == len(penguin["content"])
    # The honest reference: the same signature as float32 TFLite, not the SavedModel's variables (optimizer state).
    assert 0 < report["sizes"]["float_tflite_bytes"] < report["sizes"]["float_variables_bytes"]
    assert penguin["quantized"].custom_properties["float_tflite_size_bytes"].int_value == report["sizes"]["float_tflite_bytes"]
    readiness = report["edge_tpu_readiness"]
    assert readiness["integer_only"] and not readiness["ready"]  # the [None, 1] inputs: a dynamic batch dimension
    assert penguin["quantized"].custom_properties["integer_only_ready"].int_value == 0
    assert set(report["versions"]) == {"tensorflow", "ai-edge-litert", "ai-edge-quantizer", "tfx"}


def test_tfma_tf_lite_model_type_loads_the_artifact(penguin) -> None:
    shared = tfma.default_eval_shared_model(
        eval_saved_model_path=os.path.join(penguin["quantized"].uri, "Format-Serving"),
        eval_config=tfma.EvalConfig(model_specs=[tfma.ModelSpec(model_type=tfma.TF_LITE)]))
    assert shared.model_loader.construct_fn().contents == penguin["content"]


@pytest.mark.parametrize("mode", ["dynamic_range", "float16", "int16x8"])
def test_the_other_modes_convert_the_penguin_model(mode: str, penguin, tmp_path) -> None:
    content = tflite_engine.convert(penguin["saved_model_dir"], DENSE_SIGNATURE, resolve_options(mode), penguin["inputs"])
    path = tmp_path / "model.tflite"
    path.write_bytes(content)
    assert _agreement(str(path), penguin) >= 0.95


def _quantize(penguin: dict, output_uri: str, rep_uri: str | None = None, signature: str | None = DENSE_SIGNATURE,
              mode: str = "int8") -> None:
    executor.quantize(penguin["model_uri"], rep_uri or penguin["rep_uri"], output_uri, resolve_options(mode), signature)


@pytest.mark.parametrize(("signature", "message"), [
    ("nope", r"has no signature 'nope'. Signatures: serving_default \{examples: string\[None\]\}; serving_features"),
    ("serving_default", r"'serving_default' .*not dense numeric tensors \(examples\).*serialized tf.Examples"),
])
def test_a_bad_signature_is_refused_and_nothing_is_written(signature: str, message: str, penguin, tmp_path) -> None:
    with pytest.raises(ValueError, match=message):
        _quantize(penguin, str(tmp_path / "out"), signature=signature)
    assert not (tmp_path / "out").exists()


def test_examples_lacking_a_feature_name_it_and_the_artifact(penguin, tmp_path) -> None:
    examples = []
    for serialized in read_examples(penguin["rep_uri"])[:20]:
        example = tf.train.Example.FromString(serialized)
        del example.features.feature["body_mass_g"]
        examples.append(example.SerializeToString())
    rep_uri = str(tmp_path / "rep")
    write_representative_dataset(rep_uri, examples, {"num_examples": len(examples)})
    with pytest.raises(ValueError, match=rf"representative_dataset {rep_uri}: the examples have no feature 'body_mass_g'"):
        _quantize(penguin, str(tmp_path / "out"), rep_uri=rep_uri)
    assert not (tmp_path / "out").exists()


def test_an_empty_representative_dataset_is_refused(penguin, tmp_path) -> None:
    rep_uri = str(tmp_path / "rep")
    write_representative_dataset(rep_uri, [], {"num_examples": 0})
    with pytest.raises(ValueError, match=rf"representative_dataset {rep_uri} holds no examples"):
        _quantize(penguin, str(tmp_path / "out"), rep_uri=rep_uri, mode="int16x8")
    assert not (tmp_path / "out").exists()


def test_the_executor_refuses_int8_without_a_representative_dataset(penguin, tmp_path) -> None:
    model = standard_artifacts.Model()
    model.uri = penguin["model_uri"]
    output = standard_artifacts.Model()
    output.uri = str(tmp_path / "out")
    properties = {executor.MODE_KEY: "int8", executor.ENGINE_KEY: "tflite_converter",
                  executor.DENYLISTED_OPS_KEY: "[]", executor.ALLOW_FLOAT_FALLBACK_KEY: 0}
    with pytest.raises(ValueError, match=r"mode 'int8' quantizes activations and needs representative_dataset"):
        executor.Executor().Do({executor.MODEL_KEY: [model]}, {executor.QUANTIZED_MODEL_KEY: [output]}, properties)
    assert not (tmp_path / "out").exists()


# --- the tiny hand-built model (tests/components/conftest.py): fast, no pipeline ------------------------------------

def _tiny_model_artifact(tiny_models: dict, tmp_path) -> standard_artifacts.Model:
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "model")
    model.id = 5
    shutil.copytree(tiny_models["one_dense"], os.path.join(model.uri, "Format-Serving"))
    return model


def _tiny_dataset(tmp_path, example, a_values: list[list[float]], b_values: list[float]) -> RepresentativeDataset:
    dataset = RepresentativeDataset()
    dataset.uri = str(tmp_path / "rep")
    dataset.id = 4
    records = [example(a=a, b=[b]) for a, b in zip(a_values, b_values, strict=True)]
    write_representative_dataset(dataset.uri, records, {"num_examples": len(records)})
    return dataset


def _normal_pairs(n: int) -> list[list[float]]:
    return np.random.default_rng(0).normal(size=(n, 2)).tolist()


def _do(model, dataset, output_uri: str) -> None:
    output = standard_artifacts.Model()
    output.uri = output_uri
    properties = {executor.MODE_KEY: "int8", executor.ENGINE_KEY: "tflite_converter", executor.SIGNATURE_NAME_KEY: "dense",
                  executor.DENYLISTED_OPS_KEY: "[]", executor.ALLOW_FLOAT_FALLBACK_KEY: 0}
    executor.Executor().Do({executor.MODEL_KEY: [model], executor.REPRESENTATIVE_DATASET_KEY: [dataset]},
                           {executor.QUANTIZED_MODEL_KEY: [output]}, properties)


def test_non_finite_calibration_values_are_refused_before_the_conversion_child(
        tiny_models, example, tmp_path, caplog) -> None:
    model = _tiny_model_artifact(tiny_models, tmp_path)
    # Two NaNs in one example of 'a' count once (examples are counted), inf in two examples of 'b'.
    a_values = [[float("nan"), float("nan")], *_normal_pairs(7)]
    dataset = _tiny_dataset(tmp_path, example, a_values, [1.0] * 6 + [float("inf"), -float("inf")])
    out = tmp_path / "out"
    out.mkdir()  # as the launcher creates it
    caplog.set_level(logging.INFO)
    with pytest.raises(ValueError) as error:
        _do(model, dataset, str(out))
    text = str(error.value)
    assert text.startswith(f"representative_dataset {dataset.uri} (artifact id 4): calibration values must be finite")
    assert "'a' in 1 of 8 examples, 'b' in 2 of 8 examples" in text
    assert "Impute or drop non-finite values upstream (ExampleGen/Transform) and re-run RepresentativeDatasetGen" in text
    assert not any("started child process" in record.getMessage() for record in caplog.records)
    assert os.listdir(out) == []


def test_a_constant_calibration_feature_gives_a_strict_json_report(tiny_models, example, tmp_path) -> None:
    def refuse(constant: str) -> None:
        raise AssertionError(f"quantization_report.json is not strict JSON: {constant}")

    out = tmp_path / "out"
    _do(_tiny_model_artifact(tiny_models, tmp_path), _tiny_dataset(tmp_path, example, _normal_pairs(16), [3.0] * 16), str(out))
    report = json.loads((out / "quantization_report.json").read_text(), parse_constant=refuse)
    step = report["input_steps"]["b"]
    assert step["std"] == 0 and step["step_over_std"] is None and step["coarse"] is False
    assert report["input_steps"]["a"]["step_over_std"] > 0
    assert not any("inf" in warning or "nan" in warning for warning in report["warnings"])


def test_a_crashed_conversion_names_the_model_and_the_representative_dataset() -> None:
    what = executor.describe_conversion(
        resolve_options("int8"), "dense", "/m/5/Format-Serving", executor.artifact_label("model", "/m/5", 5),
        executor.artifact_label("representative_dataset", "/r/4", 4))
    assert what == ("int8 conversion (tflite_converter) of signature 'dense' of model /m/5 (artifact id 5), "
                    "SavedModel /m/5/Format-Serving, calibrated on representative_dataset /r/4 (artifact id 4)")
    assert executor.artifact_label("model", "/m/5", None) == "model /m/5"  # not registered in MLMD (yet)


def test_int4_weight_nodes_reach_the_conversion_and_the_report(wide_dense_model, tmp_path) -> None:
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "model")
    shutil.copytree(wide_dense_model.path, os.path.join(model.uri, "Format-Serving"))
    output = standard_artifacts.Model()
    output.uri = str(tmp_path / "out")
    hidden = "wide/hidden/MatMul;wide/hidden/Relu;wide/hidden/BiasAdd"
    properties = {executor.MODE_KEY: "dynamic_range", executor.ENGINE_KEY: "litert_quantizer",
                  executor.SIGNATURE_NAME_KEY: "serving_features", executor.DENYLISTED_OPS_KEY: "[]",
                  executor.ALLOW_FLOAT_FALLBACK_KEY: 0, executor.INT4_WEIGHT_NODES_KEY: json.dumps([hidden]),
                  executor.INT4_BLOCK_SIZE_KEY: 64}
    executor.Executor().Do({executor.MODEL_KEY: [model]}, {executor.QUANTIZED_MODEL_KEY: [output]}, properties)
    report = json.loads((tmp_path / "out" / "quantization_report.json").read_text())
    assert report["int4_weight_nodes"] == [hidden] and report["int4_block_size"] == 64
    assert [(w["op"], w["output"], w["block_size"]) for w in report["int4_weights"]] == [
        ("FULLY_CONNECTED", hidden, 64)]
    assert report["ops"]["ops"]["FULLY_CONNECTED"] == {"hybrid": 2}  # int4 (hidden) and int8 (head) weights
    assert output.get_int_custom_property("size_bytes") == report["sizes"]["tflite_bytes"]
    assert any(w.startswith("1 op(s) read int4 blockwise weights") and "XNNPACK" in w for w in report["warnings"])
