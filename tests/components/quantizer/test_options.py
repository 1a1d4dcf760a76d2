"""options: the Quantizer's parameter rules (pure)."""

from __future__ import annotations

import pytest

from components.quantizer.options import MODES, QuantizationOptions, resolve_options


@pytest.mark.parametrize(("mode", "io_dtype"), [("int8", "int8"), ("int16x8", "int16"), ("dynamic_range", "float32"),
                                                ("float16", "float32")])
def test_each_mode_resolves_its_default_io_dtype(mode: str, io_dtype: str) -> None:
    assert resolve_options(mode) == QuantizationOptions(mode=mode, io_dtype=io_dtype)
    assert mode in MODES


def test_explicit_values_are_kept_and_op_names_upper_cased() -> None:
    options = resolve_options("int8", "uint8", denylisted_ops=["fully_connected"], allow_float_fallback=True)
    assert options == QuantizationOptions("int8", "uint8", "tflite_converter", ("FULLY_CONNECTED",), True)
    assert options.calibrated and not resolve_options("float16").calibrated


def test_litert_engine_io_dtype_is_fixed_by_its_recipe() -> None:
    assert resolve_options("int8", engine="litert_quantizer").io_dtype == "int8"
    with pytest.raises(ValueError, match=r"io_dtype 'float32' is not available in mode 'int8'"):
        resolve_options("int8", "float32", engine="litert_quantizer")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"mode": "int4"}, r"unknown mode 'int4'; use one of int8, dynamic_range, float16, int16x8"),
    ({"mode": "int8", "engine": "tvm"}, r"unknown engine 'tvm'"),
    ({"mode": "int8", "io_dtype": "int16"}, r"io_dtype 'int16' is not available in mode 'int8'; use one of"),
    ({"mode": "float16", "io_dtype": "int8"}, r"io_dtype 'int8' is not available in mode 'float16'"),
    ({"mode": "int8", "has_representative_dataset": False}, r"mode 'int8' .*needs representative_dataset"),
    ({"mode": "int16x8", "has_representative_dataset": False}, r"mode 'int16x8' .*needs representative_dataset"),
    ({"mode": "dynamic_range", "denylisted_ops": ["ADD"]}, r"denylisted_ops \['ADD'\] apply to the calibrated modes"),
    ({"mode": "float16", "engine": "litert_quantizer"}, r"engine 'litert_quantizer' has no 'float16' recipe"),
    ({"mode": "int8", "engine": "litert_quantizer", "denylisted_ops": ["ADD"]}, r"denylisted_ops needs engine"),
])
def test_bad_parameters_are_refused_with_the_fix(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_options(kwargs.pop("mode"), kwargs.pop("io_dtype", None), **kwargs)


def test_modes_without_calibration_need_no_dataset() -> None:
    assert resolve_options("dynamic_range", has_representative_dataset=False).mode == "dynamic_range"
