"""report: input steps vs spread (pure; null for undefined numbers), I/O summary incl. the QUANTIZE right after a
float input, op summary of models with lookup tables and one-hot / embedding layers (real conversions)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from ai_edge_litert.interpreter import Interpreter

from components.quantizer import tflite_engine
from components.quantizer.options import resolve_options
from components.quantizer.report import coarse_input_warnings, input_steps, io_summary, op_summary
from components.shared import strict_json
from components.shared.model_runners import SavedModelRunner


def _io(**scales: float | None) -> dict:
    return {"inputs": {name: {"dtype": "int8", "scale": scale, "zero_point": 0} for name, scale in scales.items()}}


def test_a_feature_far_from_zero_with_a_small_spread_is_coarse() -> None:
    rng = np.random.default_rng(0)
    inputs = {"latitude": 41.9 + 0.05 * rng.normal(size=(500, 1)), "age": 40 + 10 * rng.normal(size=(500, 1)),
              "raw": rng.normal(size=(500, 1))}
    # Quantizing [0, 42] to int8 gives a 0.165 step: three or four levels across the latitudes.
    steps = input_steps(_io(latitude=42 / 255, age=80 / 255, raw=None), inputs)
    assert set(steps) == {"latitude", "age"}  # a float input (no scale) has no step
    assert steps["latitude"]["coarse"] and steps["latitude"]["distinct_levels"] <= 5
    assert steps["latitude"]["step_over_std"] > 3
    assert not steps["age"]["coarse"] and steps["age"]["step_over_std"] < 0.05
    (warning,) = coarse_input_warnings(steps)
    assert warning.startswith("input 'latitude': quantization step 0.1647") and "centring and scaling" in warning


def test_no_representative_inputs_means_no_steps() -> None:
    assert input_steps(_io(x=0.1), None) == {}


def test_float_io_int8_model_reports_the_internal_quantization_of_each_input(tiny_models, tiny_inputs) -> None:
    content = tflite_engine.convert(tiny_models["one_dense"], "dense", resolve_options("int8", "float32"), tiny_inputs)
    io = io_summary(content)
    assert set(io["inputs"]) == {"a", "b"} and set(io["outputs"]) == {"probabilities"}
    for entry in io["inputs"].values():
        assert entry["dtype"] == "float32" and entry["scale"] is None
        assert entry["internal_scale"] > 0  # the QUANTIZE op's step: the raw input is quantized right there
    assert op_summary(content)["ops"]["QUANTIZE"] == {"conversion": 2}
    steps = input_steps(io, tiny_inputs)
    assert set(steps) == {"a", "b"} and not any(s["coarse"] for s in steps.values())


def _strict(text: str) -> object:
    def refuse(constant: str) -> None:
        raise AssertionError(f"not strict JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


def test_a_constant_input_has_no_step_ratio_and_is_not_coarse() -> None:
    inputs = {"const": np.full((50, 1), 3.0), "zero": np.zeros((50, 1))}
    steps = input_steps(_io(const=3.0 / 127, zero=1 / 255), inputs)
    for name in ("const", "zero"):
        assert steps[name]["std"] == 0 and steps[name]["step_over_std"] is None
        assert steps[name]["coarse"] is False and steps[name]["distinct_values"] == 1
    assert coarse_input_warnings(steps) == []
    assert _strict(strict_json.dumps(steps)) == steps


def test_non_finite_values_give_null_statistics_not_nan() -> None:
    inputs = {"x": np.array([[1.0], [np.nan], [np.inf]]), "y": np.array([[-np.inf], [2.0]])}
    steps = input_steps(_io(x=0.1, y=0.1), inputs)
    assert steps["x"]["std"] is None and steps["x"]["step_over_std"] is None and steps["x"]["max"] is None
    assert steps["y"]["min"] is None and steps["y"]["max"] == 2.0
    assert not any(s["coarse"] for s in steps.values()) and coarse_input_warnings(steps) == []
    _strict(strict_json.dumps(steps))


COLORS = ["red", "green", "blue"]


class _LookupModel(tf.Module):
    """What the taxi model is: a tf_keras model over int ids (Embedding) that also carries a StringLookup with an
    in-graph vocabulary, exported with an id signature and a string one."""

    def __init__(self) -> None:
        super().__init__()
        ids = tf_keras.Input((1,), dtype=tf.int32, name="color_id")
        embedded = tf_keras.layers.Flatten()(tf_keras.layers.Embedding(len(COLORS) + 1, 3)(ids))
        self.model = tf_keras.Model(ids, tf_keras.layers.Dense(2, activation="softmax")(embedded))
        self.lookup = tf_keras.layers.StringLookup(vocabulary=COLORS, num_oov_indices=1)

    @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.int32, name="color_id")])
    def ids(self, color_id: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"probabilities": self.model(color_id)}

    @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.string, name="color")])
    def strings(self, color: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"probabilities": self.model(tf.cast(self.lookup(color), tf.int32))}


@pytest.fixture(scope="module")
def lookup_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("lookup") / "saved_model")
    module = _LookupModel()
    tf.saved_model.save(module, path, signatures={"ids": module.ids, "strings": module.strings})
    return path


def _tflite_predict(content: bytes, inputs: dict[str, np.ndarray]) -> np.ndarray:
    runner = Interpreter(model_content=content).get_signature_runner("serving_default")
    return runner(**inputs)["probabilities"]


def test_a_table_initializer_without_outputs_is_counted_not_a_crash(lookup_model: str) -> None:
    ids = {"color_id": np.arange(len(COLORS) + 1, dtype=np.int32).reshape(-1, 1).repeat(5, axis=0)}
    content = tflite_engine.convert(lookup_model, "ids", resolve_options("int8", "float32"), ids)
    summary = op_summary(content)
    assert summary["ops"]["CALL_ONCE"] == {"no_output": 1}  # the table's initializer: no output tensor at all
    assert summary["float_op_count"] == 0 and summary["ops"]["FULLY_CONNECTED"] == {"int8": 1}
    want = SavedModelRunner(lookup_model, "ids").predict(ids)["probabilities"]
    np.testing.assert_allclose(_tflite_predict(content, ids), want, atol=0.05)


def test_a_string_lookup_converts_as_lookup_ops_not_float_compute(lookup_model: str) -> None:
    strings = {"color": np.array([[c.encode()] for c in COLORS * 5 + ["purple"]], dtype=object)}
    # int8 with no float fallback: the HASHTABLE ops are not "unexpected float ops", so the conversion is accepted.
    content = tflite_engine.convert(lookup_model, "strings", resolve_options("int8", "float32"), strings)
    summary = op_summary(content)
    assert summary["lookup_ops"] == ["HASHTABLE", "HASHTABLE_FIND"]
    assert summary["ops"]["HASHTABLE_FIND"] == {"lookup": 1} and summary["by_dtype"]["lookup"] == 2
    assert summary["float_ops"] == [] and summary["ops"]["FULLY_CONNECTED"] == {"int8": 1}
    io = io_summary(content)
    assert io["inputs"]["color"]["scale"] is None  # a string input is looked up, not quantized
    # SavedModelRunner takes dense numeric signatures only: call the string signature directly.
    want = tf.saved_model.load(lookup_model).signatures["strings"](color=tf.constant(strings["color"]))
    want = want["probabilities"].numpy()
    np.testing.assert_allclose(_tflite_predict(content, strings), want, atol=0.05)


class _OneHotModel(tf.Module):
    """int ids through tf.one_hot beside an Embedding of the same ids: the converter's int8 path for both."""

    def __init__(self) -> None:
        super().__init__()
        ids = tf_keras.Input((1,), dtype=tf.int32, name="color_id")
        one_hot = tf_keras.layers.Lambda(lambda t: tf.one_hot(t[:, 0], len(COLORS) + 1))(ids)
        embedded = tf_keras.layers.Flatten()(tf_keras.layers.Embedding(len(COLORS) + 1, 2)(ids))
        hidden = tf_keras.layers.Concatenate()([one_hot, embedded])
        self.model = tf_keras.Model(ids, tf_keras.layers.Dense(2, activation="softmax")(hidden))

    @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.int32, name="color_id")])
    def ids(self, color_id: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"probabilities": self.model(color_id)}


def test_one_hot_and_embedding_on_int_ids_are_int8(tmp_path) -> None:
    path = str(tmp_path / "saved_model")
    module = _OneHotModel()
    tf.saved_model.save(module, path, signatures={"ids": module.ids})
    ids = {"color_id": np.arange(len(COLORS) + 1, dtype=np.int32).reshape(-1, 1).repeat(5, axis=0)}
    summary = op_summary(tflite_engine.convert(path, "ids", resolve_options("int8"), ids))
    assert summary["ops"]["ONE_HOT"] == {"int8": 1} and summary["ops"]["GATHER"] == {"int8": 1}
    assert summary["float_op_count"] == 0 and summary["lookup_ops"] == []
