"""options: the Quantizer's parameter rules (pure)."""

from __future__ import annotations

import pytest

from quantgate.components.quantizer.options import (
    MODES,
    QuantizationOptions,
    check_node_names,
    resolve_options,
)


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


def test_node_lists_are_kept_as_given() -> None:
    options = resolve_options("int8", engine="litert_quantizer", denylisted_nodes=["a/MatMul"], int16_nodes=["b;c"])
    assert options.denylisted_nodes == ("a/MatMul",) and options.int16_nodes == ("b;c",)
    assert resolve_options("int8").denylisted_nodes == () == resolve_options("int8").int16_nodes
    assert resolve_options("int16x8", engine="litert_quantizer", denylisted_nodes=["x"]).denylisted_nodes == ("x",)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"mode": "dynamic_range", "denylisted_nodes": ["x"]}, r"denylisted_nodes apply to the calibrated modes"),
    ({"mode": "int8", "int16_nodes": ["x"]}, r"int16_nodes .*needs engine 'litert_quantizer' and mode 'int8' "
                                             r"\(got engine 'tflite_converter'.*use mode 'int16x8'"),
    ({"mode": "int16x8", "engine": "litert_quantizer", "int16_nodes": ["x"]}, r"int16_nodes .*got .*mode 'int16x8'"),
    ({"mode": "int8", "engine": "litert_quantizer", "denylisted_nodes": ["x"], "int16_nodes": ["x"]},
     r"\['x'\] are in both denylisted_nodes and int16_nodes"),
    ({"mode": "int8", "denylisted_nodes": "x/MatMul"}, r"must be a list of op output tensor names, not the string"),
    ({"mode": "int8", "denylisted_nodes": ["a", ""]}, r"must hold non-empty tensor names"),
    ({"mode": "int8", "denylisted_nodes": ["a", "a"]}, r"names \['a'\] more than once"),
    ({"mode": "int16x8", "denylisted_nodes": ["a"]}, r"with mode 'int16x8' need engine 'litert_quantizer'"),
    ({"mode": "int16x8", "denylisted_ops": ["SOFTMAX"]}, r"with mode 'int16x8' need engine 'litert_quantizer'"),
])
def test_bad_node_lists_are_refused_with_the_fix(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_options(kwargs.pop("mode"), **kwargs)


def test_check_node_names_lists_close_and_known_names() -> None:
    options = resolve_options("int8", denylisted_nodes=["dense_1/MatMul"])
    known = ["dense/MatMul;dense/BiasAdd", "dense_1/MatMul;dense_1/BiasAdd"] + [f"t{i}" for i in range(50)]
    check_node_names(options, ["dense_1/MatMul"], "the model")  # known: no error
    with pytest.raises(ValueError, match=r"no op of the model outputs: 'dense_1/MatMul' \(did you mean "
                                         r"'dense_1/MatMul;dense_1/BiasAdd'.*'t37' and 12 more"):
        check_node_names(options, known, "the model")


def test_int4_weight_nodes_are_kept_in_modes_int8_and_dynamic_range() -> None:
    for mode in ("int8", "dynamic_range"):
        options = resolve_options(mode, engine="litert_quantizer", int4_weight_nodes=["a;b"], int4_block_size=64)
        assert options.int4_weight_nodes == ("a;b",) and options.int4_block_size == 64
    assert resolve_options("int8").int4_weight_nodes == () and resolve_options("int8").int4_block_size == 32


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"mode": "int8", "int4_weight_nodes": ["x"]},
     r"int4_weight_nodes .*needs engine 'litert_quantizer' \(got engine 'tflite_converter'\).*Set "
     r"engine='litert_quantizer' \(modes int8, dynamic_range\)"),
    ({"mode": "int16x8", "engine": "litert_quantizer", "int4_weight_nodes": ["x"]},
     r"int4_weight_nodes combine with modes int8, dynamic_range and no int16_nodes \(got mode 'int16x8'\).*"
     r"LiteRT's builtin kernels.*compute int4 weights wrong"),
    ({"mode": "dynamic_range", "int4_weight_nodes": ["x"]}, r"int4_weight_nodes .*needs engine 'litert_quantizer'"),
    ({"mode": "int8", "engine": "litert_quantizer", "int4_weight_nodes": ["x"], "int4_block_size": 16},
     r"int4_block_size 16 is not one of ai-edge-quantizer's blockwise sizes \(32, 64, 128, 256\)"),
    ({"mode": "int8", "int4_block_size": True}, r"int4_block_size True is not one of"),
    ({"mode": "int8", "engine": "litert_quantizer", "int4_weight_nodes": "x"}, r"int4_weight_nodes must be a list"),
    ({"mode": "int8", "engine": "litert_quantizer", "int4_weight_nodes": ["x"], "int16_nodes": ["x"]},
     r"int4_weight_nodes combine with .*\(got mode 'int8', int16_nodes\)"),
    ({"mode": "int8", "engine": "litert_quantizer", "int4_weight_nodes": ["x"], "denylisted_nodes": ["x"]},
     r"\['x'\] are in both denylisted_nodes and int4_weight_nodes"),
])
def test_bad_int4_requests_are_refused_with_the_fix(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_options(kwargs.pop("mode"), **kwargs)
