"""Quantization-aware models in the Quantizer: a digits MLP trained float, fine-tuned with components/shared/qat.py,
converted to all-int8 with its learned ranges (with and without a representative dataset); post-training modes and
mode 'qat' on a float model refused; the QAT model's accuracy within the gate of the float model."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from sklearn.datasets import load_digits
from tfx.types import standard_artifacts

from quantgate.components.quantizer import executor
from quantgate.components.quantizer.options import resolve_options
from quantgate.components.representative_dataset_gen.storage import write_representative_dataset
from quantgate.components.shared import properties, qat
from quantgate.components.shared.fake_quant import fake_quant_ops
from quantgate.components.shared.model_runners import TFLiteRunner

SIGNATURE = "serving_features"
# The pipelines' default gate (quantization_max_delta): the QAT model may lose at most this much accuracy.
MAX_DELTA = 0.02


def _signatures(model: keras.Model) -> dict[str, tf.types.experimental.ConcreteFunction]:
    @tf.function(input_signature=[tf.TensorSpec([None, 64], tf.float32, name="pixels")])
    def serve(pixels: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"probabilities": model(pixels, training=False)}

    return {SIGNATURE: serve.get_concrete_function()}


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A float digits MLP and its QAT fine-tune as Model artifacts (Format-Serving), a representative dataset, and
    the held-out examples."""
    root = tmp_path_factory.mktemp("qat")
    data = load_digits()
    x, y = data.data.astype(np.float32), data.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    train, held_out = order[:1200], order[1200:]
    keras.utils.set_random_seed(0)
    inputs = keras.Input((64,), name="pixels")
    hidden = keras.layers.Dense(32, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="probabilities")(hidden))
    model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    dataset = tf.data.Dataset.from_tensor_slices((x[train], y[train])).batch(32)
    model.fit(dataset, epochs=8, verbose=0)
    uris = {name: str(root / name) for name in ("float", "qat")}
    model.save(os.path.join(uris["float"], "Format-Serving"), save_format="tf", signatures=_signatures(model))
    qat.train_quantization_aware(model, dataset, os.path.join(uris["qat"], "Format-Serving"), _signatures, SIGNATURE,
                                 epochs=2, learning_rate=1e-3, metrics=["accuracy"])
    records = [tf.train.Example(features=tf.train.Features(feature={
        "pixels": tf.train.Feature(float_list=tf.train.FloatList(value=x[i]))})).SerializeToString() for i in train[:100]]
    rep_uri = str(root / "representative")
    write_representative_dataset(rep_uri, records, {"num_examples": len(records)})
    float_probabilities = model.predict(x[held_out], verbose=0)
    return {"uris": uris, "rep_uri": rep_uri, "root": root, "x": x[held_out], "y": y[held_out],
            "float_accuracy": float((float_probabilities.argmax(1) == y[held_out]).mean())}


def _quantize(digits: dict, name: str, mode: str, *, with_dataset: bool, output: str) -> tuple[dict, bytes]:
    output_uri = str(digits["root"] / output)
    report = executor.quantize(os.path.join(digits["uris"][name]), digits["rep_uri"] if with_dataset else None,
                               output_uri, resolve_options(mode, has_representative_dataset=with_dataset), SIGNATURE)
    with open(os.path.join(output_uri, properties.SERVING_DIR, properties.TFLITE_FILENAME), "rb") as f:
        return report, f.read()


@pytest.fixture(scope="module")
def converted(digits) -> dict[str, tuple[dict, bytes]]:
    """Each conversion once (a child process each): the QAT model as 'qat' without a representative dataset and
    as 'int8' with one; the float model as 'int8'."""
    return {
        "qat": _quantize(digits, "qat", "qat", with_dataset=False, output="q-qat"),
        "int8": _quantize(digits, "qat", "int8", with_dataset=True, output="q-int8"),
        "float": _quantize(digits, "float", "int8", with_dataset=True, output="q-float"),
    }


def test_the_helper_exports_fake_quant_ops_in_the_dense_signature_and_the_float_model_has_none(digits) -> None:
    assert fake_quant_ops(os.path.join(digits["uris"]["float"], "Format-Serving"), SIGNATURE) == {}
    ops = fake_quant_ops(os.path.join(digits["uris"]["qat"], "Format-Serving"), SIGNATURE)
    assert ops.get("FakeQuantWithMinMaxVars", 0) >= 3  # the input, each Dense's weights and outputs


@pytest.mark.parametrize(("mode", "with_dataset"), [("qat", False), ("int8", True)])
def test_a_qat_model_converts_to_all_int8_with_its_learned_ranges(digits, converted, mode, with_dataset) -> None:
    report, content = converted[mode]
    assert report["mode"] == "qat" and report["qat"] is True
    assert report["fake_quant_ops"]["FakeQuantWithMinMaxVars"] >= 3
    assert report["ops"]["float_op_count"] == 0
    assert set(report["ops"]["by_dtype"]) == {"int8"}, report["ops"]
    assert report["inputs"]["pixels"]["dtype"] == "int8" and report["outputs"]["probabilities"]["dtype"] == "int8"
    assert (report["representative_dataset"] is not None) == with_dataset
    probabilities = TFLiteRunner("qat", content=content).predict({"pixels": digits["x"]})["probabilities"]
    accuracy = float((probabilities.argmax(1) == digits["y"]).mean())
    assert accuracy >= digits["float_accuracy"] - MAX_DELTA, (accuracy, digits["float_accuracy"])


def test_the_representative_dataset_leaves_the_learned_ranges_alone(digits, converted) -> None:
    (_, without), (_, with_) = converted["qat"], converted["int8"]
    runners = [TFLiteRunner(name, content=c) for name, c in (("without", without), ("with", with_))]
    assert [r.input_details["pixels"]["quantization"] for r in runners[:1]] == [
        r.input_details["pixels"]["quantization"] for r in runners[1:]]
    got = [r.predict({"pixels": digits["x"]})["probabilities"] for r in runners]
    np.testing.assert_array_equal(got[0], got[1])


def test_artifact_properties_say_qat(converted) -> None:
    report, _ = converted["qat"]
    artifact = standard_artifacts.Model()
    executor.set_artifact_properties(artifact, report, "/x")
    assert artifact.get_string_custom_property(properties.QUANTIZATION_MODE) == properties.QAT_MODE
    assert artifact.get_int_custom_property(properties.QAT) == 1
    float_report, _ = converted["float"]
    assert float_report["qat"] is False and float_report["mode"] == "int8"
    executor.set_artifact_properties(artifact, float_report, "/x")
    assert artifact.get_int_custom_property(properties.QAT) == 0


@pytest.mark.parametrize("mode", ["dynamic_range", "float16", "int16x8"])
def test_post_training_modes_are_refused_on_a_qat_model(digits, mode) -> None:
    with pytest.raises(ValueError, match=rf"quantization-aware \(fake-quant ops .*post-training mode '{mode}'.*Use mode 'qat'"):
        _quantize(digits, "qat", mode, with_dataset=True, output=f"refused-{mode}")
    assert not os.path.exists(digits["root"] / f"refused-{mode}" / properties.SERVING_DIR)


def test_mode_qat_on_a_float_model_is_refused(digits) -> None:
    with pytest.raises(ValueError, match=r"mode 'qat' needs a quantization-aware model.*runs no fake-quant op"):
        _quantize(digits, "float", "qat", with_dataset=True, output="refused-float")


def test_qat_options() -> None:
    assert resolve_options("qat", has_representative_dataset=False).io_dtype == "int8"
    assert resolve_options("qat", "float32", has_representative_dataset=False).full_integer
    with pytest.raises(ValueError, match="denylisted_ops do not apply to mode 'qat'"):
        resolve_options("qat", denylisted_ops=["SOFTMAX"])
    with pytest.raises(ValueError, match="has no 'qat' recipe"):
        resolve_options("qat", engine="litert_quantizer")


def test_unsupported_layers_stay_float_and_the_rest_is_annotated() -> None:
    x = np.random.default_rng(0).normal(5.0, 2.0, (64, 3)).astype(np.float32)
    inputs = keras.Input((3,), name="x")
    norm = keras.layers.Normalization(name="norm")
    norm.adapt(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="out")(
        keras.layers.Dense(4, activation="relu", name="hidden")(norm(inputs)))
    model = keras.Model(inputs, outputs)
    with pytest.raises(RuntimeError, match="Layer norm:.*Normalization.* is not supported"):
        import tensorflow_model_optimization as tfmot
        tfmot.quantization.keras.quantize_model(model)
    assert qat.unsupported_layers(model) == [("norm", "Normalization")]
    wrapped = qat.quantization_aware_model(model)
    assert [type(layer).__name__ for layer in wrapped.layers] == [
        "InputLayer", "Normalization", "QuantizeWrapperV2", "QuantizeWrapperV2"]
    np.testing.assert_allclose(wrapped.get_layer("norm")(x), model.get_layer("norm")(x), rtol=1e-6)


def test_the_report_lists_fake_quant_ops_in_json(digits, converted) -> None:
    report, _ = converted["qat"]
    with open(digits["root"] / "q-qat" / properties.QUANTIZATION_REPORT_FILENAME) as f:
        written = json.load(f)
    assert written["qat"] is True and written["fake_quant_ops"] == report["fake_quant_ops"]
