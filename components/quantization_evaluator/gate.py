"""The gate: a pure function of (metrics, thresholds) -> (blessed, reasons). No I/O, no TensorFlow.

Deltas are *degradations*: positive when the quantized model is worse, whatever the metric's direction. For a
higher-is-better metric (accuracy, AUC) it is ``float - quantized``; for a lower-is-better one (MSE, MAE) it is
``quantized - float``. ``delta_type='relative'`` divides it by ``|float|``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from components.shared.task_metrics import CLASSIFICATION as CLASSIFICATION
from components.shared.task_metrics import DELTA_TYPES as DELTA_TYPES
from components.shared.task_metrics import METRICS as METRICS
from components.shared.task_metrics import REGRESSION as REGRESSION
from components.shared.task_metrics import MetricInfo as MetricInfo
from components.shared.task_metrics import degradation as degradation

# What to do with examples whose inputs hold NaN/inf: either way they are not scored (int8 input quantization turns
# NaN into a number, so the two models' scores on them mean nothing); 'refuse' also withholds the blessing.
REFUSE, DROP = "refuse", "drop"
NONFINITE_INPUT_POLICIES = (REFUSE, DROP)
# The float model's serving signature (serialized examples -> its own transform -> model) must agree this much with
# the float model fed by the wired transform graph: below it, the graph is not the one the model was trained with.
MIN_SERVING_AGREEMENT = 0.99
# What max_latency_ms gates on. 'kernel': Interpreter.invoke alone on inputs already set, what an app that keeps its
# input tensors in place pays per call; 'end_to_end': through the runner, with our input quantization and output
# copies (Python that is the same for every model and that made a 2.5 us int8 kernel look like 18 us).
KERNEL, END_TO_END = "kernel", "end_to_end"
LATENCY_MEASURES = (KERNEL, END_TO_END)


@dataclass(frozen=True)
class Thresholds:
    """What the quantized model must satisfy to be blessed (see ``validate`` for the rules)."""

    metric: str = "accuracy"
    max_delta: float = 0.01
    delta_type: str = "absolute"
    min_slice_size: int = 30
    max_slice_delta: float | None = None
    min_agreement: float | None = None
    max_model_bytes: int | None = None
    max_latency_ms: float | None = None
    latency_measure: str = KERNEL

    @property
    def info(self) -> MetricInfo:
        return METRICS[self.metric]

    def validate(self) -> Thresholds:
        """Raises ``ValueError`` naming the parameter and the fix; returns ``self`` so calls chain.

        Delta thresholds may be negative (the quantized model must then *improve* by that much; a negative
        ``max_delta`` is how a test forces a refusal). Budgets must be positive, and nothing may be NaN or infinite.
        """
        if self.metric not in METRICS:
            raise ValueError(f"QuantizationEvaluator: unknown metric {self.metric!r}; use one of {sorted(METRICS)}")
        if self.delta_type not in DELTA_TYPES:
            raise ValueError(f"QuantizationEvaluator: delta_type must be one of {DELTA_TYPES}, got {self.delta_type!r}")
        _require_finite("max_delta", self.max_delta)
        _require_finite("max_slice_delta", self.max_slice_delta)
        if isinstance(self.min_slice_size, bool) or not isinstance(self.min_slice_size, int) or self.min_slice_size < 1:
            raise ValueError(f"QuantizationEvaluator: min_slice_size must be an integer >= 1, got {self.min_slice_size!r}")
        if self.min_agreement is not None:
            _require_finite("min_agreement", self.min_agreement)
            if not 0.0 <= self.min_agreement <= 1.0:
                raise ValueError(
                    f"QuantizationEvaluator: min_agreement is a fraction of examples, got {self.min_agreement}; "
                    "pass a value in [0, 1] or None")
            if self.info.task != CLASSIFICATION:
                raise ValueError(
                    f"QuantizationEvaluator: min_agreement (top-1 agreement) needs a classification metric, got "
                    f"metric={self.metric!r}; drop min_agreement or gate on "
                    f"{[m for m, i in METRICS.items() if i.task == CLASSIFICATION]}")
        for name, value in (("max_model_bytes", self.max_model_bytes), ("max_latency_ms", self.max_latency_ms)):
            if value is not None:
                _require_finite(name, value)
                if value <= 0:
                    raise ValueError(f"QuantizationEvaluator: {name} is a budget and must be > 0, got {value}; "
                                     "pass None to disable it")
        if self.latency_measure not in LATENCY_MEASURES:
            raise ValueError(f"QuantizationEvaluator: latency_measure must be one of {LATENCY_MEASURES} (what "
                             f"max_latency_ms gates on), got {self.latency_measure!r}")
        return self


def _require_finite(name: str, value: float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"QuantizationEvaluator: {name} must be a finite number, got {value!r}")


@dataclass(frozen=True)
class SliceValues:
    """One slice's gated metric for both models (``None`` when it could not be computed)."""

    name: str
    num_examples: int
    float_value: float | None
    quant_value: float | None


@dataclass(frozen=True)
class GateInputs:
    """Everything the gate reads. ``overall`` is the whole split; ``slices`` are the per-feature-value slices."""

    overall: SliceValues
    slices: Sequence[SliceValues] = ()
    agreement: float | None = None
    nonfinite_predictions: int = 0
    missing_predictions: int = 0
    # Of the missing ones, those whose label is not a class index (fractional, negative, >= the number of classes).
    invalid_labels: int = 0
    # Examples with a NaN/inf input (none of them scored), per input feature, and how many in all.
    nonfinite_inputs: Mapping[str, int] = field(default_factory=dict)
    nonfinite_input_examples: int = 0
    nonfinite_input_policy: str = REFUSE
    split: str = "eval"
    model_bytes: int | None = None
    latency_p95_ms: float | None = None
    # With a transform graph: whether the float model's serving signature (named here) was compared with the float
    # model on the transformed features, and their agreement (None when no example could be compared).
    serving_compared: bool = False
    serving_agreement: float | None = None
    serving_signature: str = "serving_default"
    signature_name: str = "serving_features"


@dataclass(frozen=True)
class GateResult:
    """The verdict. ``delta`` is the overall degradation (``None`` if undefined); ``reasons`` explain a refusal;
    ``notes`` record what the verdict left out (examples dropped by ``nonfinite_inputs='drop'``)."""

    blessed: bool
    delta: float | None
    threshold: float
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def reason(self) -> str:
        """One line for the blessing's ``reason`` property (the notes too: the pusher quotes it)."""
        notes = f" ({'; '.join(self.notes)})" if self.notes else ""
        if self.blessed:
            return "blessed: every threshold passed" + notes
        return "not blessed: " + "; ".join(self.reasons) + notes


def _is_number(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _check_slice(values: SliceValues, thresholds: Thresholds, max_delta: float, reasons: list[str]) -> float | None:
    """Appends a reason when the slice fails; returns its delta."""
    label = f"{thresholds.metric} on {values.name}"
    if not (_is_number(values.float_value) and _is_number(values.quant_value)):
        reasons.append(f"{label} is undefined (float={values.float_value}, quantized={values.quant_value})")
        return None
    delta = degradation(values.float_value, values.quant_value, thresholds.info, thresholds.delta_type)
    if delta is None:
        reasons.append(f"relative delta of {label} is undefined: the float model scores 0; "
                       "use delta_type='absolute'")
        return None
    if delta > max_delta:
        reasons.append(f"{thresholds.delta_type} delta of {label} is {delta:.6g} > max {max_delta:.6g} "
                       f"(float {values.float_value:.6g}, quantized {values.quant_value:.6g})")
    return delta


def _per_feature(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{name}: {count}" for name, count in sorted(counts.items()))


def gate(inputs: GateInputs, thresholds: Thresholds) -> GateResult:
    """Decides the blessing. Every failed rule adds a reason; blessed only when there is none."""
    reasons: list[str] = []
    notes: list[str] = []
    if inputs.overall.num_examples == 0:
        reasons.append("no examples were evaluated")
    if inputs.nonfinite_input_examples:
        found = (f"{inputs.split} split has {inputs.nonfinite_input_examples} examples with non-finite inputs "
                 f"({_per_feature(inputs.nonfinite_inputs)})")
        if inputs.nonfinite_input_policy == DROP:
            notes.append(f"dropped: {found}, left out of both models' scores (nonfinite_inputs='drop')")
        else:
            reasons.append(f"{found}; fix the data upstream or pass nonfinite_inputs='drop'")
    if inputs.nonfinite_predictions:
        reasons.append(f"{inputs.nonfinite_predictions} examples got NaN or infinite predictions")
    if inputs.missing_predictions:
        invalid = (f" ({inputs.invalid_labels} of them have a label that is not a class index, an integer in "
                   "[0, number of classes): map the label to class indices upstream)") if inputs.invalid_labels else ""
        reasons.append(f"{inputs.missing_predictions} examples got no prediction or no label{invalid}")
    delta = _check_slice(inputs.overall, thresholds, thresholds.max_delta, reasons)
    if thresholds.max_slice_delta is not None:
        for values in inputs.slices:
            if values.num_examples >= thresholds.min_slice_size:
                _check_slice(values, thresholds, thresholds.max_slice_delta, reasons)
    if thresholds.min_agreement is not None:
        if not _is_number(inputs.agreement):
            reasons.append("top-1 agreement is undefined")
        elif inputs.agreement < thresholds.min_agreement:
            reasons.append(f"top-1 agreement {inputs.agreement:.6g} < min {thresholds.min_agreement:.6g}")
    if inputs.serving_compared and inputs.serving_agreement is None:
        reasons.append(f"the model's serving path ({inputs.serving_signature}) could not be compared with the "
                       f"transformed-feature path ({inputs.signature_name}) on any example (no finite output)")
    elif inputs.serving_compared and not inputs.serving_agreement >= MIN_SERVING_AGREEMENT:
        reasons.append(
            f"the model's serving path ({inputs.serving_signature}) and the transformed-feature path "
            f"({inputs.signature_name}) disagree: agreement {inputs.serving_agreement:.6g} < "
            f"{MIN_SERVING_AGREEMENT}: the transform graph wired here is not the one the model was trained with")
    if thresholds.max_model_bytes is not None:
        if inputs.model_bytes is None:
            reasons.append("quantized model size is unknown (no size_bytes property)")
        elif inputs.model_bytes > thresholds.max_model_bytes:
            reasons.append(f"quantized model is {inputs.model_bytes} bytes > max {thresholds.max_model_bytes}")
    if thresholds.max_latency_ms is not None:
        if not _is_number(inputs.latency_p95_ms):
            reasons.append("quantized model latency was not measured")
        elif inputs.latency_p95_ms > thresholds.max_latency_ms:
            reasons.append(f"quantized model p95 latency {inputs.latency_p95_ms:.4g} ms "
                           f"({thresholds.latency_measure}) > max {thresholds.max_latency_ms:.4g} ms")
    return GateResult(blessed=not reasons, delta=delta, threshold=thresholds.max_delta, reasons=reasons, notes=notes)
