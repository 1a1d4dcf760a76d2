"""What a pipeline asks of quantgate, as two typed values: ``QuantizeConfig`` (the Quantizers) and ``GateConfig``
(the QuantizationEvaluator).

Every pipeline factory takes ``quantize: QuantizeConfig | None`` and ``gate: GateConfig | None`` (``None``: that
pipeline's own defaults) and ``quantgate_stage`` passes every parameter of both components from them, so a
parameter of either component is reachable from any pipeline, and from the Kubeflow runner as
``--set quantize.<field>=...`` / ``--set gate.<field>=...`` (``apply_dotted``).

Where a parameter belongs: whatever makes a quantized model (mode, engine, per-node rules, the accuracy search, the
extra candidate modes) is ``QuantizeConfig``; whatever judges or picks one (metric, thresholds, ``selection`` among
the candidates, ``output_kind`` -- what the model's output holds, which the accuracy search scores with too) is
``GateConfig``. The signature is the Quantizer's field; the QuantizationEvaluator reads the float model through the
same one. ``label_key`` and ``split`` ('eval') are the pipeline's own wiring, not configuration.

Both validate at construction: a wrong type or value raises ``ValueError`` naming the field and the fix, with the
components' own rules (``resolve_options``, ``Thresholds`` / ``EvaluatorConfig``, ``SearchConfig``), so a bad
configuration fails before a pipeline is built.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from quantgate.components.quantization_evaluator.config import (
    PROBABILITIES,
    SMALLEST,
    EvaluatorConfig,
    gated_metrics,
)
from quantgate.components.quantization_evaluator.gate import KERNEL, POINT, REFUSE, Thresholds
from quantgate.components.quantizer.options import (
    DEFAULT_INT4_BLOCK_SIZE,
    LITERT_ENGINE,
    LITERT_IO_DTYPES,
    MODES,
    TFLITE_ENGINE,
    resolve_options,
)
from quantgate.components.quantizer.search import (
    DEFAULT_MAX_FLOAT_OP_FRACTION,
    DEFAULT_MAX_TRIALS,
    SearchConfig,
)

QUANTIZE_PREFIX = "quantize."
GATE_PREFIX = "gate."
# Stands in for the pipeline's label while a config is checked on its own: the label is the pipeline's wiring.
_CHECK_LABEL = "label"

Config = TypeVar("Config", bound="_Config")


class _Config:
    """Coercion (JSON lists -> tuples, dicts -> ``AccuracySearch``), type checks and ``with_overrides``, from the
    dataclass fields' annotations; subclasses add their semantic checks in ``_validate``."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            value = _coerce(type(self).__name__, field.name, getattr(self, field.name), hints[field.name])
            object.__setattr__(self, field.name, value)
        try:
            self._validate()
        except ValueError as error:
            # The components' messages start with their own name; the field names are the same.
            message = str(error).removeprefix("Quantizer: ").removeprefix("QuantizationEvaluator: ")
            raise ValueError(f"{type(self).__name__}: {message}") from None

    def _validate(self) -> None:
        raise NotImplementedError

    def with_overrides(self: Config, overrides: Mapping[str, Any]) -> Config:
        """A copy with ``overrides`` (field name -> value, JSON-shaped: lists for tuples, a dict for
        ``accuracy_search``) applied and validated; an unknown name is a ``ValueError`` listing the fields."""
        known = [field.name for field in dataclasses.fields(self)]  # type: ignore[arg-type]
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise ValueError(f"{type(self).__name__} has no field {', '.join(unknown)}; its fields are "
                             f"{', '.join(known)}")
        return dataclasses.replace(self, **overrides)  # type: ignore[type-var]


@dataclass(frozen=True)
class AccuracySearch(_Config):
    """The Quantizer's accuracy-aware search (``components/quantizer/search.py``): tried when the requested mode
    misses. ``metric`` / ``max_delta`` / ``delta_type`` left ``None`` take the gate's (its first metric), so the
    search aims at the gate the model must then pass; the label and ``output_kind`` are always the gate's."""

    metric: str | None = None
    max_delta: float | None = None
    delta_type: str | None = None
    max_trials: int = DEFAULT_MAX_TRIALS
    max_float_op_fraction: float = DEFAULT_MAX_FLOAT_OP_FRACTION

    def _validate(self) -> None:
        set_fields = {name: value for name, value in dataclasses.asdict(self).items() if value is not None}
        SearchConfig(label_key=_CHECK_LABEL, **set_fields).validate()

    def parameter(self, label_key: str, gate: GateConfig) -> dict[str, Any]:
        """The Quantizer's ``accuracy_search`` dict, unset fields taken from ``gate``."""
        metric, max_delta, _ = gated_metrics(gate.metric, gate.max_delta)
        return {"label_key": label_key,
                "metric": metric if self.metric is None else self.metric,
                "max_delta": max_delta if self.max_delta is None else self.max_delta,
                "delta_type": gate.delta_type if self.delta_type is None else self.delta_type,
                "max_trials": self.max_trials,
                "max_float_op_fraction": self.max_float_op_fraction,
                "output_kind": gate.output_kind}


@dataclass(frozen=True)
class QuantizeConfig(_Config):
    """How the Quantizers make the quantized candidates (the Quantizer's parameters; see its ``__init__``).

    ``candidate_modes`` adds one Quantizer per mode (id ``Quantizer_<mode>``: that mode alone, the same signature,
    the engine when it has the mode else ``tflite_converter``) beside the main one; the gate scores them all and its
    ``selection`` picks the one blessed and pushed.
    """

    mode: str = "int8"
    engine: str = TFLITE_ENGINE
    signature: str | None = None  # None: the float model's only dense signature
    io_dtype: str | None = None  # None: the mode's default
    denylisted_ops: tuple[str, ...] = ()
    allow_float_fallback: bool = False
    allow_select_ops: bool = False
    denylisted_nodes: tuple[str, ...] = ()
    int16_nodes: tuple[str, ...] = ()
    int4_weight_nodes: tuple[str, ...] = ()
    int4_block_size: int = DEFAULT_INT4_BLOCK_SIZE
    accuracy_search: AccuracySearch | None = None  # None: no search
    candidate_modes: tuple[str, ...] = ()

    def _validate(self) -> None:
        # The pipelines always wire a representative dataset: calibrated modes are valid here.
        resolve_options(self.mode, self.io_dtype, engine=self.engine, denylisted_ops=self.denylisted_ops,
                        allow_float_fallback=self.allow_float_fallback, has_representative_dataset=True,
                        denylisted_nodes=self.denylisted_nodes, int16_nodes=self.int16_nodes,
                        int4_weight_nodes=self.int4_weight_nodes, int4_block_size=self.int4_block_size,
                        allow_select_ops=self.allow_select_ops)
        modes = self.candidate_modes
        unknown = [mode for mode in modes if mode not in MODES]
        if unknown:
            raise ValueError(f"candidate_modes {list(modes)}: unknown mode(s) {unknown}; use modes of {list(MODES)}")
        # Distinct known modes other than the main one are at most len(MODES) - 1, within the evaluator's
        # MAX_CANDIDATES: no count check needed.
        if self.mode in modes or len(set(modes)) != len(modes):
            raise ValueError(f"candidate_modes {list(modes)}: list each mode once, and not the main mode "
                             f"{self.mode!r} (it is the first candidate already)")

    def candidate_engine(self, mode: str) -> str:
        """The engine of the extra candidate ``mode``: the main one when it has that mode, else ``tflite_converter``
        (e.g. float16 with ``litert_quantizer``, which has no float16 recipe)."""
        return self.engine if self.engine != LITERT_ENGINE or mode in LITERT_IO_DTYPES else TFLITE_ENGINE


@dataclass(frozen=True)
class GateConfig(_Config):
    """What the quantized model must satisfy to be blessed, and which candidate is picked (the
    QuantizationEvaluator's parameters; see its ``__init__``).

    ``metric`` may name several metrics (every one gated, the first the blessing's); ``max_delta`` is then one value
    for all or one per metric, in the same order.
    """

    metric: str | tuple[str, ...] = "accuracy"
    max_delta: float | tuple[float, ...] = 0.01
    delta_type: str = "absolute"
    slicing_feature_keys: tuple[str, ...] = ()
    min_slice_size: int = 30
    max_slice_delta: float | None = None
    min_agreement: float | None = None
    max_model_bytes: int | None = None
    max_latency_ms: float | None = None
    latency_measure: str = KERNEL
    delta_bound: str = POINT
    confidence: float = 0.95
    min_examples: int = 30
    nonfinite_inputs: str = REFUSE
    output_kind: str = PROBABILITIES
    selection: str = SMALLEST

    def _validate(self) -> None:
        metric, max_delta, extra_metrics = gated_metrics(self.metric, self.max_delta)
        EvaluatorConfig(
            label_key=_CHECK_LABEL, slicing_feature_keys=self.slicing_feature_keys,
            nonfinite_inputs=self.nonfinite_inputs, selection=self.selection, output_kind=self.output_kind,
            thresholds=Thresholds(metric=metric, max_delta=max_delta, delta_type=self.delta_type,
                                  min_slice_size=self.min_slice_size, max_slice_delta=self.max_slice_delta,
                                  min_agreement=self.min_agreement, max_model_bytes=self.max_model_bytes,
                                  max_latency_ms=self.max_latency_ms, extra_metrics=extra_metrics,
                                  delta_bound=self.delta_bound, confidence=self.confidence,
                                  min_examples=self.min_examples, latency_measure=self.latency_measure),
        ).validate()


def apply_dotted(quantize: QuantizeConfig, gate: GateConfig, overrides: Mapping[str, Any]
                 ) -> tuple[QuantizeConfig, GateConfig]:
    """``quantize`` and ``gate`` with ``overrides`` applied: keys ``quantize.<field>`` / ``gate.<field>`` (as
    ``--set gate.max_delta=0.02`` gives them), values JSON-shaped. Any other key is a ``ValueError`` listing the known
    ones."""
    known = dotted_keys()
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: not a configuration key; known: {', '.join(known)}")
    by_config: dict[str, dict[str, Any]] = {QUANTIZE_PREFIX: {}, GATE_PREFIX: {}}
    for key, value in overrides.items():
        prefix = QUANTIZE_PREFIX if key.startswith(QUANTIZE_PREFIX) else GATE_PREFIX
        by_config[prefix][key.removeprefix(prefix)] = value
    return quantize.with_overrides(by_config[QUANTIZE_PREFIX]), gate.with_overrides(by_config[GATE_PREFIX])


def with_dotted_configs(kwargs: Mapping[str, Any], defaults: Callable[[], tuple[QuantizeConfig, GateConfig]]
                        ) -> dict[str, Any]:
    """A factory's ``kwargs`` with their ``quantize.<field>`` / ``gate.<field>`` keys folded into ``quantize`` /
    ``gate`` configs: applied to the ones ``kwargs`` holds, else to ``defaults()`` (the pipeline's own, looked up only
    when such a key is there). What lets JSON-only callers (``--set``, a run's kwargs in a child process) set them."""
    dotted = {key: value for key, value in kwargs.items() if key.startswith((QUANTIZE_PREFIX, GATE_PREFIX))}
    if not dotted:
        return dict(kwargs)
    default_quantize, default_gate = defaults()
    quantize, gate = apply_dotted(kwargs.get("quantize") or default_quantize, kwargs.get("gate") or default_gate,
                                  dotted)
    plain = {key: value for key, value in kwargs.items() if key not in dotted}
    return {**plain, "quantize": quantize, "gate": gate}


def dotted_keys() -> list[str]:
    """Every ``quantize.<field>`` and ``gate.<field>`` key ``apply_dotted`` takes."""
    return ([QUANTIZE_PREFIX + f.name for f in dataclasses.fields(QuantizeConfig)]
            + [GATE_PREFIX + f.name for f in dataclasses.fields(GateConfig)])


def _coerce(owner: str, name: str, value: Any, hint: Any) -> Any:
    """``value`` as the field's annotation ``hint`` wants it (a list becomes a tuple, an int a float, a dict an
    ``AccuracySearch``), or a ``ValueError`` naming the field and the expected type."""
    arms = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for arm in arms:
        converted = _as_type(value, arm)
        if converted is not _MISMATCH:
            return converted
    raise ValueError(f"{owner}: {name} must be {' or '.join(_describe(arm) for arm in arms)}, got {value!r}")


_MISMATCH = object()


def _as_type(value: Any, kind: Any) -> Any:
    if kind is type(None):
        return None if value is None else _MISMATCH
    if typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]
        if not isinstance(value, list | tuple):
            return _MISMATCH
        items = tuple(_as_type(v, item) for v in value)
        return _MISMATCH if _MISMATCH in items else items
    if kind is bool:
        return value if isinstance(value, bool) else _MISMATCH
    if kind is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _MISMATCH
    if kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        return float(value) if ok else _MISMATCH
    if kind is str:
        return value if isinstance(value, str) else _MISMATCH
    if kind is AccuracySearch:
        if isinstance(value, AccuracySearch):
            return value
        return AccuracySearch().with_overrides(value) if isinstance(value, Mapping) else _MISMATCH
    raise TypeError(f"no coercion for {kind!r}")


def _describe(kind: Any) -> str:
    if kind is type(None):
        return "None (null)"
    if typing.get_origin(kind) is tuple:
        return f"a list, each {_describe(typing.get_args(kind)[0])}"
    if kind is AccuracySearch:
        return f"a dict of {', '.join(f.name for f in dataclasses.fields(AccuracySearch))}"
    return {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}[kind]
