"""report: input steps vs spread (pure, column by column for a vector input; null for undefined numbers), I/O
summary incl. the QUANTIZE right after a float input, op summary of models with lookup tables and one-hot /
embedding layers (real conversions)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from ai_edge_litert.interpreter import Interpreter

from quantgate.components.quantizer import tflite_engine
from quantgate.components.quantizer.options import resolve_options
from quantgate.components.quantizer.report import (
    build_report,
    coarse_input_warnings,
    input_steps,
    io_summary,
    op_summary,
    shared_input_scales,
)
from quantgate.components.shared import strict_json
from quantgate.components.shared.model_runners import SavedModelRunner


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


SCALAR_KEYS = {"step", "std", "min", "max", "step_over_std", "distinct_levels", "distinct_values", "coarse"}


def _mixed_scale_features(rng: np.random.Generator, n: int = 400) -> tuple[np.ndarray, set[int], set[int]]:
    """30 raw features of very different scales in one [n, 30] input (breast-cancer-like): 8 large, 4 medium
    (coarse, several levels left), 17 small (all in one step), 1 constant.

    Returns the array, the coarse indices and the collapsed (one-level) indices.
    """
    kinds = ["large"] * 8 + ["medium"] * 4 + ["small"] * 17 + ["constant"]
    order = rng.permutation(len(kinds))
    kinds = [kinds[i] for i in order]
    spec = {"large": (1000.0, 200.0), "medium": (60.0, 10.0), "small": (0.1, 0.02), "constant": (5.0, 0.0)}
    columns = [spec[k][0] + spec[k][1] * rng.normal(size=n) for k in kinds]
    coarse = {i for i, k in enumerate(kinds) if k in ("medium", "small")}
    return np.abs(np.stack(columns, axis=1)), coarse, {i for i, k in enumerate(kinds) if k == "small"}


def test_a_vector_input_is_judged_column_by_column() -> None:
    features, coarse, collapsed = _mixed_scale_features(np.random.default_rng(1))
    step = features.max() / 255  # int8 over [0, max]: one scale for all 30 columns
    assert step / features.std() < 0.1  # the whole-tensor measure says "fine": the bug
    (entry,) = input_steps(_io(x=step), {"x": features}).values()
    assert entry["coarse"] is True and entry["columns"] == 30
    assert entry["coarse_columns"] == len(coarse) == 21
    assert entry["coarse_column_indices"] == sorted(coarse)[:20]  # the first 20 only
    assert entry["distinct_levels"] == 1  # the small ones collapse to a single level
    per_column = [step / c.std() for c in features.T if c.std() > 0]
    assert entry["step_over_std"] == pytest.approx(max(per_column)) and entry["step_over_std"] > 100
    assert entry["std"] == pytest.approx(features.std()) and entry["max"] == features.max() and entry["min"] >= 0
    for i in collapsed:  # what the report claims, checked on the quantized column itself
        assert np.unique(np.round(features[:, i] / step)).size == 1
    (warning,) = coarse_input_warnings({"x": entry})
    assert warning.startswith("input 'x': 21 of its 30 columns are coarse (columns ")
    assert ", ".join(str(i) for i in sorted(coarse)[:8]) + ", ...)" in warning
    assert "Normalize each feature before the model input" in warning and "io_dtype='float32'" in warning
    assert _strict(strict_json.dumps({"x": entry})) == {"x": entry}


def test_a_well_scaled_vector_input_is_not_coarse() -> None:
    features, _, _ = _mixed_scale_features(np.random.default_rng(2))
    spread = features.std(axis=0)
    features = (features - features.mean(axis=0)) / np.where(spread > 0, spread, 1)  # what Transform would do
    step = (features.max() - features.min()) / 255
    (entry,) = input_steps(_io(x=step), {"x": features}).values()
    assert entry["coarse"] is False and entry["columns"] == 30
    assert entry["coarse_columns"] == 0 and entry["coarse_column_indices"] == []
    assert entry["step_over_std"] < 0.1 and entry["distinct_levels"] == 1  # the constant column: 1 level, not coarse
    assert coarse_input_warnings({"x": entry}) == []


def test_a_multi_dimensional_input_flattens_its_per_example_shape_into_columns() -> None:
    rng = np.random.default_rng(3)
    images = 200 * rng.normal(size=(200, 2, 3))
    images[:, 1, 2] = 500 + 0.5 * rng.normal(size=200)  # element [1, 2] = column 5: far from 0, small spread
    (entry,) = input_steps(_io(x=images.max() / 127), {"x": images}).values()
    assert entry["columns"] == 6 and entry["coarse_columns"] == 1 and entry["coarse_column_indices"] == [5]


def test_a_scalar_input_keeps_its_keys_and_numbers() -> None:
    rng = np.random.default_rng(4)
    for values in (41.9 + 0.05 * rng.normal(size=(300, 1)), 41.9 + 0.05 * rng.normal(size=300)):
        step = 42 / 255
        (entry,) = input_steps(_io(x=step), {"x": values}).values()
        assert set(entry) == SCALAR_KEYS  # one column: no per-column keys
        assert entry["step_over_std"] == pytest.approx(step / values.std())
        assert entry["distinct_levels"] == np.unique(np.round(values / step)).size
        assert entry["distinct_values"] == values.size and entry["coarse"] is True
        (warning,) = coarse_input_warnings({"x": entry})
        assert warning.startswith("input 'x': quantization step 0.1647 is ") and "centring and scaling" in warning


def test_a_column_with_non_finite_values_that_collapses_is_coarse() -> None:
    # Column 0: an undefined std (inf), but its finite values 0.1 .. 0.3 all quantize to 0. Column 1: fine.
    # Column 2: one finite value and a NaN: nothing to lose. Column 3: constant.
    inputs = {"x": np.array([[0.1, -50.0, 1.0, 7.0], [0.2, 0.0, np.nan, 7.0], [0.3, 50.0, 1.0, 7.0],
                             [np.inf, 100.0, 1.0, 7.0]])}
    (entry,) = input_steps(_io(x=1.0), inputs).values()
    assert entry["coarse_column_indices"] == [0] and entry["coarse_columns"] == 1 and entry["coarse"] is True
    assert entry["std"] is None and entry["max"] is None  # over the whole input, as before
    assert entry["step_over_std"] == pytest.approx(1.0 / np.std([-50.0, 0.0, 50.0, 100.0]))
    _strict(strict_json.dumps({"x": entry}))
    (warning,) = coarse_input_warnings({"x": entry})
    assert "1 of its 4 columns are coarse (columns 0)" in warning


def test_a_constant_vector_input_is_not_coarse() -> None:
    (entry,) = input_steps(_io(x=1 / 127), {"x": np.full((20, 3), 0.5)}).values()
    assert entry["step_over_std"] is None and entry["coarse"] is False and entry["coarse_columns"] == 0
    assert _strict(strict_json.dumps({"x": entry})) == {"x": entry}


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


# --- input traps on real conversions of tiny Keras models (tests/components/quantizer/conftest.py) ---------------

def _trap_report(model) -> dict:
    content = tflite_engine.convert(model.path, "serving_features", resolve_options("int8"), model.inputs)
    return build_report(content, options=resolve_options("int8"), signature_name="serving_features",
                        saved_model_dir=model.path, inputs=model.inputs, representative_dataset_uri=None,
                        conversion_seconds=0.0)


def test_a_vector_of_raw_features_is_judged_column_by_column(trap_models) -> None:
    report = _trap_report(trap_models["vector"])
    steps = report["input_steps"]["features"]
    assert steps["columns"] == 30 and steps["coarse"] and steps["coarse_columns"] >= 10
    assert steps["distinct_levels"] <= 2  # the poorest column keeps at most two int8 levels
    (warning,) = report["warnings"]
    assert f"{steps['coarse_columns']} of its 30 columns are coarse" in warning
    assert report["shared_input_scales"] == []  # one input: nothing to share


def test_inputs_sharing_one_scale_after_a_folded_normalization_are_warned(trap_models) -> None:
    report = _trap_report(trap_models["shared_scale"])
    (group,) = report["shared_input_scales"]
    assert group["inputs"] == sorted(f"f{i}" for i in range(13))
    assert len({report["inputs"][name]["scale"] for name in group["inputs"]}) == 1
    assert group["widest"] == "f12" and group["range_ratio"] > 100  # proline (hundreds) against hue (about 1)
    shared = [w for w in report["warnings"] if "share one quantization scale" in w]
    assert len(shared) == 1 and "Normalization layer per input" in shared[0] and "io_dtype='float32'" in shared[0]
    assert "(13) share" in shared[0]


def test_per_input_normalization_layers_give_no_warning(trap_models) -> None:
    report = _trap_report(trap_models["penguin_like"])
    assert report["warnings"] == [] and report["shared_input_scales"] == []
    assert len({entry["scale"] for entry in report["inputs"].values()}) == 4


def test_shared_scales_need_a_real_difference_in_spread() -> None:
    def entry(scale: float) -> dict:
        return {"dtype": "int8", "shape": [-1, 1], "scale": scale, "zero_point": 0}

    io = {"inputs": {"narrow": entry(0.5), "wide": entry(0.5), "alike": entry(0.1), "alike2": entry(0.1),
                     "constant": entry(0.5), "alone": entry(0.3)}}
    values = np.linspace(-1, 1, 50)[:, None]
    inputs = {"narrow": values, "wide": values * 60, "alike": values, "alike2": values * 2,
              "constant": np.full((50, 1), 3.0), "alone": values * 1000}
    (group,) = shared_input_scales(io, inputs)
    assert group["inputs"] == ["narrow", "wide"] and group["narrowest"] == "narrow"
    assert group["range_ratio"] == pytest.approx(60) and group["scale"] == 0.5
    assert shared_input_scales(io, None) == []
