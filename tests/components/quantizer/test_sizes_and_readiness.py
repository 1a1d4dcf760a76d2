"""Honest sizes (the float32 TFLite reference, converted in the same child) and the static Edge TPU / integer-only
readiness check, on tiny models converted for real."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tfx.types import standard_artifacts

from quantgate.components.quantizer import executor, float_reference, readiness, tflite_engine
from quantgate.components.quantizer.options import resolve_options
from quantgate.components.quantizer.report import compare_with_float_tflite
from quantgate.components.representative_dataset_gen.storage import write_representative_dataset
from quantgate.components.shared import properties
from quantgate.components.types import RepresentativeDataset


class _FixedBatch(tf.Module):
    """softmax(W · concat(a, b)) with batch 1 fixed (what the Edge TPU compiler needs), and a variant with SIN."""

    def __init__(self) -> None:
        super().__init__()
        self.w = tf.Variable(np.array([[1.0, -1.0], [0.5, 2.0], [-1.5, 0.25]], dtype=np.float32))

    @tf.function(input_signature=[tf.TensorSpec([1, 2], tf.float32, name="a"), tf.TensorSpec([1, 1], tf.float32, name="b")])
    def fixed(self, a: tf.Tensor, b: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"probabilities": tf.nn.softmax(tf.matmul(tf.concat([a, b], axis=1), self.w))}

    @tf.function(input_signature=[tf.TensorSpec([1, 2], tf.float32, name="a"), tf.TensorSpec([1, 1], tf.float32, name="b")])
    def sine(self, a: tf.Tensor, b: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"probabilities": tf.nn.softmax(tf.matmul(tf.concat([tf.sin(a), b], axis=1), self.w))}


@pytest.fixture(scope="module")
def fixed_batch_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("fixed_batch"))
    model = _FixedBatch()
    tf.saved_model.save(model, path, signatures={"fixed": model.fixed, "sine": model.sine})
    return path


def test_an_int8_model_with_int8_io_and_static_shapes_is_ready(fixed_batch_model, tiny_inputs) -> None:
    content = tflite_engine.convert(fixed_batch_model, "fixed", resolve_options("int8"), tiny_inputs)
    ready = readiness.edge_tpu_readiness(content)
    assert ready["ready"] and ready["integer_only"] and ready["reasons"] == []
    assert ready["non_integer_ops"] == [] and ready["cpu_fallback_ops"] == [] and ready["cpu_from_op_index"] is None
    assert ready["io"]["inputs"]["a"] == {"dtype": "int8", "shape": [1, 2]} and ready["op_count"] >= 3


def test_a_float_op_makes_it_not_ready_and_is_named(fixed_batch_model, tiny_inputs) -> None:
    options = resolve_options("int8", allow_float_fallback=True)
    content = tflite_engine.convert(fixed_batch_model, "sine", options, tiny_inputs)
    ready = readiness.edge_tpu_readiness(content)
    assert not ready["ready"] and not ready["integer_only"]
    sin = [o for o in ready["non_integer_ops"] if o["op"] == "SIN"]
    assert sin and sin[0]["dtype"] == "float32" and sin[0]["tensor"]
    assert "SIN" in {o["op"] for o in ready["cpu_fallback_ops"]}
    assert any("SIN (op " in reason and "do not compute in int8/uint8" in reason for reason in ready["reasons"])
    assert any("would run on the CPU" in reason for reason in ready["reasons"])


def test_float_io_and_a_dynamic_batch_are_reasons_but_not_float_compute(tiny_models, tiny_inputs) -> None:
    content = tflite_engine.convert(tiny_models["one_dense"], "dense", resolve_options("int8", "float32"), tiny_inputs)
    ready = readiness.edge_tpu_readiness(content)
    assert not ready["ready"] and not ready["integer_only"]  # QUANTIZE/DEQUANTIZE at the float boundary
    assert ready["reasons"][0].startswith("model I/O is not int8/uint8: input 'a' is float32")
    (dynamic,) = [reason for reason in ready["reasons"] if "dynamic dimension" in reason]
    assert "input 'a' [-1, 2], input 'b' [-1, 1], output 'probabilities' [-1, 2] among them" in dynamic
    assert dynamic.endswith("export the signature with a fixed batch size, e.g. tf.TensorSpec([1, ...])")
    assert ready["dynamic_tensors"]  # [None, 2] inputs: -1 in the shape signature


def test_the_float_reference_is_the_unoptimized_conversion_of_the_same_signature(tiny_models) -> None:
    content = float_reference.float_tflite(tiny_models["one_dense"], "dense")
    ops = readiness.edge_tpu_readiness(content)["non_integer_ops"]
    assert {o["dtype"] for o in ops} == {"float32"}  # float32 compute throughout
    assert float_reference.loaded_model(tiny_models["one_dense"]) is float_reference.loaded_model(
        tiny_models["one_dense"])  # loaded once per process for both conversions


def _report(tflite_bytes: int) -> dict:
    return {"mode": "int16x8", "sizes": {"tflite_bytes": tflite_bytes}, "warnings": []}


def test_a_quantized_model_not_smaller_than_the_float_one_is_warned_about() -> None:
    larger = _report(1250)
    compare_with_float_tflite(larger, 1000, 0.2)
    assert larger["sizes"]["not_smaller_than_float"] is True and larger["sizes"]["ratio_to_float_tflite"] == 1.25
    (warning,) = larger["warnings"]
    assert warning.startswith("the int16x8 model (1250 bytes) is not smaller than the same signature converted to "
                              "float32 TFLite (1000 bytes, 1.25x)")
    smaller = _report(400)
    compare_with_float_tflite(smaller, 1000, 0.2)
    assert smaller["sizes"]["not_smaller_than_float"] is False and smaller["warnings"] == []


def test_the_executor_records_the_float_tflite_size_and_readiness(tiny_models, tiny_inputs, example, tmp_path) -> None:
    """One real child run: the float32 reference is converted beside the int8 model and lands in report and MLMD."""
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "model")
    tf.io.gfile.makedirs(model.uri)
    os.symlink(tiny_models["one_dense"], os.path.join(model.uri, "Format-Serving"))
    dataset = RepresentativeDataset()
    dataset.uri = str(tmp_path / "rep")
    records = [example(a=a.tolist(), b=b.tolist()) for a, b in zip(tiny_inputs["a"], tiny_inputs["b"], strict=True)]
    write_representative_dataset(dataset.uri, records, {"num_examples": len(records)})
    output = standard_artifacts.Model()
    output.uri = str(tmp_path / "out")
    executor.Executor().Do(
        {executor.MODEL_KEY: [model], executor.REPRESENTATIVE_DATASET_KEY: [dataset]},
        {executor.QUANTIZED_MODEL_KEY: [output]},
        {executor.MODE_KEY: "int8", executor.ENGINE_KEY: "tflite_converter", executor.SIGNATURE_NAME_KEY: "dense",
         executor.DENYLISTED_OPS_KEY: "[]", executor.ALLOW_FLOAT_FALLBACK_KEY: 0})
    report = json.loads((tmp_path / "out" / "quantization_report.json").read_text())
    sizes = report["sizes"]
    assert sizes["float_tflite_bytes"] == len(float_reference.float_tflite(tiny_models["one_dense"], "dense"))
    assert sizes["float_variables_bytes"] > 0 and sizes["float_saved_model_bytes"] > sizes["float_variables_bytes"]
    assert report["float_tflite_seconds"] >= 0
    # Six weights: the int8 model's quantization parameters outweigh them, and the report says so.
    assert sizes["not_smaller_than_float"] == (sizes["tflite_bytes"] >= sizes["float_tflite_bytes"])
    assert any("not smaller than the same signature" in w for w in report["warnings"]) == sizes["not_smaller_than_float"]
    props = output.mlmd_artifact.custom_properties
    assert props[properties.FLOAT_TFLITE_SIZE_BYTES].int_value == sizes["float_tflite_bytes"]
    assert props[properties.NOT_SMALLER_THAN_FLOAT].int_value == int(sizes["not_smaller_than_float"])
    assert props[properties.INTEGER_ONLY_READY].int_value == 0  # the [None, 2] inputs: a dynamic batch
    assert report["edge_tpu_readiness"]["integer_only"] is True
    page = (tmp_path / "out" / "quantization_report.html").read_text()
    assert "<h2>Edge TPU / integer-only readiness</h2>" in page and "<b>not ready</b> (integer-only" in page
    assert f"float32 TFLite {sizes['float_tflite_bytes']} bytes" in page
