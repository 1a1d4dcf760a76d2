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
