"""pipelines/config.py: QuantizeConfig / GateConfig validation, overrides and dotted keys; each pipeline's defaults;
the Python snippets of docs/configuration.md, run as they are (pipelines built, none run)."""

from __future__ import annotations

import dataclasses
import os
import re

import pytest

from quantgate.pipelines import diabetes
from quantgate.pipelines.config import (
    AccuracySearch,
    GateConfig,
    QuantizeConfig,
    apply_dotted,
    dotted_keys,
    with_dotted_configs,
)
from quantgate.pipelines.kinds import PIPELINES
from quantgate.pipelines.pipeline import PENGUIN_GATE, PENGUIN_QUANTIZE

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGURATION_DOC = os.path.join(REPO, "docs", "configuration.md")


@pytest.mark.parametrize(("config", "fields", "message"), [
    (QuantizeConfig, {"mode": "int3"}, "QuantizeConfig: unknown mode 'int3'; use one of"),
    (QuantizeConfig, {"engine": "litert_quantizer", "mode": "float16"}, "QuantizeConfig: engine 'litert_quantizer'"),
    (QuantizeConfig, {"io_dtype": "int16"}, "QuantizeConfig: io_dtype 'int16' is not available in mode 'int8'"),
    (QuantizeConfig, {"int4_block_size": 48}, "QuantizeConfig: int4_block_size 48"),
    (QuantizeConfig, {"int4_block_size": "32"}, "QuantizeConfig: int4_block_size must be an integer, got '32'"),
    (QuantizeConfig, {"denylisted_nodes": "dense/BiasAdd"}, "QuantizeConfig: denylisted_nodes must be a list"),
    (QuantizeConfig, {"allow_float_fallback": 1}, "QuantizeConfig: allow_float_fallback must be true or false"),
    (QuantizeConfig, {"accuracy_search": {"max_trails": 3}}, "AccuracySearch has no field max_trails; its fields"),
    (QuantizeConfig, {"accuracy_search": {"max_trials": 0}}, "max_trials .* must be an integer >= 1"),
    (GateConfig, {"metric": "f1"}, "GateConfig: unknown metric 'f1'"),
    (GateConfig, {"metric": ("accuracy", "mae")}, "GateConfig: "),  # one task per gate
    (GateConfig, {"max_delta": float("nan")}, "GateConfig: max_delta must be a finite number"),
    (GateConfig, {"delta_type": "percent"}, "GateConfig: delta_type must be one of"),
    (GateConfig, {"confidence": 1.5}, "GateConfig: confidence"),
    (GateConfig, {"min_examples": 2.5}, "GateConfig: min_examples must be an integer"),
    (GateConfig, {"latency_measure": "wall"}, "GateConfig: latency_measure must be one of"),
    (GateConfig, {"delta_bound": "lower"}, "GateConfig: delta_bound"),
    (GateConfig, {"nonfinite_inputs": "keep"}, "GateConfig: nonfinite_inputs must be one of"),
    (GateConfig, {"output_kind": "logits", "metric": "mse"}, "GateConfig: output_kind='logits' is for classifiers"),
    (GateConfig, {"selection": "cheapest"}, "GateConfig: selection must be one of"),
])
def test_invalid_values_are_refused_naming_the_field(config, fields, message) -> None:
    with pytest.raises(ValueError, match=message):
        config(**fields)


def test_json_shaped_values_become_the_fields_types() -> None:
    gate = GateConfig(metric=["accuracy", "auc"], max_delta=[0, 1], slicing_feature_keys=["island"])
    assert (gate.metric, gate.max_delta, gate.slicing_feature_keys) == (("accuracy", "auc"), (0.0, 1.0), ("island",))
    quantize = QuantizeConfig(accuracy_search={"max_trials": 3}, candidate_modes=["float16"])
    assert quantize.accuracy_search == AccuracySearch(max_trials=3) and quantize.candidate_modes == ("float16",)


def test_with_overrides_refuses_an_unknown_field_listing_the_known_ones() -> None:
    with pytest.raises(ValueError, match="GateConfig has no field max_detla; its fields are metric, max_delta, "):
        GateConfig().with_overrides({"max_detla": 0.1})
    assert GateConfig().with_overrides({"max_delta": 0.1}) == GateConfig(max_delta=0.1)


def test_dotted_keys_name_every_field_of_both_configs() -> None:
    assert dotted_keys() == ([f"quantize.{f.name}" for f in dataclasses.fields(QuantizeConfig)]
                             + [f"gate.{f.name}" for f in dataclasses.fields(GateConfig)])
    with pytest.raises(ValueError, match="quantize.signature_name: not a configuration key; known: quantize.mode, "):
        apply_dotted(QuantizeConfig(), GateConfig(), {"quantize.signature_name": "x"})


def test_with_dotted_configs_folds_dotted_keys_into_the_given_or_default_configs() -> None:
    assert with_dotted_configs({"train_steps": 5}, lambda: pytest.fail("defaults read without dotted keys")) == {
        "train_steps": 5}
    kwargs = with_dotted_configs({"train_steps": 5, "gate.max_delta": 0.1}, lambda: (PENGUIN_QUANTIZE, PENGUIN_GATE))
    assert kwargs == {"train_steps": 5, "quantize": PENGUIN_QUANTIZE,
                      "gate": PENGUIN_GATE.with_overrides({"max_delta": 0.1})}
    given = GateConfig(metric="auc")
    kwargs = with_dotted_configs({"gate": given, "gate.max_delta": 0.1}, lambda: (PENGUIN_QUANTIZE, PENGUIN_GATE))
    assert kwargs["gate"] == GateConfig(metric="auc", max_delta=0.1)


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_every_pipeline_takes_its_gate_from_dotted_keys_on_its_default_configs(name: str, tmp_path) -> None:
    kind = PIPELINES[name]
    quantize, gate = kind.default_configs()
    assert isinstance(quantize, QuantizeConfig) and isinstance(gate, GateConfig)
    kwargs = with_dotted_configs({"gate.max_delta": 0.05, "gate.min_examples": 40}, kind.default_configs)
    pipeline = kind.factory("p", str(tmp_path / "root"), str(tmp_path / "data"), **kwargs)
    (evaluator,) = [c for c in pipeline.components if c.id == "QuantizationEvaluator"]
    assert (evaluator.exec_properties["max_delta"], evaluator.exec_properties["min_examples"]) == (0.05, 40)
    assert evaluator.exec_properties["metric"] == gate.metric  # the pipeline's own, kept


def test_diabetes_states_its_gate_once_and_the_search_aims_at_it() -> None:
    search = diabetes.DIABETES_QUANTIZE.accuracy_search.parameter(diabetes.LABEL_KEY, diabetes.DIABETES_GATE)
    assert search == {"label_key": diabetes.LABEL_KEY, "metric": "mae", "max_delta": 0.02, "delta_type": "relative",
                      "max_trials": 12, "max_float_op_fraction": 0.2, "output_kind": "probabilities"}


def _python_blocks(path: str) -> list[str]:
    with open(path) as f:
        return re.findall(r"```python\n(.*?)```", f.read(), flags=re.DOTALL)


@pytest.mark.parametrize("index", range(len(_python_blocks(CONFIGURATION_DOC))))
def test_the_configuration_docs_snippets_run(index: int, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the snippets name relative out/ paths
    exec(compile(_python_blocks(CONFIGURATION_DOC)[index], f"{CONFIGURATION_DOC} block {index}", "exec"), {})


def test_the_configuration_docs_show_only_python_that_runs() -> None:
    with open(CONFIGURATION_DOC) as f:
        assert set(re.findall(r"^```(\w+)", f.read(), flags=re.MULTILINE)) == {"python"}
