"""The QuantizationEvaluator's parameters as one validated value, from the component's arguments or from TFX's
execution properties."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from components.quantization_evaluator.gate import KERNEL, NONFINITE_INPUT_POLICIES, REFUSE, Thresholds
from components.quantization_evaluator.spec import (
    DELTA_TYPE_KEY,
    LABEL_KEY_KEY,
    LATENCY_MEASURE_KEY,
    MAX_DELTA_KEY,
    MAX_LATENCY_MS_KEY,
    MAX_MODEL_BYTES_KEY,
    MAX_SLICE_DELTA_KEY,
    METRIC_KEY,
    MIN_AGREEMENT_KEY,
    MIN_SLICE_SIZE_KEY,
    NONFINITE_INPUTS_KEY,
    SIGNATURE_NAME_KEY,
    SLICING_FEATURE_KEYS_KEY,
    SPLIT_KEY,
)


@dataclass(frozen=True)
class EvaluatorConfig:
    """The component's parameters (see ``component.QuantizationEvaluator``)."""

    label_key: str
    thresholds: Thresholds
    split: str = "eval"
    slicing_feature_keys: tuple[str, ...] = ()
    signature_name: str | None = None
    nonfinite_inputs: str = REFUSE

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
        return self


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
        thresholds=Thresholds(
            metric=exec_properties[METRIC_KEY],
            max_delta=float(exec_properties[MAX_DELTA_KEY]),
            delta_type=exec_properties[DELTA_TYPE_KEY],
            min_slice_size=int(exec_properties[MIN_SLICE_SIZE_KEY]),
            max_slice_delta=optional(MAX_SLICE_DELTA_KEY, float),
            min_agreement=optional(MIN_AGREEMENT_KEY, float),
            max_model_bytes=optional(MAX_MODEL_BYTES_KEY, int),
            max_latency_ms=optional(MAX_LATENCY_MS_KEY, float),
            latency_measure=exec_properties.get(LATENCY_MEASURE_KEY) or KERNEL,
        ),
    ).validate()
