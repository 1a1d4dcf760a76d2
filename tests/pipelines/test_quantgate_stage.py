"""pipelines/quantgate_stage.py: the Quantizer's and the QuantizationEvaluator's parameters, from ``QuantizeConfig``
and ``GateConfig``, as the factories wire them (pipelines built, none run)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from quantgate.components import QuantizationEvaluator, Quantizer
from quantgate.components.shared.properties import MAX_CANDIDATES, candidate_model_key
from quantgate.pipelines.config import AccuracySearch, GateConfig, QuantizeConfig
from quantgate.pipelines.pipeline import PENGUIN_GATE, PENGUIN_QUANTIZE, create_pipeline

# Where each component parameter comes from: a config field ("quantize.<field>" / "gate.<field>"), or the
# pipeline's fixed wiring. A parameter a component gains fails test_every_parameter_has_a_source until it is here.
FIXED_WIRING = "fixed"
QUANTIZER_SOURCES = {
    "mode": "quantize.mode", "engine": "quantize.engine", "signature_name": "quantize.signature",
    "io_dtype": "quantize.io_dtype", "denylisted_ops": "quantize.denylisted_ops",
    "allow_float_fallback": "quantize.allow_float_fallback", "allow_select_ops": "quantize.allow_select_ops",
    "accuracy_search": "quantize.accuracy_search", "denylisted_nodes": "quantize.denylisted_nodes",
    "int16_nodes": "quantize.int16_nodes", "int4_weight_nodes": "quantize.int4_weight_nodes",
    "int4_block_size": "quantize.int4_block_size",
}
EVALUATOR_SOURCES = {
    "label_key": FIXED_WIRING,  # the pipeline's label
    "split": FIXED_WIRING,  # always 'eval'
    "metric": "gate.metric", "extra_metrics": "gate.metric",  # a list of metrics: the first, then the others
    "max_delta": "gate.max_delta", "delta_type": "gate.delta_type", "slicing_feature_keys": "gate.slicing_feature_keys",
    "min_slice_size": "gate.min_slice_size", "max_slice_delta": "gate.max_slice_delta",
    "min_agreement": "gate.min_agreement", "max_model_bytes": "gate.max_model_bytes",
    "max_latency_ms": "gate.max_latency_ms", "latency_measure": "gate.latency_measure",
    "signature_name": "quantize.signature", "nonfinite_inputs": "gate.nonfinite_inputs",
    "delta_bound": "gate.delta_bound", "confidence": "gate.confidence", "min_examples": "gate.min_examples",
    "selection": "gate.selection", "output_kind": "gate.output_kind",
}
# Every field off its default (the quantize ones spread over several configs: int16x8 takes no denylist, the
# per-node rules need litert_quantizer, int16_nodes excludes int4_weight_nodes); the pipeline must still build.
NON_DEFAULT_GATE = GateConfig(
    metric=("auc", "accuracy"), max_delta=(0.03, 0.04), delta_type="relative", slicing_feature_keys=("sex",),
    min_slice_size=10, max_slice_delta=0.2, min_agreement=0.9, max_model_bytes=10_000, max_latency_ms=5.0,
    latency_measure="end_to_end", delta_bound="upper", confidence=0.9, min_examples=50, nonfinite_inputs="drop",
    output_kind="logits", selection="fastest")
NON_DEFAULT_QUANTIZES = (
    QuantizeConfig(mode="int16x8", signature="serving_default", io_dtype="float32", allow_select_ops=True,
                   accuracy_search=AccuracySearch(max_trials=3)),
    QuantizeConfig(denylisted_ops=("MUL",), allow_float_fallback=True),
    QuantizeConfig(engine="litert_quantizer", denylisted_nodes=("a",), int4_weight_nodes=("b",),
                   int4_block_size=64),
    QuantizeConfig(engine="litert_quantizer", int16_nodes=("c",)),
)


def _components(tmp_path, **kwargs) -> dict:
    pipeline = create_pipeline("p", str(tmp_path / "root"), str(tmp_path / "data"), **kwargs)
    return {c.id: c for c in pipeline.components}


def _field(source: str) -> str:
    config, _, field = source.partition(".")
    assert field in {f.name for f in dataclasses.fields({"quantize": QuantizeConfig, "gate": GateConfig}[config])}
    return field


@pytest.mark.parametrize(("component", "sources"), [(Quantizer, QUANTIZER_SOURCES),
                                                    (QuantizationEvaluator, EVALUATOR_SOURCES)])
def test_every_parameter_has_a_source(component, sources) -> None:
    assert set(component.SPEC_CLASS.PARAMETERS) == set(sources)
    for source in sources.values():
        assert source == FIXED_WIRING or _field(source)


def test_every_gate_field_reaches_the_evaluator(tmp_path) -> None:
    default = _components(tmp_path, quantize=QuantizeConfig(signature="serving_features"))["QuantizationEvaluator"]
    changed = _components(tmp_path, quantize=QuantizeConfig(signature="serving_default"),
                          gate=NON_DEFAULT_GATE)["QuantizationEvaluator"]
    for parameter, source in EVALUATOR_SOURCES.items():
        if source != FIXED_WIRING:
            assert changed.exec_properties[parameter] != default.exec_properties[parameter], parameter
    assert json.loads(changed.exec_properties["extra_metrics"]) == [["accuracy", 0.04]]
    assert (changed.exec_properties["label_key"], changed.exec_properties["split"]) == ("species", "eval")


def test_every_quantize_field_reaches_the_quantizer(tmp_path) -> None:
    default = _components(tmp_path, quantize=QuantizeConfig())["Quantizer"].exec_properties
    changed = set()
    for quantize in NON_DEFAULT_QUANTIZES:
        search_examples = 0 if quantize.accuracy_search is None else 30
        properties = _components(tmp_path, quantize=quantize, representative_num_search_examples=search_examples,
                                 )["Quantizer"].exec_properties
        changed |= {parameter for parameter in QUANTIZER_SOURCES if properties[parameter] != default[parameter]}
    assert changed == set(QUANTIZER_SOURCES)


def test_the_accuracy_search_aims_at_the_gate_unless_told_otherwise(tmp_path) -> None:
    gate = GateConfig(metric=("auc", "accuracy"), max_delta=0.05, delta_type="relative", output_kind="logits")
    searched = QuantizeConfig(accuracy_search=AccuracySearch(max_trials=4))
    components = _components(tmp_path, quantize=searched, gate=gate, representative_num_search_examples=30)
    search = json.loads(components["Quantizer"].exec_properties["accuracy_search"])
    assert search == {"label_key": "species", "metric": "auc", "max_delta": 0.05, "delta_type": "relative",
                      "max_trials": 4, "max_float_op_fraction": 0.2, "output_kind": "logits"}
    own = QuantizeConfig(accuracy_search=AccuracySearch(metric="accuracy", max_delta=0.1, delta_type="absolute"))
    components = _components(tmp_path, quantize=own, gate=gate, representative_num_search_examples=30)
    search = json.loads(components["Quantizer"].exec_properties["accuracy_search"])
    assert (search["metric"], search["max_delta"], search["delta_type"]) == ("accuracy", 0.1, "absolute")


def test_none_means_the_pipelines_own_defaults(tmp_path) -> None:
    assert _components(tmp_path).keys() == _components(tmp_path, quantize=PENGUIN_QUANTIZE, gate=PENGUIN_GATE).keys()
    evaluator = _components(tmp_path)["QuantizationEvaluator"].exec_properties
    assert json.loads(evaluator["slicing_feature_keys"]) == ["island"]
    assert evaluator["signature_name"] == "serving_features"


def test_without_candidate_modes_there_is_one_quantizer_and_one_pusher_input(tmp_path) -> None:
    components = _components(tmp_path, quantize=PENGUIN_QUANTIZE.with_overrides({"candidate_modes": ()}))
    assert [i for i in components if i.startswith("Quantizer")] == ["Quantizer"]
    assert candidate_model_key(1) not in components["QuantizedModelPusher"].inputs
    assert "quantized_model_1" not in components["QuantizationEvaluator"].inputs


def test_the_penguin_default_adds_float16_and_dynamic_range_wired_to_the_evaluator_and_the_pusher(tmp_path) -> None:
    components = _components(tmp_path, gate=PENGUIN_GATE.with_overrides({"selection": "fastest"}))
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
    (("int8",), "not the main mode 'int8'"),
    (("float16", "float16"), "each mode once"),
    (("int4",), r"QuantizeConfig: candidate_modes \['int4'\]: unknown mode"),
])
def test_bad_candidate_modes_are_refused_with_the_fix(modes, message) -> None:
    with pytest.raises(ValueError, match=message):
        QuantizeConfig(candidate_modes=modes)


def test_every_mode_as_a_candidate_fits_the_evaluator() -> None:
    assert len(QuantizeConfig(candidate_modes=("float16", "dynamic_range", "int16x8", "qat")).candidate_modes) \
        <= MAX_CANDIDATES - 1


def test_an_extra_candidate_falls_back_to_the_converter_only_for_a_mode_the_engine_lacks() -> None:
    litert = QuantizeConfig(engine="litert_quantizer")
    assert litert.candidate_engine("float16") == "tflite_converter"  # ai-edge-quantizer has no float16
    assert litert.candidate_engine("dynamic_range") == "litert_quantizer"
    assert QuantizeConfig().candidate_engine("float16") == "tflite_converter"
