"""Accuracy-aware search: when the requested quantization costs too much accuracy, find a model that does not.

A ladder of remedies, cheapest first; each candidate is converted in the isolated child (several per child: one
TensorFlow import) and scored against the float SavedModel on the search dataset (a sample disjoint from the
calibration one) with the QuantizationEvaluator's metric and degradation (``shared.task_metrics``):

1. ``requested``: the requested mode and io_dtype (its layer errors are computed in the same child);
2. ``io_float32``: int8 with float32 model inputs/outputs (the model quantizes after its first op);
3. ``int16``: 16-bit activations: ``int16x8`` for the whole model, and with engine ``litert_quantizer`` int8 with
   int16 activations for the worst layers (``int16_nodes``);
4. ``float_fallback``: the worst layers back to float (``denylisted_nodes``): ranked by the layer-wise error, the
   top ones each reverted alone and ranked again by the degradation on the search examples where float and the
   candidate disagree most (NNCF's ``quantize_with_accuracy_control``), then reverted greedily, a revert that does
   not lower the delta undone, until within ``max_delta``, ``max_trials`` conversions or ``max_float_op_fraction``.

Steps 2 and 3 convert in one child (when the first candidate misses); the ranking conversions of step 4 in another.
A candidate passes when its delta is at most ``max_delta`` and its share of float ops at most
``max_float_op_fraction``; the winner is the passing candidate of the earliest step (then the fewest float ops, then
the smallest delta). When none passes, ``SearchFailed`` lists every candidate and the best delta.

With ``output_kind='logits'`` the float model's and every candidate's outputs go through
``shared.task_metrics.to_probabilities`` before any metric, as in the QuantizationEvaluator: accuracy thresholds a
single column at 0.5, which is a probability's threshold, not a logit's (0).
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from quantgate.components.quantizer.isolation import IsolatedProcessError, run_isolated
from quantgate.components.quantizer.options import CALIBRATED_MODES, QuantizationOptions, resolve_options
from quantgate.components.quantizer.report import float_ops_by_output, op_summary
from quantgate.components.quantizer.search_conversions import Conversion, convert_batch
from quantgate.components.shared.model_runners import TFLiteRunner
from quantgate.components.shared.task_metrics import (
    DELTA_TYPES,
    LOGITS,
    METRICS,
    OUTPUT_KINDS,
    PROBABILITIES,
    REGRESSION,
    degradation,
    metric_value,
    to_probabilities,
)

DEFAULT_MAX_TRIALS = 12
DEFAULT_MAX_FLOAT_OP_FRACTION = 0.2
# How many of the worst layers (by layer-wise error) are reverted alone to rank them on the disagreements.
RANKED_LAYERS = 6
# How many layers get int16 activations in the litert int16_nodes candidate.
INT16_LAYERS = 4
# The disagreement subset: the examples where float and the base candidate differ most, at least this many.
MIN_DISAGREEMENTS = 32
STEPS = ("requested", "io_float32", "int16", "float_fallback")
_PARAMETERS = ("label_key", "metric", "max_delta", "delta_type", "max_trials", "max_float_op_fraction",
               "output_kind")


class SearchFailed(RuntimeError):
    """No candidate passed within the budget; the message lists what was tried and the best delta reached."""


@dataclass(frozen=True)
class SearchConfig:
    """The Quantizer's ``accuracy_search`` parameter (``label_key``, ``metric``, ``max_delta``, ``delta_type`` and
    ``output_kind`` mean what they mean for the QuantizationEvaluator)."""

    label_key: str
    metric: str = "accuracy"
    max_delta: float = 0.01
    delta_type: str = "absolute"
    max_trials: int = DEFAULT_MAX_TRIALS
    max_float_op_fraction: float = DEFAULT_MAX_FLOAT_OP_FRACTION
    # Last, and defaulted: an accuracy_search JSON written before it existed still parses, as probabilities.
    output_kind: str = PROBABILITIES

    @classmethod
    def from_mapping(cls, value: Mapping[str, Any]) -> SearchConfig:
        """The validated config of a dict; unknown keys are refused (a typo would silently keep a default)."""
        if not isinstance(value, Mapping):
            raise ValueError(f"Quantizer: accuracy_search must be a dict with keys {_PARAMETERS}, got {value!r}.")
        unknown = sorted(set(value) - set(_PARAMETERS))
        if unknown:
            raise ValueError(f"Quantizer: accuracy_search has unknown key(s) {unknown}; its keys are {_PARAMETERS}.")
        if "label_key" not in value:
            raise ValueError("Quantizer: accuracy_search needs label_key (the label feature of the search examples).")
        return cls(**value).validate()

    def validate(self) -> SearchConfig:
        """Raises ``ValueError`` naming the key and the fix; returns ``self``."""
        if not isinstance(self.label_key, str) or not self.label_key:
            raise ValueError(f"Quantizer: accuracy_search label_key must name the label feature, got {self.label_key!r}.")
        if self.metric not in METRICS:
            raise ValueError(f"Quantizer: accuracy_search metric {self.metric!r} is unknown; use one of {sorted(METRICS)}.")
        if self.delta_type not in DELTA_TYPES:
            raise ValueError(f"Quantizer: accuracy_search delta_type must be one of {DELTA_TYPES}, got {self.delta_type!r}.")
        if isinstance(self.max_delta, bool) or not isinstance(self.max_delta, int | float) \
                or not math.isfinite(self.max_delta):
            raise ValueError(f"Quantizer: accuracy_search max_delta must be a finite number, got {self.max_delta!r}.")
        if isinstance(self.max_trials, bool) or not isinstance(self.max_trials, int) or self.max_trials < 1:
            raise ValueError(f"Quantizer: accuracy_search max_trials (conversions the search may try) must be an "
                             f"integer >= 1, got {self.max_trials!r}.")
        fraction = self.max_float_op_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0.0 <= fraction <= 1.0:
            raise ValueError(f"Quantizer: accuracy_search max_float_op_fraction is a share of the model's ops, a "
                             f"number in [0, 1]; got {fraction!r}.")
        if self.output_kind not in OUTPUT_KINDS:
            raise ValueError(f"Quantizer: accuracy_search output_kind must be one of {OUTPUT_KINDS} (what the "
                             "model's single output holds: probabilities are scored as they are, logits go through "
                             f"sigmoid / softmax first), got {self.output_kind!r}.")
        if self.output_kind == LOGITS and METRICS[self.metric].task == REGRESSION:
            # A regressor's output is the prediction itself: a sigmoid would score something it never predicts.
            raise ValueError(f"Quantizer: accuracy_search output_kind='logits' is for classifiers, but metric="
                             f"{self.metric!r} is a regression metric, whose predictions are scored as they are; "
                             "drop output_kind or search on 'accuracy' / 'auc'.")
        return self

    def to_json(self) -> str:
        """What the component carries as its ``accuracy_search`` execution property."""
        return json.dumps(asdict(self), sort_keys=True)


def parse_search_config(text: str | None) -> SearchConfig | None:
    """The ``accuracy_search`` execution property (a JSON object, or empty when the search is off)."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"Quantizer: accuracy_search must be a JSON object, got {text!r}: {e}.") from e
    return SearchConfig.from_mapping(value)


def check_search_request(config: SearchConfig | None, has_search_dataset: bool, options: QuantizationOptions) -> None:
    """The search needs both ``accuracy_search`` and ``search_dataset``, and a calibrated requested mode.

    Raises:
      ValueError: one without the other, or a mode the ladder does not start from; the message names the fix.
    """
    if config is not None and not has_search_dataset:
        raise ValueError(
            "Quantizer: accuracy_search needs the search_dataset input (scored candidates must not be scored on "
            "their calibration examples): wire RepresentativeDatasetGen(num_search_examples=N)'s search_dataset "
            "output, or drop accuracy_search.")
    if config is None and has_search_dataset:
        raise ValueError(
            "Quantizer: search_dataset is wired but accuracy_search is not set, so nothing would read it: pass "
            "accuracy_search={'label_key': ..., 'metric': ..., 'max_delta': ...}, or do not wire search_dataset.")
    if config is not None and options.mode not in CALIBRATED_MODES:
        raise ValueError(
            f"Quantizer: accuracy_search starts from a calibrated mode {CALIBRATED_MODES}; mode {options.mode!r} "
            "quantizes no activations, so its remedies do not apply. Use mode 'int8' or drop accuracy_search.")


def describe(options: QuantizationOptions) -> str:
    """A candidate's configuration in a few words, e.g. ``int8 io=float32 float: 2 nodes``."""
    text = f"{options.mode} io={options.io_dtype}" + ("" if options.engine == "tflite_converter" else f" {options.engine}")
    if options.denylisted_nodes:
        text += f" float: {len(options.denylisted_nodes)} node(s)"
    if options.int16_nodes:
        text += f" int16: {len(options.int16_nodes)} node(s)"
    if options.int4_weight_nodes:
        text += f" int4 weights: {len(options.int4_weight_nodes)} node(s)"
    return text


def config_of(options: QuantizationOptions) -> dict[str, Any]:
    """The options a candidate differs by (the ``chosen_config`` property and the report's ``config``)."""
    return {"mode": options.mode, "io_dtype": options.io_dtype, "engine": options.engine,
            "denylisted_ops": list(options.denylisted_ops), "denylisted_nodes": list(options.denylisted_nodes),
            "int16_nodes": list(options.int16_nodes), "int4_weight_nodes": list(options.int4_weight_nodes)}


@dataclass
class Trial:
    """One candidate: how it converted, its size and ops, and its score on the search dataset."""

    number: int
    step: str
    options: QuantizationOptions
    conversion_seconds: float | None = None
    error: str | None = None
    content: bytes | None = None
    layer_errors: list[dict[str, Any]] | None = None
    metric_value: float | None = None
    delta: float | None = None
    subset_delta: float | None = None
    float_op_count: int = 0
    op_count: int = 0
    float_ops: list[list[str]] = field(default_factory=list)
    outcome: str = ""

    @property
    def float_op_fraction(self) -> float:
        return self.float_op_count / self.op_count if self.op_count else 0.0

    def record(self, passed: bool) -> dict[str, Any]:
        """The report's entry for this candidate."""
        return {"trial": self.number, "step": self.step, "config": config_of(self.options),
                "description": describe(self.options), "metric_value": self.metric_value, "delta": self.delta,
                "disagreement_subset_delta": self.subset_delta, "passed": passed,
                "size_bytes": len(self.content) if self.content else None, "float_op_count": self.float_op_count,
                "op_count": self.op_count, "float_op_fraction": round(self.float_op_fraction, 4),
                "float_ops": self.float_ops,
                "conversion_seconds": None if self.conversion_seconds is None else round(self.conversion_seconds, 3),
                "error": self.error, "outcome": self.outcome}


@dataclass(frozen=True)
class SearchData:
    """What candidates are scored on: search inputs, their labels and the float model's predictions (``[n, k]``)."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray
    float_predictions: np.ndarray
    uri: str

    @property
    def num_examples(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class SearchOutcome:
    """The chosen candidate and the report's ``search`` section."""

    chosen: Trial
    section: dict[str, Any]


def single_output(outputs: dict[str, np.ndarray], model: str) -> np.ndarray:
    """The model's one output as ``[n, k]``; the search compares one output, as the evaluator does."""
    if len(outputs) != 1:
        raise ValueError(f"Quantizer: accuracy_search compares a single output, but the {model} has outputs "
                         f"{sorted(outputs)}; export a signature with one output (e.g. probabilities).")
    (value,) = outputs.values()
    return value.reshape(len(value), -1).astype(np.float32, copy=False)


def _compute_op_count(summary: dict[str, Any]) -> int:
    # QUANTIZE / DEQUANTIZE are the seams between float and integer parts, not work of the model.
    return sum(n for category, n in summary["by_dtype"].items() if category != "conversion")


class Search:
    """One search over one model; ``run`` climbs the ladder. Conversions go through ``run_isolated``."""

    def __init__(self, *, saved_model_dir: str, signature_name: str, calibration_inputs: dict[str, np.ndarray],
                 data: SearchData, config: SearchConfig, what: str) -> None:
        self._saved_model_dir = saved_model_dir
        self._signature = signature_name
        self._calibration = calibration_inputs
        self._config = config
        # The float predictions enter every metric, the delta and the disagreement ranking from here only, already
        # as probabilities (``_predict`` does the same for each candidate), so logits are never scored raw.
        self._data = replace(data, float_predictions=self._as_probabilities(data.float_predictions))
        self._what = what
        self._info = METRICS[config.metric]
        self._float_value = metric_value(config.metric, self._data.float_predictions, self._data.labels)
        self.trials: list[Trial] = []
        self._predictions: dict[int, np.ndarray] = {}  # by trial number, for the disagreement subset
        self._started = time.monotonic()

    # --- converting and scoring --------------------------------------------------------------------------------
    @property
    def remaining(self) -> int:
        return self._config.max_trials - len(self.trials)

    def _convert(self, requests: Sequence[tuple[str, QuantizationOptions, bool]]) -> list[Trial]:
        """Converts and scores up to ``remaining`` of the requests, in one child (one by one if it dies)."""
        requests = list(requests)[:self.remaining]
        if not requests:
            return []
        with tempfile.TemporaryDirectory(prefix="quantgate-search-") as tmp:
            paths = [os.path.join(tmp, f"candidate-{len(self.trials) + i}.tflite") for i in range(len(requests))]
            batch = [(options, path, diagnose) for (_, options, diagnose), path in zip(requests, paths, strict=True)]
            try:
                results = self._run_child(batch)
            except IsolatedProcessError as error:
                if len(batch) == 1:
                    results = [Conversion(None, error=str(error).splitlines()[0])]
                else:  # one candidate killed the child: convert them alone, so only that one is lost
                    logging.warning("search: a batch of %d conversions died (%s); converting them one by one",
                                    len(batch), str(error).splitlines()[0])
                    results = []
                    for one in batch:
                        try:
                            results.extend(self._run_child([one]))
                        except IsolatedProcessError as e:
                            results.append(Conversion(None, error=str(e).splitlines()[0]))
            trials = []
            for (step, options, _), path, result in zip(requests, paths, results, strict=True):
                trial = Trial(number=len(self.trials) + 1, step=step, options=options,
                              conversion_seconds=result.seconds, error=result.error, layer_errors=result.layer_errors)
                if result.error is None:
                    with open(path, "rb") as f:
                        trial.content = f.read()
                    self._score(trial)
                self.trials.append(trial)
                self._log(trial)
                trials.append(trial)
        return trials

    def _run_child(self, batch: list[tuple[QuantizationOptions, str, bool]]) -> list[Conversion]:
        return run_isolated(
            convert_batch,
            {"saved_model_dir": self._saved_model_dir, "signature_name": self._signature, "requests": batch,
             "inputs": self._calibration},
            what=f"accuracy_search: {len(batch)} candidate conversion(s) ({', '.join(describe(o) for o, _, _ in batch)}) "
                 f"of {self._what}")

    def _as_probabilities(self, predictions: np.ndarray) -> np.ndarray:
        return to_probabilities(predictions, self._config.output_kind, owner="Quantizer: accuracy_search")

    def _predict(self, trial: Trial) -> np.ndarray:
        """The candidate's predictions on the search inputs, as probabilities (see ``output_kind``)."""
        runner = TFLiteRunner(f"search candidate {trial.number}", content=trial.content)
        return self._as_probabilities(single_output(runner.predict(self._data.inputs),
                                                    f"candidate {trial.number} ({describe(trial.options)})"))

    def _score(self, trial: Trial) -> None:
        summary = op_summary(trial.content)
        trial.float_op_count = int(summary["float_op_count"])
        trial.op_count = _compute_op_count(summary)
        trial.float_ops = [list(pair) for pair in float_ops_by_output(trial.content)]
        try:
            predictions = self._predict(trial)
        except ValueError as error:
            trial.error = str(error)
            return
        trial.metric_value = metric_value(self._config.metric, predictions, self._data.labels)
        trial.delta = self._delta(trial.metric_value)
        self._predictions[trial.number] = predictions

    def _delta(self, value: float) -> float | None:
        if not (math.isfinite(value) and math.isfinite(self._float_value)):
            return None
        return degradation(self._float_value, value, self._info, self._config.delta_type)

    def passes(self, trial: Trial) -> bool:
        return (trial.error is None and trial.delta is not None and trial.delta <= self._config.max_delta
                and trial.float_op_fraction <= self._config.max_float_op_fraction)

    def _log(self, trial: Trial) -> None:
        delta = "n/a" if trial.delta is None else f"{trial.delta:+.4g}"
        verdict = "error: " + trial.error.splitlines()[0][:200] if trial.error else (
            "passes" if self.passes(trial) else "misses")
        logging.info("Quantizer search: trial %d/%d [%s] %s: %s delta %s (max %.4g), float ops %d/%d, converted in "
                     "%s, %.1fs into the search: %s", trial.number, self._config.max_trials, trial.step,
                     describe(trial.options), self._config.metric, delta, self._config.max_delta,
                     trial.float_op_count, trial.op_count,
                     "n/a" if trial.conversion_seconds is None else f"{trial.conversion_seconds:.1f}s",
                     time.monotonic() - self._started, verdict)

    # --- the ladder --------------------------------------------------------------------------------------------
    def run(self, requested: QuantizationOptions) -> SearchOutcome:
        """Climbs the ladder from ``requested``; returns the chosen candidate or raises ``SearchFailed``."""
        logging.info("Quantizer search: float %s %.6g on %d search examples (outputs scored as %s); max %s delta "
                     "%.4g, at most %d trials, float ops <= %.0f%%", self._config.metric, self._float_value,
                     self._data.num_examples, self._config.output_kind, self._config.delta_type,
                     self._config.max_delta, self._config.max_trials, 100 * self._config.max_float_op_fraction)
        (first,) = self._convert([("requested", requested, True)])
        if not self.passes(first):
            # Steps 2 and 3 share one child: a child's TensorFlow import and model load cost more than a conversion.
            self._convert(self._io_float32(requested) + self._int16(requested, first))
        if not any(self.passes(t) for t in self.trials) and self.remaining:
            self._float_fallback(requested, first)
        return self._outcome(requested)

    @staticmethod
    def _io_float32(requested: QuantizationOptions) -> list[tuple[str, QuantizationOptions, bool]]:
        # ai-edge-quantizer's int8 recipe fixes int8 I/O: float32 I/O is the converter's only.
        if requested.mode == "int8" and requested.io_dtype != "float32" and requested.engine == "tflite_converter":
            return [("io_float32", replace(requested, io_dtype="float32"), False)]
        return []

    @staticmethod
    def _int16(requested: QuantizationOptions, first: Trial) -> list[tuple[str, QuantizationOptions, bool]]:
        requests = []
        if requested.int4_weight_nodes:  # int4 weights do not combine with int16 activations (options.INT4_MODES)
            return requests
        if requested.mode != "int16x8":
            io = "float32" if requested.io_dtype == "float32" and requested.engine == "tflite_converter" else None
            requests.append(("int16", resolve_options("int16x8", io, engine=requested.engine), False))
        worst = [r["tensor"] for r in first.layer_errors or []][:INT16_LAYERS]
        if requested.engine == "litert_quantizer" and requested.mode == "int8" and worst:
            requests.append(("int16", replace(requested, int16_nodes=tuple(worst)), False))
        return requests

    def _float_fallback(self, requested: QuantizationOptions, first: Trial) -> None:
        base = self._fallback_base(requested)
        if base is None:
            return
        ranked = [r["tensor"] for r in first.layer_errors or [] if r["tensor"] not in base.options.denylisted_nodes]
        if not ranked:
            base.outcome = "no layer errors to rank layers by: float fallback skipped"
            return
        subset = self._disagreement_rows(base)
        alone = ranked[:min(RANKED_LAYERS, max(self.remaining // 2, 1))]
        singles = self._convert([("float_fallback", self._with_float(base.options, (t,)), False) for t in alone])
        for trial in singles:
            trial.subset_delta = self._subset_delta(trial, subset)
            trial.outcome = "reverted alone to rank the layer"
        scored = sorted((t for t in singles if t.subset_delta is not None), key=lambda t: t.subset_delta)
        by_nodes = {t.options.denylisted_nodes: t for t in singles}
        order = [t.options.denylisted_nodes[-1] for t in scored] + [t for t in ranked if t not in alone]
        current = base
        for tensor in order:
            if self.passes(current) and current is not base:
                break
            options = self._with_float(current.options, (tensor,))
            trial = by_nodes.get(options.denylisted_nodes)
            if trial is None:
                if not self.remaining:
                    break
                (trial,) = self._convert([("float_fallback", options, False)])
            if trial.error or trial.delta is None:
                trial.outcome = "undone: it did not convert or score"
            elif trial.float_op_fraction > self._config.max_float_op_fraction:
                trial.outcome = (f"undone: float ops {trial.float_op_fraction:.0%} > max_float_op_fraction "
                                 f"{self._config.max_float_op_fraction:.0%}")
            elif current.delta is not None and trial.delta >= current.delta:
                trial.outcome = f"undone: delta {trial.delta:+.4g} is no better than {current.delta:+.4g}"
            else:
                trial.outcome = f"kept: delta {trial.delta:+.4g}" + (
                    "" if current.delta is None else f" (was {current.delta:+.4g})")
                current = trial

    @staticmethod
    def _with_float(options: QuantizationOptions, tensors: tuple[str, ...]) -> QuantizationOptions:
        return replace(options, denylisted_nodes=options.denylisted_nodes + tensors)

    def _fallback_base(self, requested: QuantizationOptions) -> Trial | None:
        """The int8 candidate the layers fall back from: the best-scoring int8 one (the converter has no denylist
        for int16x8)."""
        int8 = [t for t in self.trials if t.options.mode == "int8" and t.delta is not None
                and not t.options.int16_nodes]
        if int8:
            return min(int8, key=lambda t: t.delta)
        if requested.mode == "int16x8" and self.remaining:
            (trial,) = self._convert([("float_fallback", resolve_options("int8", engine=requested.engine), False)])
            return trial if trial.delta is not None else None
        return None

    def _disagreement_rows(self, base: Trial) -> np.ndarray:
        """The search examples where the base candidate's predictions differ most from the float model's."""
        diff = np.abs(self._predictions[base.number].astype(np.float64) - self._data.float_predictions).sum(axis=1)
        count = min(len(diff), max(MIN_DISAGREEMENTS, len(diff) // 4))
        return np.argsort(-diff, kind="stable")[:count]

    def _subset_delta(self, trial: Trial, rows: np.ndarray) -> float | None:
        if trial.number not in self._predictions:
            return None
        labels = self._data.labels[rows]
        float_value = metric_value(self._config.metric, self._data.float_predictions[rows], labels)
        value = metric_value(self._config.metric, self._predictions[trial.number][rows], labels)
        if not (math.isfinite(value) and math.isfinite(float_value)):
            return None
        return degradation(float_value, value, self._info, "absolute")

    # --- the outcome -------------------------------------------------------------------------------------------
    def _outcome(self, requested: QuantizationOptions) -> SearchOutcome:
        passing = [t for t in self.trials if self.passes(t)]
        if not passing:
            raise SearchFailed(self._failure_reason())
        section = {
            "config": asdict(self._config),
            "search_dataset": {"uri": self._data.uri, "num_examples": self._data.num_examples},
            "float_metric_value": self._float_value,
            "requested": config_of(requested),
            "layer_ranking": [{k: r.get(k) for k in ("tensor", "op", "rmse_over_scale", "mean_error")}
                              for r in (self.trials[0].layer_errors or [])[:RANKED_LAYERS * 2]],
            "calibration": (f"every candidate is calibrated on all {len(next(iter(self._calibration.values())))} "
                            "representative examples, conv weights per channel (the converter's default); more "
                            "calibration examples mean a larger RepresentativeDatasetGen num_examples"),
            "seconds": round(time.monotonic() - self._started, 3),
        }
        chosen = min(passing, key=lambda t: (STEPS.index(t.step), t.float_op_count, t.delta))
        chosen.outcome = (chosen.outcome + "; " if chosen.outcome else "") + "chosen"
        earlier = sorted({t.step for t in self.trials if STEPS.index(t.step) < STEPS.index(chosen.step)},
                         key=STEPS.index)
        why = (f"trial {chosen.number} ({describe(chosen.options)}, step {chosen.step!r}) is the cheapest remedy "
               f"within the budget: {self._config.delta_type} {self._config.metric} delta {chosen.delta:+.4g} <= "
               f"{self._config.max_delta:.4g} with {chosen.float_op_count} of {chosen.op_count} ops in float"
               + (f"; no candidate of the earlier step(s) {earlier} passed" if earlier else "")
               + (f"; {len(passing) - 1} other candidate(s) passed at the same or a later step, with more float ops "
                  "or a larger delta" if len(passing) > 1 else ""))
        section.update(candidates=[t.record(self.passes(t)) for t in self.trials], chosen_trial=chosen.number,
                       why=why, integer_only=self._integer_only_note(chosen))
        logging.info("Quantizer search: %s", why)
        return SearchOutcome(chosen=chosen, section=section)

    @staticmethod
    def _integer_only_note(trial: Trial) -> str:
        if trial.float_ops:
            listed = ", ".join(f"{op} ({tensor})" for op, tensor in trial.float_ops)
            return (f"{len(trial.float_ops)} op(s) compute in float: {listed}. An integer-only target (NPU, DSP, "
                    "Edge TPU delegates) runs none of them: each splits the graph there, and the float part runs on "
                    "the CPU.")
        if trial.options.mode == "int16x8" or trial.options.int16_nodes:
            return ("no float op, but int16 activations: integer-only targets need int16x8 kernels for them, which "
                    "many accelerators lack.")
        return "no float op: the whole graph runs on an integer-only target."

    def _failure_reason(self) -> str:
        scored = [t for t in self.trials if t.delta is not None]
        tried = "; ".join(
            f"#{t.number} {t.step} {describe(t.options)}: "
            + (f"error {t.error.splitlines()[0][:160]}" if t.error else
               f"delta {t.delta:+.4g}" if t.delta is not None else "delta undefined")
            + (f", float ops {t.float_op_fraction:.0%}" if t.float_op_count else "")
            for t in self.trials)
        best = min(scored, key=lambda t: t.delta) if scored else None
        return (f"accuracy_search: no candidate within max_delta {self._config.max_delta:.4g} "
                f"({self._config.delta_type} {self._config.metric} delta, float {self._config.metric} "
                f"{self._float_value:.6g} on {self._data.num_examples} search examples) and max_float_op_fraction "
                f"{self._config.max_float_op_fraction:.0%} in {len(self.trials)} of max_trials "
                f"{self._config.max_trials} conversions. Tried: {tried}. "
                + (f"Best delta {best.delta:+.4g} (trial {best.number}, {describe(best.options)}). " if best else
                   "No candidate could be scored. ")
                + "Nothing was published. Raise max_trials or max_float_op_fraction, calibrate on more examples "
                  "(RepresentativeDatasetGen num_examples), normalize the inputs before the model, or train "
                  "quantization-aware.")

