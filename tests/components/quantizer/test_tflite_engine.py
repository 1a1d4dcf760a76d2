"""tflite_engine: every mode converts (in-process here; the executor test goes through the child process)."""

from __future__ import annotations

import numpy as np
import pytest

from components.quantizer import tflite_engine
from components.quantizer.options import resolve_options
from components.quantizer.report import op_summary
from components.shared.model_runners import SavedModelRunner, TFLiteRunner


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
