"""report: input steps vs spread (pure; null for undefined numbers), I/O summary incl. the QUANTIZE right after a
float input."""

from __future__ import annotations

import json

import numpy as np

from components.quantizer import tflite_engine
from components.quantizer.options import resolve_options
from components.quantizer.report import coarse_input_warnings, input_steps, io_summary, op_summary
from components.shared import strict_json


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
