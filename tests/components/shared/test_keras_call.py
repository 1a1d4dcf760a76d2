"""The derived function of a stock export: Keras models saved as TFX Trainers save them (only a serialized
tf.Example signature), read from the object graph, run as the float baseline and converted by the real converter."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from quantgate.components.quantizer import float_reference
from quantgate.components.shared.model_runners import ModelFunction, SavedModelRunner, TFLiteRunner
from quantgate.components.shared.signature_inputs import (
    DENSE,
    DERIVED,
    KERAS_CALL,
    NAMED,
    dense_signature_specs,
    keras_call,
    signature_source,
)

RNG = np.random.default_rng(7)


def _examples_signature(model: keras.Model, features: dict[str, tf.io.FixedLenFeature]) -> tf.types.experimental.ConcreteFunction:
    """What a TFX Trainer exports: serialized tf.Examples in, parse, the model's call."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"outputs": model(tf.io.parse_example(serialized, features))}

    return serve.get_concrete_function()


def _save(model: keras.Model, path: str, features: dict[str, tf.io.FixedLenFeature], keras_format: bool) -> str:
    signatures = {"serving_default": _examples_signature(model, features)}
    if keras_format:
        model.save(path, save_format="tf", signatures=signatures)
    else:
        tf.saved_model.save(model, path, signatures=signatures)
    return path


def _wide_model() -> keras.Model:
    """Two named inputs of different dtypes and widths, a logit out."""
    ids = keras.Input(shape=(3,), dtype=tf.int64, name="ids_xf")
    x = keras.Input(shape=(2,), dtype=tf.float32, name="x_xf")
    embedded = keras.layers.Flatten()(keras.layers.Embedding(10, 4)(ids))
    out = keras.layers.Dense(1)(keras.layers.Concatenate()([embedded, x]))
    return keras.Model(inputs={"ids_xf": ids, "x_xf": x}, outputs=out)


WIDE_FEATURES = {"ids_xf": tf.io.FixedLenFeature([3], tf.int64), "x_xf": tf.io.FixedLenFeature([2], tf.float32)}
WIDE_INPUTS = {"ids_xf": RNG.integers(0, 10, size=(7, 3)), "x_xf": RNG.normal(size=(7, 2)).astype(np.float32)}


@pytest.fixture(scope="module", params=["tf.saved_model.save", "model.save"])
def wide(request, tmp_path_factory) -> tuple[str, keras.Model]:
    model = _wide_model()
    path = str(tmp_path_factory.mktemp("wide") / "model")
    return _save(model, path, WIDE_FEATURES, keras_format=request.param == "model.save"), model


def test_a_stock_export_derives_the_keras_call_over_its_inputs(wide) -> None:
    path, model = wide
    name, specs = dense_signature_specs(path, None)
    assert name == KERAS_CALL and signature_source(None, name) == DERIVED
    assert [(s.name, s.dtype, s.shape) for s in specs] == [
        ("ids_xf", np.dtype(np.int64), (None, 3)), ("x_xf", np.dtype(np.float32), (None, 2))]
    assert dense_signature_specs(path, KERAS_CALL) == (name, specs)  # asked for by name, the same
    assert keras_call(path).function_name.startswith("__inference_")
    runner = SavedModelRunner(path, None)
    assert runner.signature_name == KERAS_CALL and runner.output_names == ["output_0"]
    want = model({k: tf.constant(v) for k, v in WIDE_INPUTS.items()}, training=False).numpy()
    np.testing.assert_allclose(runner.predict(WIDE_INPUTS)["output_0"], want, rtol=1e-6, atol=1e-6)


def test_the_derived_function_converts_with_the_feature_names(wide, tmp_path) -> None:
    path, model = wide
    content = float_reference.float_tflite(path, KERAS_CALL)
    tflite = tmp_path / "model.tflite"
    tflite.write_bytes(content)
    runner = TFLiteRunner(str(tflite))
    assert [s.name for s in runner.input_specs] == ["ids_xf", "x_xf"] and runner.fixed_batch_size is None
    want = model({k: tf.constant(v) for k, v in WIDE_INPUTS.items()}, training=False).numpy()
    np.testing.assert_allclose(runner.predict(WIDE_INPUTS)["output_0"], want, rtol=1e-5, atol=1e-5)


def test_a_named_or_dense_signature_still_wins(tmp_path) -> None:
    model = _wide_model()
    dense = tf.function(lambda ids_xf, x_xf: {"logit": model({"ids_xf": ids_xf, "x_xf": x_xf})}, input_signature=[
        tf.TensorSpec([None, 3], tf.int64, name="ids_xf"), tf.TensorSpec([None, 2], tf.float32, name="x_xf")])
    path = str(tmp_path / "model")
    tf.saved_model.save(model, path, signatures={"serving_default": _examples_signature(model, WIDE_FEATURES),
                                                 "features": dense.get_concrete_function()})
    assert dense_signature_specs(path, None)[0] == "features" and signature_source(None, "features") == DENSE
    assert signature_source("features", "features") == NAMED


def test_a_recurrent_model_converts_with_a_fixed_batch_and_is_fed_one_example_per_invoke(tmp_path) -> None:
    tokens = keras.Input(shape=(12,), dtype=tf.int64, name="tokens_xf")
    hidden = keras.layers.Bidirectional(keras.layers.LSTM(4))(keras.layers.Embedding(20, 3)(tokens))
    model = keras.Model(inputs={"tokens_xf": tokens}, outputs=keras.layers.Dense(1)(hidden))
    path = _save(model, str(tmp_path / "lstm"), {"tokens_xf": tf.io.FixedLenFeature([12], tf.int64)}, False)
    assert float_reference.conversion_batch_size(path, KERAS_CALL) == float_reference.FIXED_BATCH_SIZE
    tflite = tmp_path / "model.tflite"
    tflite.write_bytes(float_reference.float_tflite(path, KERAS_CALL))
    runner = TFLiteRunner(str(tflite))
    assert runner.fixed_batch_size == 1
    inputs = {"tokens_xf": RNG.integers(0, 20, size=(5, 12))}
    want = SavedModelRunner(path, KERAS_CALL).predict(inputs)["output_0"]
    np.testing.assert_allclose(runner.predict(inputs)["output_0"], want, rtol=1e-4, atol=1e-5)
    loaded = tf.saved_model.load(path)
    assert ModelFunction(loaded, path, KERAS_CALL, batch_size=1).concrete.structured_input_signature[0][0].shape == (
        1, 12)


def test_a_model_saved_without_its_keras_call_is_refused_naming_both_fixes(tmp_path) -> None:
    module = tf.Module()
    module.serve = tf.function(lambda s: {"outputs": tf.strings.length(s)},
                               input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    path = str(tmp_path / "plain")
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve.get_concrete_function()})
    with pytest.raises(ValueError, match="no signature takes only dense numeric inputs") as error:
        dense_signature_specs(path, None)
    message = str(error.value)
    assert "serving_default {examples: string[None]}" in message and "has no Keras call" in message
    assert "Or save the Keras model itself" in message
    assert os.path.isdir(path)


def test_int16x8_on_a_recurrent_model_is_refused_naming_the_modes_that_convert(tmp_path) -> None:
    from quantgate.components.quantizer import tflite_engine
    from quantgate.components.quantizer.options import resolve_options

    tokens = keras.Input(shape=(6,), dtype=tf.int64, name="tokens_xf")
    hidden = keras.layers.LSTM(3)(keras.layers.Embedding(20, 3)(tokens))
    model = keras.Model(inputs={"tokens_xf": tokens}, outputs=keras.layers.Dense(1)(hidden))
    path = _save(model, str(tmp_path / "lstm"), {"tokens_xf": tf.io.FixedLenFeature([6], tf.int64)}, False)
    calibration = {"tokens_xf": RNG.integers(0, 20, size=(8, 6))}
    with pytest.raises(ValueError, match="without a quantized int16x8 kernel, left in float: "
                                         "UNIDIRECTIONAL_SEQUENCE_LSTM") as error:
        tflite_engine.convert(path, KERAS_CALL, resolve_options("int16x8"), calibration)
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM converts in int8, dynamic_range" in str(error.value)
    content = tflite_engine.convert(path, KERAS_CALL, resolve_options("int8"), calibration)
    assert TFLiteRunner("lstm int8", content=content).fixed_batch_size == 1

