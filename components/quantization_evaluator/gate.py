"""The gate: a pure function of (metrics, thresholds) -> (blessed, reasons). No I/O, no TensorFlow.

Deltas are *degradations*: positive when the quantized model is worse, whatever the metric's direction. For a
higher-is-better metric (accuracy, AUC) it is ``float - quantized``; for a lower-is-better one (MSE, MAE) it is
``quantized - float``. ``delta_type='relative'`` divides it by ``|float|``.

Each degradation comes with a paired one-sided upper confidence bound (``confidence.py``); ``delta_bound='upper'``
gates on it instead of the point value, so a split too small to tell a flip from a degradation is not blessed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from quantgate.components.shared.task_metrics import CLASSIFICATION as CLASSIFICATION
from quantgate.components.shared.task_metrics import DELTA_TYPES as DELTA_TYPES
from quantgate.components.shared.task_metrics import METRICS as METRICS
from quantgate.components.shared.task_metrics import REGRESSION as REGRESSION
from quantgate.components.shared.task_metrics import MetricInfo as MetricInfo
from quantgate.components.shared.task_metrics import degradation as degradation

# What the gate compares with max_delta: the point degradation, or its upper confidence bound.
POINT, UPPER = "point", "upper"
DELTA_BOUNDS = (POINT, UPPER)
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
    # Further gated metrics and their max_delta, beside ``metric`` (e.g. (("auc", 0.005),)); same task as ``metric``.
    extra_metrics: tuple[tuple[str, float], ...] = ()
    delta_bound: str = POINT
    confidence: float = 0.95
    # Fewer scored examples than this: not blessed (a 1-example split says nothing about the quantized model).
    min_examples: int = 30

    @property
    def info(self) -> MetricInfo:
        return METRICS[self.metric]

    @property
    def gated(self) -> list[tuple[str, float]]:
        """Every gated metric with its max_delta, ``metric`` first."""
        return [(self.metric, self.max_delta), *self.extra_metrics]

    def validate(self) -> Thresholds:
        """Raises ``ValueError`` naming the parameter and the fix; returns ``self`` so calls chain.

        Delta thresholds may be negative (the quantized model must then *improve* by that much; a negative
        ``max_delta`` is how a test forces a refusal). Budgets must be positive, and nothing may be NaN or infinite.
        """
        if self.metric not in METRICS:
            raise ValueError(f"QuantizationEvaluator: unknown metric {self.metric!r}; use one of {sorted(METRICS)}")
        if self.delta_type not in DELTA_TYPES:
            raise ValueError(f"QuantizationEvaluator: delta_type must be one of {DELTA_TYPES}, got {self.delta_type!r}")
        if self.delta_bound not in DELTA_BOUNDS:
            raise ValueError(f"QuantizationEvaluator: delta_bound must be one of {DELTA_BOUNDS} (gate on the point "
                             f"degradation or on its upper confidence bound), got {self.delta_bound!r}")
        _require_finite("confidence", self.confidence)
        if not 0.5 < self.confidence < 1.0:
            raise ValueError(f"QuantizationEvaluator: confidence is the one-sided level of the bound on the "
                             f"degradation and must be in (0.5, 1), e.g. 0.95; got {self.confidence}")
        if isinstance(self.min_examples, bool) or not isinstance(self.min_examples, int) or self.min_examples < 1:
            raise ValueError(f"QuantizationEvaluator: min_examples must be an integer >= 1, got {self.min_examples!r}")
        names = [name for name, _ in self.gated]
        if len(set(names)) != len(names):
            raise ValueError(f"QuantizationEvaluator: metric lists {names}: each metric once, with its max_delta")
        for name, max_delta in self.extra_metrics:
            if name not in METRICS:
                raise ValueError(f"QuantizationEvaluator: unknown metric {name!r}; use one of {sorted(METRICS)}")
            if METRICS[name].task != self.info.task:
                raise ValueError(f"QuantizationEvaluator: metrics {names} mix classification and regression; gate "
                                 "one model kind: classification metrics (accuracy, auc) or regression ones (mse, mae)")
            _require_finite(f"max_delta of {name}", max_delta)
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
class MetricValues:
    """One metric of both models on one slice, and the upper confidence bound of its degradation (``None`` when
    undefined)."""

    float_value: float | None
    quant_value: float | None
    delta_upper: float | None = None


@dataclass(frozen=True)
class SliceValues:
    """One slice's gated metric (``Thresholds.metric``) for both models (``None`` when it could not be computed),
    the upper bound of its degradation, and the further gated metrics in ``others``."""

    name: str
    num_examples: int
    float_value: float | None
    quant_value: float | None
    delta_upper: float | None = None
    others: Mapping[str, MetricValues] = field(default_factory=dict)

    def values(self, metric: str, primary: str) -> MetricValues:
        if metric == primary:
            return MetricValues(self.float_value, self.quant_value, self.delta_upper)
        return self.others.get(metric, MetricValues(None, None))


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
    """The verdict. ``delta`` is the overall degradation of ``Thresholds.metric`` (``None`` if undefined) and
    ``delta_upper`` its upper confidence bound; ``deltas`` has both for every gated metric; ``reasons`` explain a
    refusal; ``notes`` record what the verdict left out (examples dropped by ``nonfinite_inputs='drop'``);
    ``warnings`` say when the split is too small for the threshold to mean much (they do not refuse)."""

    blessed: bool
    delta: float | None
    threshold: float
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    delta_upper: float | None = None
    deltas: dict[str, dict[str, float | None]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def reason(self) -> str:
        """One line for the blessing's ``reason`` property (the notes too: the pusher quotes it)."""
        notes = f" ({'; '.join(self.notes)})" if self.notes else ""
        if self.blessed:
            return "blessed: every threshold passed" + notes
        return "not blessed: " + "; ".join(self.reasons) + notes


def _is_number(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _check_slice(values: SliceValues, metric: str, thresholds: Thresholds, max_delta: float,
                 reasons: list[str]) -> float | None:
    """Appends a reason when the slice fails ``metric`` (on its point delta or upper bound, as
    ``thresholds.delta_bound`` says); returns its point delta."""
    label = f"{metric} on {values.name}"
    found = values.values(metric, thresholds.metric)
    if not (_is_number(found.float_value) and _is_number(found.quant_value)):
        reasons.append(f"{label} is undefined (float={found.float_value}, quantized={found.quant_value})")
        return None
    delta = degradation(found.float_value, found.quant_value, METRICS[metric], thresholds.delta_type)
    if delta is None:
        reasons.append(f"relative delta of {label} is undefined: the float model scores 0; "
                       "use delta_type='absolute'")
        return None
    scores = f"float {found.float_value:.6g}, quantized {found.quant_value:.6g}"
    if thresholds.delta_bound == UPPER:
        bound = f"the {thresholds.confidence:.0%} upper confidence bound of the {thresholds.delta_type} delta of {label}"
        if not _is_number(found.delta_upper):
            reasons.append(f"{bound} is undefined (too few examples or classes to bound it); use delta_bound='point' "
                           "or a larger split")
        elif found.delta_upper > max_delta:
            reasons.append(f"{bound} is {found.delta_upper:.6g} > max {max_delta:.6g} (point delta {delta:.6g}, "
                           f"{scores}, {values.num_examples} examples)")
    elif delta > max_delta:
        reasons.append(f"{thresholds.delta_type} delta of {label} is {delta:.6g} > max {max_delta:.6g} ({scores})")
    return delta


def _resolution_warnings(overall: SliceValues, metric: str, max_delta: float, delta: float | None,
                         thresholds: Thresholds) -> list[str]:
    """What says the split is too small for ``max_delta``: one flipped prediction moves accuracy by more than it,
    or (gating on the point delta) the confidence bound lies further above the point delta than the threshold."""
    n, found = overall.num_examples, overall.values(metric, thresholds.metric)
    warnings = []
    if metric == "accuracy" and n and max_delta >= 0:
        flip = 1.0 / n
        if thresholds.delta_type == "relative" and _is_number(found.float_value) and found.float_value:
            flip /= abs(found.float_value)
        if flip > max_delta:
            warnings.append(f"one flipped prediction moves the {thresholds.delta_type} accuracy delta by {flip:.4g} "
                            f"> max_delta {max_delta:.4g}: {n} examples are too few for this threshold")
    if (thresholds.delta_bound == POINT and delta is not None and _is_number(found.delta_upper)
            and max_delta >= 0 and found.delta_upper - delta > max_delta):
        warnings.append(f"the {thresholds.confidence:.0%} upper confidence bound of the {metric} delta is "
                        f"{found.delta_upper:.4g}, {found.delta_upper - delta:.4g} above the point delta: more than "
                        f"max_delta {max_delta:.4g}, so on {n} examples noise alone can cross the threshold "
                        "(gate with delta_bound='upper', or evaluate on more examples)")
    return warnings


def _per_feature(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{name}: {count}" for name, count in sorted(counts.items()))


def gate(inputs: GateInputs, thresholds: Thresholds) -> GateResult:
    """Decides the blessing. Every failed rule adds a reason; blessed only when there is none."""
    reasons: list[str] = []
    notes: list[str] = []
    warnings: list[str] = []
    n = inputs.overall.num_examples
    if n == 0:
        reasons.append("no examples were evaluated")
    elif n < thresholds.min_examples:
        reasons.append(f"only {n} examples of the {inputs.split} split were scored < min_examples "
                       f"{thresholds.min_examples}: too few to judge the quantized model; evaluate on a larger split "
                       "(or lower min_examples)")
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
    deltas: dict[str, dict[str, float | None]] = {}
    for metric, max_delta in thresholds.gated:
        point = _check_slice(inputs.overall, metric, thresholds, max_delta, reasons)
        upper = inputs.overall.values(metric, thresholds.metric).delta_upper
        deltas[metric] = {"delta": point, "delta_upper": upper if _is_number(upper) else None,
                          "threshold": max_delta}
        warnings.extend(_resolution_warnings(inputs.overall, metric, max_delta, point, thresholds))
        if thresholds.max_slice_delta is not None:
            for values in inputs.slices:
                if values.num_examples >= thresholds.min_slice_size:
                    _check_slice(values, metric, thresholds, thresholds.max_slice_delta, reasons)
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
    primary = deltas[thresholds.metric]
    return GateResult(blessed=not reasons, delta=primary["delta"], threshold=thresholds.max_delta, reasons=reasons,
                      notes=notes, delta_upper=primary["delta_upper"], deltas=deltas, warnings=warnings)
