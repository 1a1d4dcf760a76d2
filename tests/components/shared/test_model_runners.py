"""runners: vectorized round-and-clip quantization and batched TFLite / SavedModel prediction (tiny model)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf

from quantgate.components.shared.model_runners import (
    InputQuantizer,
    SavedModelRunner,
    TFLiteRunner,
    quantize_array,
)
from quantgate.components.shared.signature_inputs import InputSpec

RNG = np.random.default_rng(0)
BATCH = {"a": RNG.normal(size=(64, 2)).astype(np.float32), "b": RNG.normal(size=(64, 1)).astype(np.float32)}


def test_quantize_array_rounds_to_nearest_instead_of_truncating() -> None:
    x = np.array([0.26, 0.74, -0.26, -0.74], dtype=np.float32)
    np.testing.assert_array_equal(quantize_array(x, 0.5, 0, np.int8), [1, 1, -1, -1])  # truncation gives 0,1,0,-1


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16])
def test_the_one_value_path_quantizes_as_the_whole_array_path(dtype) -> None:
    scale, zero_point = 0.037, {np.int8: -3, np.uint8: 131, np.int16: 0}[dtype]
    # Random values, exact half steps (where rounding modes differ) and values far out of range.
    values = np.concatenate([RNG.normal(scale=4.0, size=500), (np.arange(-40, 40) + 0.5) * scale,
                             [-1e6, 1e6]]).astype(np.float32)
    quantizer = InputQuantizer(scale, zero_point, dtype)
    whole = quantizer(values.reshape(-1, 1))
    one_by_one = np.array([quantizer(values[i:i + 1].reshape(1, 1))[0, 0] for i in range(values.size)])
    assert whole.dtype == dtype and quantizer(values[:1].reshape(1, 1)).dtype == dtype
    np.testing.assert_array_equal(one_by_one, whole[:, 0])


def test_quantize_array_clips_to_the_dtype_range_and_applies_the_zero_point() -> None:
    x = np.array([[-1000.0], [0.0], [1000.0]])
    np.testing.assert_array_equal(quantize_array(x, 1.0, -128, np.int8), [[-128], [-128], [127]])
    np.testing.assert_array_equal(quantize_array(x, 1.0, 128, np.uint8), [[0], [128], [255]])
    q16 = quantize_array(x, 0.01, 0, np.int16)
    assert q16.dtype == np.int16 and q16.shape == (3, 1)
    np.testing.assert_array_equal(q16, [[-32768], [0], [32767]])


def test_quantize_array_refuses_a_non_positive_scale() -> None:
    with pytest.raises(ValueError, match="scale must be > 0"):
        quantize_array(np.zeros(2), 0.0, 0, np.int8)


@pytest.fixture(scope="module")
def tiny_tflite(tiny_models, tmp_path_factory) -> dict[str, str]:
    """The tiny model's dense signature as float and as full-int8 (int8 I/O) TFLite files."""
    loaded = tf.saved_model.load(tiny_models["one_dense"])
    paths = {}
    for mode in ("float", "int8"):
        converter = tf.lite.TFLiteConverter.from_concrete_functions([loaded.signatures["dense"]], loaded)
        if mode == "int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ({k: v[i:i + 1] for k, v in BATCH.items()} for i in range(64))
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = converter.inference_output_type = tf.int8
        paths[mode] = os.path.join(tmp_path_factory.mktemp("tflite"), f"{mode}.tflite")
        with open(paths[mode], "wb") as f:
            f.write(converter.convert())
    return paths


def test_float_tflite_matches_the_saved_model_on_a_whole_batch(tiny_models, tiny_tflite) -> None:
    runner = TFLiteRunner(tiny_tflite["float"])
    reference = SavedModelRunner(tiny_models["one_dense"], "dense")
    assert runner.output_names == reference.output_names == ["probabilities"]
    assert runner.input_specs == reference.input_specs == [
        InputSpec("a", np.dtype(np.float32), (None, 2)), InputSpec("b", np.dtype(np.float32), (None, 1))]
    got, want = runner.predict(BATCH)["probabilities"], reference.predict(BATCH)["probabilities"]
    assert got.shape == (64, 2) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert runner.predict({k: v[:5] for k, v in BATCH.items()})["probabilities"].shape == (5, 2)  # resized again


def test_int8_runner_quantizes_inputs_and_dequantizes_outputs(tiny_models, tiny_tflite) -> None:
    runner = TFLiteRunner(tiny_tflite["int8"])
    assert {d["dtype"] for d in runner.input_details.values()} == {np.int8}
    assert runner.output_details["probabilities"]["dtype"] == np.int8
    assert [s.dtype for s in runner.input_specs] == [np.float32, np.float32]  # predict takes floats
    got = runner.predict(BATCH)["probabilities"]
    want = SavedModelRunner(tiny_models["one_dense"], "dense").predict(BATCH)["probabilities"]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=0.05)
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.9


def test_int8_runner_passes_already_quantized_inputs_through(tiny_tflite) -> None:
    runner = TFLiteRunner(tiny_tflite["int8"])
    quantized = {}
    for name, details in runner.input_details.items():
        scale, zero_point = details["quantization"]
        quantized[name] = quantize_array(BATCH[name], scale, zero_point, np.int8)
    np.testing.assert_array_equal(runner.predict(quantized)["probabilities"], runner.predict(BATCH)["probabilities"])


def test_a_missing_input_is_named(tiny_models, tiny_tflite) -> None:
    with pytest.raises(ValueError, match=r"inputs \['b'\] are missing"):
        TFLiteRunner(tiny_tflite["float"]).predict({"a": BATCH["a"]})
    with pytest.raises(ValueError, match=r"inputs \['b'\] are missing"):
        SavedModelRunner(tiny_models["one_dense"], "dense").predict({"a": BATCH["a"]})


def test_a_corrupt_tflite_file_is_a_value_error_naming_the_path(tmp_path) -> None:
    path = tmp_path / "broken.tflite"
    path.write_bytes(b"this is not a flatbuffer" * 10)
    with pytest.raises(ValueError, match=f"cannot load TFLite model {path}"):
        TFLiteRunner(str(path))


def test_an_unquantized_integer_input_is_fed_as_is(tiny_models, tmp_path) -> None:
    loaded = tf.saved_model.load(tiny_models["two_dense"])
    path = tmp_path / "int.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_concrete_functions([loaded.signatures["dense_int"]], loaded).convert())
    runner = TFLiteRunner(str(path))
    assert runner.input_details["b"]["dtype"] == np.int64 and runner.input_details["b"]["quantization"] == (0.0, 0)
    assert [s.dtype for s in runner.input_specs] == [np.float32, np.int64]
    feed = {"a": BATCH["a"], "b": np.array([[1], [-2]] * 32, dtype=np.int64)}
    got = runner.predict(feed)["logits"]
    want = SavedModelRunner(tiny_models["two_dense"], "dense_int").predict(feed)["logits"]
    np.testing.assert_allclose(got, want, atol=1e-5)
