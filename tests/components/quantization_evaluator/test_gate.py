"""The gate as a table of cases: pure function, no pipeline."""

from __future__ import annotations

import math

import pytest

from quantgate.components.quantization_evaluator.gate import (
    METRICS,
    GateInputs,
    MetricValues,
    SliceValues,
    Thresholds,
    degradation,
    gate,
)


def _inputs(float_value: float | None = 0.99, quant_value: float | None = 0.985, delta_upper: float | None = None,
            others: dict[str, MetricValues] | None = None, **kwargs: object) -> GateInputs:
    return GateInputs(overall=SliceValues("overall", 100, float_value, quant_value, delta_upper, others or {}),
                      **kwargs)


ISLANDS = (SliceValues("island=Biscoe", 50, 0.98, 0.90), SliceValues("island=Dream", 10, 1.0, 0.5))

# (case id, inputs, thresholds, blessed, a substring every refusal must contain)
CASES = [
    ("within-delta", _inputs(), Thresholds(max_delta=0.01), True, ""),
    ("exactly-at-delta", _inputs(0.75, 0.5), Thresholds(max_delta=0.25), True, ""),
    ("over-delta", _inputs(0.99, 0.97), Thresholds(max_delta=0.01), False, "absolute delta of accuracy on overall"),
    ("negative-delta-forces-refusal", _inputs(0.99, 0.99), Thresholds(max_delta=-1), False, "> max -1"),
    ("quantized-better", _inputs(0.90, 0.95), Thresholds(max_delta=0.0), True, ""),
    ("lower-is-better-worse", _inputs(1.0, 1.2), Thresholds(metric="mse", max_delta=0.1), False, "mse"),
    ("lower-is-better-improves", _inputs(1.2, 1.0), Thresholds(metric="mse", max_delta=0.0), True, ""),
    ("relative-within", _inputs(0.5, 0.496), Thresholds(max_delta=0.01, delta_type="relative"), True, ""),
    ("relative-over", _inputs(0.5, 0.49), Thresholds(max_delta=0.01, delta_type="relative"), False, "relative delta"),
    ("relative-without-float-value", _inputs(0.0, 0.0), Thresholds(max_delta=0.5, delta_type="relative"), False,
     "float model scores 0"),
    ("nan-quantized-metric", _inputs(0.99, math.nan), Thresholds(), False, "undefined"),
    ("missing-metric", _inputs(0.99, None), Thresholds(), False, "undefined"),
    ("nan-predictions", _inputs(nonfinite_predictions=3), Thresholds(), False, "3 examples got NaN"),
    ("missing-predictions", _inputs(missing_predictions=2), Thresholds(), False, "2 examples got no prediction"),
    ("labels-not-class-indices", _inputs(missing_predictions=3, invalid_labels=2), Thresholds(), False,
     "3 examples got no prediction or no label (2 of them have a label that is not a class index"),
    ("nonfinite-inputs-refused", _inputs(nonfinite_inputs={"bill_length_mm": 3, "body_mass_g": 1},
                                         nonfinite_input_examples=3), Thresholds(), False,
     "eval split has 3 examples with non-finite inputs (bill_length_mm: 3, body_mass_g: 1); fix the data upstream "
     "or pass nonfinite_inputs='drop'"),
    ("nonfinite-inputs-dropped", _inputs(nonfinite_inputs={"bill_length_mm": 3}, nonfinite_input_examples=3,
                                         nonfinite_input_policy="drop"), Thresholds(), True, ""),
    ("nonfinite-inputs-dropped-still-gated", _inputs(0.99, 0.9, nonfinite_inputs={"x": 1},
                                                     nonfinite_input_examples=1, nonfinite_input_policy="drop"),
     Thresholds(), False, "absolute delta of accuracy"),
    ("no-examples", GateInputs(SliceValues("overall", 0, None, None)), Thresholds(), False, "no examples"),
    ("slice-over", _inputs(slices=ISLANDS), Thresholds(max_slice_delta=0.05), False, "island=Biscoe"),
    ("slice-ignored-without-budget", _inputs(slices=ISLANDS), Thresholds(), True, ""),
    ("small-slice-skipped", _inputs(slices=ISLANDS[1:]), Thresholds(max_slice_delta=0.05, min_slice_size=30), True, ""),
    ("agreement-ok", _inputs(agreement=0.99), Thresholds(min_agreement=0.98), True, ""),
    ("agreement-low", _inputs(agreement=0.95), Thresholds(min_agreement=0.98), False, "top-1 agreement 0.95"),
    ("agreement-unknown", _inputs(), Thresholds(min_agreement=0.98), False, "agreement is undefined"),
    ("size-ok", _inputs(model_bytes=1000), Thresholds(max_model_bytes=1000), True, ""),
    ("size-over", _inputs(model_bytes=1001), Thresholds(max_model_bytes=1000), False, "1001 bytes"),
    ("size-unknown", _inputs(), Thresholds(max_model_bytes=1000), False, "size is unknown"),
    ("latency-ok", _inputs(latency_p95_ms=0.5), Thresholds(max_latency_ms=1.0), True, ""),
    ("latency-over", _inputs(latency_p95_ms=2.0), Thresholds(max_latency_ms=1.0), False, "p95 latency 2 ms (kernel)"),
    ("too-few-examples", GateInputs(SliceValues("overall", 1, 1.0, 1.0)), Thresholds(), False,
     "only 1 examples of the eval split were scored < min_examples 30"),
    ("min-examples-lowered", GateInputs(SliceValues("overall", 1, 1.0, 1.0)), Thresholds(min_examples=1), True, ""),
    ("upper-bound-passes", _inputs(delta_upper=0.008), Thresholds(delta_bound="upper"), True, ""),
    ("upper-bound-over-where-point-passes", _inputs(delta_upper=0.04), Thresholds(delta_bound="upper"), False,
     "the 95% upper confidence bound of the absolute delta of accuracy on overall is 0.04 > max 0.01 (point delta "
     "0.005"),
    ("upper-bound-ignored-for-point", _inputs(delta_upper=0.04), Thresholds(), True, ""),
    ("upper-bound-undefined", _inputs(delta_upper=math.nan), Thresholds(delta_bound="upper"), False,
     "upper confidence bound of the absolute delta of accuracy on overall is undefined"),
    ("second-metric-over", _inputs(others={"auc": MetricValues(0.99, 0.97)}),
     Thresholds(extra_metrics=(("auc", 0.01),)), False, "absolute delta of auc on overall is 0.02 > max 0.01"),
    ("second-metric-within", _inputs(others={"auc": MetricValues(0.99, 0.985)}),
     Thresholds(extra_metrics=(("auc", 0.01),)), True, ""),
    ("second-metric-missing", _inputs(), Thresholds(extra_metrics=(("auc", 0.01),)), False, "auc on overall is undefined"),
    ("second-metric-upper-bound", _inputs(delta_upper=0.0, others={"auc": MetricValues(0.99, 0.99, 0.02)}),
     Thresholds(delta_bound="upper", extra_metrics=(("auc", 0.01),)), False, "bound of the absolute delta of auc"),
    ("second-metric-on-slices", _inputs(others={"auc": MetricValues(0.99, 0.99)},
                                        slices=(SliceValues("island=Biscoe", 50, 0.9, 0.9,
                                                            others={"auc": MetricValues(0.9, 0.7)}),)),
     Thresholds(extra_metrics=(("auc", 0.01),), max_slice_delta=0.05), False, "auc on island=Biscoe"),
]


@pytest.mark.parametrize(("inputs", "thresholds", "blessed", "why"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_gate_table(inputs: GateInputs, thresholds: Thresholds, blessed: bool, why: str) -> None:
    result = gate(inputs, thresholds.validate())
    assert result.blessed is blessed, result.reasons
    assert result.threshold == thresholds.max_delta
    if blessed:
        assert result.reasons == [] and result.reason.startswith("blessed")
    else:
        assert result.reasons and why in result.reason and result.reason.startswith("not blessed")
    # Examples dropped for non-finite inputs are recorded in the verdict, blessed or not.
    dropped = inputs.nonfinite_input_policy == "drop" and inputs.nonfinite_input_examples
    assert bool(result.notes) == bool(dropped)
    if dropped:
        assert "dropped: eval split has" in result.reason and "nonfinite_inputs='drop'" in result.notes[0]


def test_every_failed_rule_is_reported() -> None:
    result = gate(_inputs(0.99, 0.5, agreement=0.5, model_bytes=10**9, latency_p95_ms=100.0),
                  Thresholds(min_agreement=0.9, max_model_bytes=10, max_latency_ms=1.0).validate())
    assert len(result.reasons) == 4
    assert result.delta == pytest.approx(0.49)


@pytest.mark.parametrize(("metric", "float_value", "quant_value", "delta_type", "expected"), [
    ("accuracy", 0.9, 0.8, "absolute", 0.1),
    ("accuracy", 0.8, 0.9, "absolute", -0.1),
    ("mae", 2.0, 3.0, "absolute", 1.0),
    ("mae", -4.0, -2.0, "relative", 0.5),
    ("auc", 0.5, 0.25, "relative", 0.5),
    ("accuracy", 0.0, 0.1, "relative", None),
])
def test_degradation_follows_the_metric_direction(metric: str, float_value: float, quant_value: float,
                                                   delta_type: str, expected: float | None) -> None:
    got = degradation(float_value, quant_value, METRICS[metric], delta_type)
    assert got == (None if expected is None else pytest.approx(expected))


@pytest.mark.parametrize(("thresholds", "message"), [
    (Thresholds(metric="f1"), "unknown metric 'f1'"),
    (Thresholds(delta_type="percent"), "delta_type must be one of"),
    (Thresholds(max_delta=math.nan), "max_delta must be a finite number"),
    (Thresholds(max_delta=math.inf), "max_delta must be a finite number"),
    (Thresholds(max_slice_delta=math.nan), "max_slice_delta must be a finite number"),
    (Thresholds(min_slice_size=0), "min_slice_size must be an integer >= 1"),
    (Thresholds(min_agreement=1.5), "min_agreement is a fraction"),
    (Thresholds(min_agreement=-0.1), "min_agreement is a fraction"),
    (Thresholds(metric="mse", min_agreement=0.9), "needs a classification metric"),
    (Thresholds(max_model_bytes=-5), "max_model_bytes is a budget and must be > 0"),
    (Thresholds(max_latency_ms=0), "max_latency_ms is a budget and must be > 0"),
    (Thresholds(max_latency_ms=math.nan), "max_latency_ms must be a finite number"),
    (Thresholds(delta_bound="lower"), "delta_bound must be one of"),
    (Thresholds(confidence=0.4), "confidence is the one-sided level"),
    (Thresholds(confidence=1.0), "confidence is the one-sided level"),
    (Thresholds(min_examples=0), "min_examples must be an integer >= 1"),
    (Thresholds(extra_metrics=(("accuracy", 0.1),)), "each metric once"),
    (Thresholds(extra_metrics=(("mse", 0.1),)), "mix classification and regression"),
    (Thresholds(extra_metrics=(("f1", 0.1),)), "unknown metric 'f1'"),
    (Thresholds(extra_metrics=(("auc", math.nan),)), "max_delta of auc must be a finite number"),
    (Thresholds(latency_measure="wall"), "latency_measure must be one of"),
])
def test_invalid_thresholds_are_refused(thresholds: Thresholds, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        thresholds.validate()


def test_a_serving_path_that_disagrees_with_the_transformed_feature_path_is_not_blessed() -> None:
    base = dict(serving_compared=True, serving_signature="serving_default", signature_name="serving_features")
    assert gate(_inputs(0.9, 0.9, serving_agreement=0.99, **base), Thresholds()).blessed
    result = gate(_inputs(0.9, 0.9, serving_agreement=0.5, **base), Thresholds())
    assert not result.blessed
    assert result.reasons == [
        "the model's serving path (serving_default) and the transformed-feature path (serving_features) disagree: "
        "agreement 0.5 < 0.99: the transform graph wired here is not the one the model was trained with"]


def test_a_serving_path_compared_on_no_example_is_not_blessed() -> None:
    result = gate(_inputs(0.9, 0.9, serving_compared=True, serving_agreement=None), Thresholds())
    assert not result.blessed
    assert result.reasons == [
        "the model's serving path (serving_default) could not be compared with the transformed-feature path "
        "(serving_features) on any example (no finite output)"]
    assert gate(_inputs(0.9, 0.9, serving_agreement=None), Thresholds()).blessed  # not compared: no rule


def test_the_verdict_reports_every_metrics_delta_and_bound() -> None:
    result = gate(_inputs(delta_upper=0.03, others={"auc": MetricValues(0.98, 0.97, 0.05)}),
                  Thresholds(extra_metrics=(("auc", 0.02),)).validate())
    assert result.blessed and result.delta == pytest.approx(0.005) and result.delta_upper == 0.03
    assert result.deltas["auc"] == {"delta": pytest.approx(0.01), "delta_upper": 0.05, "threshold": 0.02}


@pytest.mark.parametrize(("n", "upper", "warned"), [
    (102, 0.012, []),
    (90, 0.012, ["one flipped prediction moves the absolute accuracy delta by 0.01111 > max_delta 0.01: 90 "
                 "examples are too few for this threshold"]),
    (1000, 0.03, ["upper confidence bound of the accuracy delta is 0.03, 0.025 above the point delta"]),
])
def test_a_split_too_small_for_the_threshold_is_said(n: int, upper: float, warned: list[str]) -> None:
    result = gate(GateInputs(SliceValues("overall", n, 0.99, 0.985, upper)), Thresholds().validate())
    assert result.blessed and len(result.warnings) == len(warned)
    for warning, expected in zip(result.warnings, warned, strict=True):
        assert expected in warning
    assert result.reason == "blessed: every threshold passed"  # a warning is no refusal
