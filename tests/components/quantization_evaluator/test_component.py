"""The component: parameters are checked at construction and survive the trip through execution properties."""

from __future__ import annotations

import json
import math

import pytest
from tfx import types
from tfx.types import standard_artifacts

from quantgate.components import QuantizationEvaluator
from quantgate.components.quantization_evaluator.config import config_from_exec_properties
from quantgate.components.types import QuantizationEvaluation


def _component(**params: object) -> QuantizationEvaluator:
    return QuantizationEvaluator(
        model=types.Channel(type=standard_artifacts.Model),
        quantized_model=types.Channel(type=standard_artifacts.Model),
        examples=types.Channel(type=standard_artifacts.Examples),
        **{"label_key": "species", **params},
    )


def test_parameters_round_trip_through_exec_properties() -> None:
    component = _component(slicing_feature_keys=["island", "sex"], max_delta=-1, delta_type="relative",
                           min_agreement=0.95, max_model_bytes=10_000, max_latency_ms=2, min_slice_size=5)
    assert json.loads(component.exec_properties["slicing_feature_keys"]) == ["island", "sex"]
    config = config_from_exec_properties(component.exec_properties)
    assert config.slicing_feature_keys == ("island", "sex")
    assert config.split == "eval" and config.label_key == "species" and config.signature_name is None
    assert config.nonfinite_inputs == "refuse" and config.thresholds.latency_measure == "kernel"
    assert config_from_exec_properties(_component(latency_measure="end_to_end").exec_properties
                                       ).thresholds.latency_measure == "end_to_end"
    assert config_from_exec_properties(_component(nonfinite_inputs="drop").exec_properties).nonfinite_inputs == "drop"
    t = config.thresholds
    assert (t.max_delta, t.delta_type, t.min_agreement, t.max_model_bytes, t.max_latency_ms, t.min_slice_size,
            t.max_slice_delta, t.metric) == (-1.0, "relative", 0.95, 10_000, 2.0, 5, None, "accuracy")


def test_several_metrics_and_the_bound_round_trip() -> None:
    config = config_from_exec_properties(_component(metric=["accuracy", "auc"], max_delta={"auc": 0.005,
                                                                                            "accuracy": 0.01},
                                                    delta_bound="upper", confidence=0.9,
                                                    min_examples=50).exec_properties)
    t = config.thresholds
    assert (t.metric, t.max_delta, t.extra_metrics) == ("accuracy", 0.01, (("auc", 0.005),))
    assert (t.delta_bound, t.confidence, t.min_examples) == ("upper", 0.9, 50)
    same = config_from_exec_properties(_component(metric=("auc", "accuracy"), max_delta=0.02).exec_properties)
    assert same.thresholds.gated == [("auc", 0.02), ("accuracy", 0.02)]
    default = config_from_exec_properties(_component().exec_properties).thresholds
    assert (default.extra_metrics, default.delta_bound, default.confidence, default.min_examples) == \
        ((), "point", 0.95, 30)


def test_outputs_are_the_custom_evaluation_and_a_standard_blessing() -> None:
    component = _component()
    assert component.outputs["evaluation"].type is QuantizationEvaluation
    assert component.outputs["blessing"].type is standard_artifacts.ModelBlessing
    assert component.outputs["blessing"].type_name == "ModelBlessing"  # what the stock Pusher declares


@pytest.mark.parametrize(("params", "message"), [
    ({"max_delta": math.nan}, "max_delta must be a finite number"),
    ({"metric": "f1"}, "unknown metric 'f1'"),
    ({"delta_type": "percent"}, "delta_type must be one of"),
    ({"max_model_bytes": -1}, "max_model_bytes is a budget"),
    ({"max_latency_ms": -0.5}, "max_latency_ms is a budget"),
    ({"latency_measure": "wall"}, "latency_measure must be one of"),
    ({"min_agreement": 2.0}, "min_agreement is a fraction"),
    ({"min_slice_size": 0}, "min_slice_size must be an integer >= 1"),
    ({"label_key": ""}, "label_key must name the label feature"),
    ({"slicing_feature_keys": ["island", "island"]}, "slicing_feature_keys must be distinct"),
    ({"slicing_feature_keys": ["species"]}, "slicing on the label"),
    ({"nonfinite_inputs": "impute"}, r"nonfinite_inputs must be one of \('refuse', 'drop'\)"),
    ({"metric": ["accuracy", "auc"], "max_delta": [0.01]}, "must have one value per metric"),
    ({"metric": ["accuracy", "auc"], "max_delta": {"auc": 0.01}}, "must give one value for each metric"),
    ({"metric": ["accuracy", "mse"]}, "mix classification and regression"),
    ({"metric": []}, "non-empty list"),
    ({"delta_bound": "lower"}, "delta_bound must be one of"),
    ({"confidence": 1.5}, "confidence is the one-sided level"),
    ({"min_examples": 0}, "min_examples must be an integer"),
])
def test_bad_parameters_fail_at_construction(params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _component(**params)


def test_executor_revalidates_exec_properties() -> None:
    """A hand-edited or foreign execution (e.g. compiled elsewhere) is checked again before anything runs."""
    properties = dict(_component().exec_properties)
    properties["max_delta"] = math.nan
    with pytest.raises(ValueError, match="max_delta must be a finite number"):
        config_from_exec_properties(properties)
