"""litert_engine: ai-edge-quantizer recipes on the tiny model (in-process)."""

from __future__ import annotations

import numpy as np
import pytest

from components.quantizer import litert_engine
from components.quantizer.options import resolve_options
from components.quantizer.report import op_summary
from components.shared.model_runners import SavedModelRunner, TFLiteRunner


@pytest.mark.parametrize(("mode", "categories", "io"), [
    ("int8", {"int8", "conversion"}, "int8"),
    ("dynamic_range", {"hybrid", "float32"}, "float32"),
])
def test_recipes_quantize_and_agree_with_the_float_model(mode, categories, io, tiny_models, tiny_inputs, tmp_path) -> None:
    options = resolve_options(mode, engine="litert_quantizer")
    content = litert_engine.convert(tiny_models["one_dense"], "dense", options, tiny_inputs)
    assert set(op_summary(content)["by_dtype"]) <= categories
    path = tmp_path / "model.tflite"
    path.write_bytes(content)
    runner = TFLiteRunner(str(path))
    assert {np.dtype(d["dtype"]).name for d in runner.input_details.values()} == {io}
    got = runner.predict(tiny_inputs)["probabilities"]
    want = SavedModelRunner(tiny_models["one_dense"], "dense").predict(tiny_inputs)["probabilities"]
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.95


def test_an_op_left_float_is_an_error_without_fallback(tiny_models, tiny_inputs) -> None:
    options = resolve_options("int8", engine="litert_quantizer")
    with pytest.raises(ValueError, match=r"ai-edge-quantizer left float in mode 'int8': .*SIN"):
        litert_engine.convert(tiny_models["sine"], "sine", options, tiny_inputs)


def _output_dtypes(content: bytes) -> dict[str, str]:
    """Each op's first output tensor name -> its dtype, read back from the flatbuffer."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content)
    return {interpreter._get_tensor_details(op["outputs"][0], 0)["name"]:
            np.dtype(interpreter._get_tensor_details(op["outputs"][0], 0)["dtype"]).name
            for op in interpreter._get_ops_details()}


def test_int16_nodes_get_int16_activations_and_the_rest_stays_int8(tiny_models, tiny_inputs) -> None:
    options = resolve_options("int8", engine="litert_quantizer", int16_nodes=["MatMul;add"])
    content = litert_engine.convert(tiny_models["one_dense"], "dense", options, tiny_inputs)
    dtypes = _output_dtypes(content)
    assert dtypes["MatMul;add"] == "int16"
    assert dtypes["concat"] == "int8" and dtypes["StatefulPartitionedCall:0"] == "int8"
    assert op_summary(content)["float_op_count"] == 0  # QUANTIZE ops convert between int8 and int16
    got = TFLiteRunner("int16_nodes", content=content).predict(tiny_inputs)["probabilities"]
    want = SavedModelRunner(tiny_models["one_dense"], "dense").predict(tiny_inputs)["probabilities"]
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.95


def test_a_denylisted_node_stays_float(tiny_models, tiny_inputs) -> None:
    options = resolve_options("int8", engine="litert_quantizer", denylisted_nodes=["MatMul;add"])
    content = litert_engine.convert(tiny_models["one_dense"], "dense", options, tiny_inputs)
    dtypes = _output_dtypes(content)
    assert dtypes["MatMul;add"] == "float32" and dtypes["concat"] == "int8"


def test_an_unknown_int16_node_is_refused(tiny_models, tiny_inputs) -> None:
    options = resolve_options("int8", engine="litert_quantizer", int16_nodes=["concat;"])
    with pytest.raises(ValueError, match=r"int16_nodes names tensor\(s\) .*'concat;' \(did you mean 'concat'"):
        litert_engine.convert(tiny_models["one_dense"], "dense", options, tiny_inputs)
