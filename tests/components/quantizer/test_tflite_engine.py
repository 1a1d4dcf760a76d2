"""tflite_engine: every mode converts (in-process here; the executor test goes through the child process); a
CategoryEncoding layer, which used to crash the converter, converts through builtin_rewrites' ONE_HOT rewrite."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from quantgate.components.quantizer import tflite_engine
from quantgate.components.quantizer.engines import convert_to_file
from quantgate.components.quantizer.executor import quantize
from quantgate.components.quantizer.isolation import run_isolated
from quantgate.components.quantizer.options import resolve_options
from quantgate.components.quantizer.report import op_summary
from quantgate.components.shared.model_runners import SavedModelRunner, TFLiteRunner


def _run(tmp_path, content: bytes, inputs: dict[str, np.ndarray]) -> tuple[TFLiteRunner, np.ndarray]:
    path = tmp_path / "model.tflite"
    path.write_bytes(content)
    runner = TFLiteRunner(str(path))
    return runner, runner.predict(inputs)["probabilities"]


# What each mode computes in (op categories of report.op_summary) on the tiny model, with its default io_dtype.
EXPECTED_CATEGORIES = {
    "int8": {"int8"},
    "int16x8": {"int16", "conversion"},  # QUANTIZE ops re-scale the int16 inputs before CONCATENATION
    # TFLite quantizes only weights of >= 1024 elements in dynamic range: the tiny model's stay float.
    "dynamic_range": {"hybrid", "float32"},
    "float16": {"float32", "conversion"},  # float16 weights, DEQUANTIZEd to float32
}


@pytest.mark.parametrize("mode", sorted(EXPECTED_CATEGORIES))
def test_every_mode_converts_and_agrees_with_the_float_model(mode: str, tiny_models, tiny_inputs, tmp_path) -> None:
    content = tflite_engine.convert(tiny_models["one_dense"], "dense", resolve_options(mode), tiny_inputs)
    runner, got = _run(tmp_path, content, tiny_inputs)
    want = SavedModelRunner(tiny_models["one_dense"], "dense").predict(tiny_inputs)["probabilities"]
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.95
    assert set(op_summary(content)["by_dtype"]) <= EXPECTED_CATEGORIES[mode]
    assert sorted(runner.input_details) == ["a", "b"]  # signature serving_default keeps the input names


@pytest.mark.parametrize("io_dtype", ["uint8", "float32"])
def test_int8_io_dtype_is_honoured(io_dtype: str, tiny_models, tiny_inputs, tmp_path) -> None:
    content = tflite_engine.convert(tiny_models["one_dense"], "dense", resolve_options("int8", io_dtype), tiny_inputs)
    runner, got = _run(tmp_path, content, tiny_inputs)
    assert {np.dtype(d["dtype"]).name for d in runner.input_details.values()} == {io_dtype}
    assert np.dtype(runner.output_details["probabilities"]["dtype"]).name == io_dtype
    assert op_summary(content)["float_op_count"] == 0  # only QUANTIZE/DEQUANTIZE at the float boundary
    want = SavedModelRunner(tiny_models["one_dense"], "dense").predict(tiny_inputs)["probabilities"]
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.95


def test_denylisted_ops_stay_float_and_io_stays_int8(tiny_models, tiny_inputs, tmp_path) -> None:
    options = resolve_options("int8", denylisted_ops=["softmax"])
    content = tflite_engine.convert(tiny_models["one_dense"], "dense", options, tiny_inputs)
    summary = op_summary(content)
    assert summary["float_ops"] == ["SOFTMAX"]
    assert summary["ops"]["FULLY_CONNECTED"] == {"int8": 1}
    runner, _ = _run(tmp_path, content, tiny_inputs)
    assert {np.dtype(d["dtype"]).name for d in runner.input_details.values()} == {"int8"}


def test_an_op_without_int8_kernel_is_named(tiny_models, tiny_inputs) -> None:
    with pytest.raises(ValueError, match=r"signature 'sine' has op\(s\) without a quantized int8 kernel, left in float: .*SIN.*Set allow_float"):
        tflite_engine.convert(tiny_models["sine"], "sine", resolve_options("int8"), tiny_inputs)


def test_float_fallback_keeps_such_an_op_float(tiny_models, tiny_inputs) -> None:
    content = tflite_engine.convert(tiny_models["sine"], "sine", resolve_options("int8", allow_float_fallback=True),
                                    tiny_inputs)
    summary = op_summary(content)
    assert "SIN" in summary["float_ops"] and summary["ops"]["SIN"] == {"float32": 1}


@pytest.fixture(scope="module")
def category_encoding_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The TFX taxi example's pattern: int ids one-hot encoded by CategoryEncoding, saved by Keras' model.save with a
    dense signature (serving dir laid out as the Trainer's: <uri>/Format-Serving)."""
    uri = tmp_path_factory.mktemp("category_encoding") / "model"
    ids = tf_keras.Input((1,), dtype=tf.int32, name="color_id")
    x = tf_keras.Input((1,), dtype=tf.float32, name="x")
    one_hot = tf_keras.layers.CategoryEncoding(num_tokens=4, output_mode="one_hot", name="color_one_hot")(ids)
    hidden = tf_keras.layers.Concatenate()([one_hot, x])
    model = tf_keras.Model([ids, x], tf_keras.layers.Dense(2, activation="softmax")(hidden))

    @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.int32, name="color_id"),
                                  tf.TensorSpec([None, 1], tf.float32, name="x")])
    def dense(color_id: tf.Tensor, x: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"probabilities": model([color_id, x])}

    model.save(str(uri / "Format-Serving"), signatures={"dense": dense})
    return str(uri)


def test_category_encoding_converts_to_int8_in_the_converter_child(category_encoding_model, tmp_path) -> None:
    """It killed this child with SIGSEGV before builtin_rewrites (TF 2.16): its DenseBincount is now ONE_HOT."""
    saved_model = os.path.join(category_encoding_model, "Format-Serving")
    inputs = {"color_id": (np.arange(40) % 4).astype(np.int32).reshape(-1, 1),
              "x": np.linspace(0, 1, 40, dtype=np.float32).reshape(-1, 1)}
    output = tmp_path / "out.tflite"
    run_isolated(convert_to_file, {"saved_model_dir": saved_model, "signature_name": "dense",
                                   "options": resolve_options("int8"), "inputs": inputs, "output_path": str(output)},
                 what="int8 conversion")
    summary = op_summary(output.read_bytes())
    assert summary["ops"]["ONE_HOT"] == {"bool": 1} and summary["float_op_count"] == 0
    got = TFLiteRunner(str(output)).predict(inputs)["probabilities"]
    want = SavedModelRunner(saved_model, "dense").predict(inputs)["probabilities"]
    assert np.abs(got - want).max() < 0.05


def test_the_quantizer_converts_category_encoding_and_reports_the_rewrite(category_encoding_model, tmp_path) -> None:
    output = str(tmp_path / "quantized_model")
    report = quantize(category_encoding_model, None, output, resolve_options("float16"), "dense", model_id=7)
    (rewrite,) = report["builtin_rewrites"]
    assert rewrite["layer"].endswith("/color_one_hot") and rewrite["output"] == "multi_hot" and rewrite["size"] == 4
    assert rewrite["checked_rows"] == 0  # float16 has no calibration rows to check it on
    assert "ONE_HOT" in report["ops"]["ops"] and report["select_ops"] == [] and not report["allow_select_ops"]


def test_a_denylisted_node_stays_float_and_the_rest_int8(tiny_models, tiny_inputs, tmp_path) -> None:
    from quantgate.components.quantizer.report import float_ops_by_output

    options = resolve_options("int8", denylisted_nodes=["MatMul;add"])
    content = tflite_engine.convert(tiny_models["one_dense"], "dense", options, tiny_inputs)
    assert float_ops_by_output(content) == [("FULLY_CONNECTED", "MatMul;add")]
    summary = op_summary(content)
    assert summary["ops"]["CONCATENATION"] == {"int8": 1} and summary["ops"]["SOFTMAX"] == {"int8": 1}
    runner, got = _run(tmp_path, content, tiny_inputs)
    assert {np.dtype(d["dtype"]).name for d in runner.input_details.values()} == {"int8"}
    want = SavedModelRunner(tiny_models["one_dense"], "dense").predict(tiny_inputs)["probabilities"]
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.95


def test_an_unknown_node_is_refused_with_the_close_and_the_valid_names(tiny_models, tiny_inputs) -> None:
    options = resolve_options("int8", denylisted_nodes=["MatMul"])
    with pytest.raises(ValueError, match=r"denylisted_nodes names tensor\(s\) that no op of signature 'dense' outputs: "
                                         r"'MatMul' \(did you mean 'MatMul;add'\?\)\. Its op output tensors are: "
                                         r"'concat', 'MatMul;add', 'StatefulPartitionedCall:0'"):
        tflite_engine.convert(tiny_models["one_dense"], "dense", options, tiny_inputs)
