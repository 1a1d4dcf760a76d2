"""The QuantizationEvaluator's parameters as one validated value, from the component's arguments or from TFX's
execution properties."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from quantgate.components.quantization_evaluator.gate import (
    KERNEL,
    NONFINITE_INPUT_POLICIES,
    POINT,
    REFUSE,
    REGRESSION,
    Thresholds,
)
from quantgate.components.quantization_evaluator.spec import (
    CONFIDENCE_KEY,
    DELTA_BOUND_KEY,
    DELTA_TYPE_KEY,
    EXTRA_METRICS_KEY,
    LABEL_KEY_KEY,
    LATENCY_MEASURE_KEY,
    MAX_DELTA_KEY,
    MAX_LATENCY_MS_KEY,
    MAX_MODEL_BYTES_KEY,
    MAX_SLICE_DELTA_KEY,
    METRIC_KEY,
    MIN_AGREEMENT_KEY,
    MIN_EXAMPLES_KEY,
    MIN_SLICE_SIZE_KEY,
    NONFINITE_INPUTS_KEY,
    OUTPUT_KIND_KEY,
    SELECTION_KEY,
    SIGNATURE_NAME_KEY,
    SLICING_FEATURE_KEYS_KEY,
    SPLIT_KEY,
)
from quantgate.components.shared.task_metrics import LOGITS, OUTPUT_KINDS, PROBABILITIES

# How the blessed candidate is picked among those passing every threshold.
SMALLEST, FASTEST = "smallest", "fastest"
SELECTIONS = (SMALLEST, FASTEST)


@dataclass(frozen=True)
class EvaluatorConfig:
    """The component's parameters (see ``component.QuantizationEvaluator``)."""

    label_key: str
    thresholds: Thresholds
    split: str = "eval"
    slicing_feature_keys: tuple[str, ...] = ()
    signature_name: str | None = None
    nonfinite_inputs: str = REFUSE
    selection: str = SMALLEST
    output_kind: str = PROBABILITIES

    def validate(self) -> EvaluatorConfig:
        """Raises ``ValueError`` naming the parameter and the fix; returns ``self``."""
        self.thresholds.validate()
        if not isinstance(self.label_key, str) or not self.label_key:
            raise ValueError(f"QuantizationEvaluator: label_key must name the label feature, got {self.label_key!r}")
        if not isinstance(self.split, str) or not self.split:
            raise ValueError(f"QuantizationEvaluator: split must name a split of the examples, got {self.split!r}")
        keys = self.slicing_feature_keys
        if any(not isinstance(k, str) or not k for k in keys) or len(set(keys)) != len(keys):
            raise ValueError(f"QuantizationEvaluator: slicing_feature_keys must be distinct feature names, got {keys!r}")
        if self.label_key in keys:
            raise ValueError(f"QuantizationEvaluator: slicing on the label {self.label_key!r} makes every slice "
                             "single-class; remove it from slicing_feature_keys (per-class recall covers it)")
        if self.nonfinite_inputs not in NONFINITE_INPUT_POLICIES:
            raise ValueError(f"QuantizationEvaluator: nonfinite_inputs must be one of {NONFINITE_INPUT_POLICIES} "
                             f"(what examples with NaN/inf inputs do to the verdict), got {self.nonfinite_inputs!r}")
        if self.selection not in SELECTIONS:
            raise ValueError(f"QuantizationEvaluator: selection must be one of {SELECTIONS} (the smallest or the "
                             f"fastest candidate passing every threshold), got {self.selection!r}")
        if self.output_kind not in OUTPUT_KINDS:
            raise ValueError(f"QuantizationEvaluator: output_kind must be one of {OUTPUT_KINDS} (what the model's "
                             "single output holds: probabilities are scored as they are, logits go through sigmoid / "
                             f"softmax first), got {self.output_kind!r}")
        if self.output_kind == LOGITS and self.thresholds.info.task == REGRESSION:
            # A regressor's output is the prediction itself: squashing it through a sigmoid would gate on
            # something the model never predicts.
            raise ValueError(f"QuantizationEvaluator: output_kind='logits' is for classifiers, but metric="
                             f"{self.thresholds.metric!r} is a regression metric, whose predictions are scored as "
                             "they are; drop output_kind or gate on 'accuracy' / 'auc'")
        return self


def gated_metrics(metric: str | Sequence[str], max_delta: float | Sequence[float] | Mapping[str, float]
                  ) -> tuple[str, float, tuple[tuple[str, float], ...]]:
    """``metric`` / ``max_delta`` as the component takes them -> (first metric, its max_delta, the others with
    theirs). Several metrics take one max_delta for all, a list of the same length, or a dict by metric."""
    names = [metric] if isinstance(metric, str) else list(metric)
    if not names or not all(isinstance(name, str) for name in names):
        raise ValueError(f"QuantizationEvaluator: metric must be a metric name or a non-empty list of them, got "
                         f"{metric!r}")
    if isinstance(max_delta, Mapping):
        if set(max_delta) != set(names):
            raise ValueError(f"QuantizationEvaluator: max_delta {dict(max_delta)} must give one value for each "
                             f"metric of {names}")
        deltas = [max_delta[name] for name in names]
    elif isinstance(max_delta, int | float) and not isinstance(max_delta, bool):
        deltas = [max_delta] * len(names)
    else:
        deltas = list(max_delta)
        if len(deltas) != len(names):
            raise ValueError(f"QuantizationEvaluator: max_delta {deltas} must have one value per metric of {names}")
    pairs = [(name, float(d) if isinstance(d, int | float) and not isinstance(d, bool) else d)
             for name, d in zip(names, deltas, strict=True)]
    return pairs[0][0], pairs[0][1], tuple(pairs[1:])


def config_from_exec_properties(exec_properties: dict[str, Any]) -> EvaluatorConfig:
    """The validated ``EvaluatorConfig`` of a component's execution properties (absent optionals are ``None``)."""

    def optional(key: str, kind: type) -> Any:
        value = exec_properties.get(key)
        return None if value is None else kind(value)

    return EvaluatorConfig(
        label_key=exec_properties[LABEL_KEY_KEY],
        split=exec_properties[SPLIT_KEY],
        slicing_feature_keys=tuple(json.loads(exec_properties.get(SLICING_FEATURE_KEYS_KEY) or "[]")),
        signature_name=exec_properties.get(SIGNATURE_NAME_KEY) or None,
        nonfinite_inputs=exec_properties[NONFINITE_INPUTS_KEY],
        selection=exec_properties.get(SELECTION_KEY) or SMALLEST,
        output_kind=exec_properties.get(OUTPUT_KIND_KEY) or PROBABILITIES,
        thresholds=Thresholds(
            metric=exec_properties[METRIC_KEY],
            max_delta=float(exec_properties[MAX_DELTA_KEY]),
            delta_type=exec_properties[DELTA_TYPE_KEY],
            min_slice_size=int(exec_properties[MIN_SLICE_SIZE_KEY]),
            max_slice_delta=optional(MAX_SLICE_DELTA_KEY, float),
            min_agreement=optional(MIN_AGREEMENT_KEY, float),
            max_model_bytes=optional(MAX_MODEL_BYTES_KEY, int),
            max_latency_ms=optional(MAX_LATENCY_MS_KEY, float),
            extra_metrics=tuple((str(name), float(d))
                                for name, d in json.loads(exec_properties.get(EXTRA_METRICS_KEY) or "[]")),
            delta_bound=exec_properties.get(DELTA_BOUND_KEY) or POINT,
            confidence=float(exec_properties.get(CONFIDENCE_KEY) or Thresholds.confidence),
            min_examples=int(exec_properties.get(MIN_EXAMPLES_KEY) or Thresholds.min_examples),
            latency_measure=exec_properties.get(LATENCY_MEASURE_KEY) or KERNEL,
        ),
    ).validate()
