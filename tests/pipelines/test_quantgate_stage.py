"""pipelines/quantgate_stage.py: the candidates knob, as the factories wire it (pipelines built, none run)."""

from __future__ import annotations

import pytest

from quantgate.components.shared.properties import MAX_CANDIDATES, candidate_model_key
from quantgate.pipelines.pipeline import create_pipeline
from quantgate.pipelines.quantgate_stage import candidate_engine


def _components(tmp_path, **kwargs) -> dict:
    pipeline = create_pipeline("p", str(tmp_path / "root"), str(tmp_path / "data"), **kwargs)
    return {c.id: c for c in pipeline.components}


def test_without_candidate_modes_there_is_one_quantizer_and_one_pusher_input(tmp_path) -> None:
    components = _components(tmp_path, quantization_candidate_modes=())
    assert [i for i in components if i.startswith("Quantizer")] == ["Quantizer"]
    assert candidate_model_key(1) not in components["QuantizedModelPusher"].inputs
    assert "quantized_model_1" not in components["QuantizationEvaluator"].inputs


def test_the_penguin_default_adds_float16_and_dynamic_range_wired_to_the_evaluator_and_the_pusher(tmp_path) -> None:
    components = _components(tmp_path, quantization_selection="fastest")
    extra = {"Quantizer_float16": "float16", "Quantizer_dynamic_range": "dynamic_range"}
    for component_id, mode in extra.items():
        assert components[component_id].exec_properties["mode"] == mode
    quantizers = ["Quantizer", *extra]
    evaluator, pusher = components["QuantizationEvaluator"], components["QuantizedModelPusher"]
    assert evaluator.exec_properties["selection"] == "fastest"
    for index, component_id in enumerate(quantizers):
        produced_by = components[component_id].outputs["quantized_model"]
        assert pusher.inputs[candidate_model_key(index)] is produced_by
        assert produced_by in [evaluator.inputs[key] for key in evaluator.inputs if key.startswith("quantized_model")]


@pytest.mark.parametrize(("modes", "message"), [
    (("int8",), "not the main quantization_mode 'int8'"),
    (("float16", "float16"), "each mode once"),
    (("float16", "dynamic_range", "int16x8", "a", "b", "c"), f"at most {MAX_CANDIDATES - 1} beside the main mode"),
])
def test_bad_candidate_modes_are_refused_with_the_fix(tmp_path, modes, message) -> None:
    with pytest.raises(ValueError, match=message):
        _components(tmp_path, quantization_candidate_modes=modes)


def test_an_unknown_candidate_mode_is_refused_by_the_quantizer(tmp_path) -> None:
    with pytest.raises(ValueError, match="int4"):
        _components(tmp_path, quantization_candidate_modes=("int4",))


def test_an_extra_candidate_falls_back_to_the_converter_only_for_a_mode_the_engine_lacks() -> None:
    assert candidate_engine("float16", "litert_quantizer") == "tflite_converter"  # ai-edge-quantizer has no float16
    assert candidate_engine("dynamic_range", "litert_quantizer") == "litert_quantizer"
    assert candidate_engine("float16", "tflite_converter") == "tflite_converter"
