"""Per-slice metrics of the float and the quantized model, as Beam combiners over batches of predictions.

The records flowing through Beam are ``PredictionBatch`` es (one per ``BatchElements`` batch, columns as numpy
arrays), never one Python object per example: the accumulators add whole batches with vectorized numpy. Per-example
semantics are kept: every example counts once in the overall slice and once in each slice it belongs to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
import numpy as np

from quantgate.components.quantization_evaluator.confidence import (
    BoundedSample,
    bootstrap_bounds,
    paired_accuracy_bounds,
)
from quantgate.components.shared.task_metrics import (
    AUC_BUCKETS,
    CLASSIFICATION,
    REGRESSION,
    histogram_auc,
    score_histogram,
    top1_classes,
)
from quantgate.components.shared.task_metrics import positive_scores as _positive_scores

# A slice is (feature, value); the whole split is the empty tuple.
SliceKey = tuple[str, ...]
OVERALL: SliceKey = ()
# Mean relative error divides by |float prediction|; this floor keeps near-zero predictions from exploding it.
RELATIVE_ERROR_FLOOR = 1e-6


@dataclass
class PredictionBatch:
    """A batch of examples with both models' predictions.

    ``labels`` is float64 with NaN where an example has no label; predictions are ``[n, k]``; ``slice_values`` maps
    each slicing feature to an object array of its (first) value per example as ``str``, ``None`` when absent;
    ``nonfinite_inputs`` maps each input feature with a NaN/inf value to a boolean mask of those examples.
    """

    labels: np.ndarray
    float_predictions: np.ndarray
    quant_predictions: np.ndarray
    slice_values: dict[str, np.ndarray] = field(default_factory=dict)
    nonfinite_inputs: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, rows: np.ndarray) -> PredictionBatch:
        """The sub-batch of ``rows`` (a boolean mask or indices)."""
        return PredictionBatch(self.labels[rows], self.float_predictions[rows], self.quant_predictions[rows],
                               {k: v[rows] for k, v in self.slice_values.items()},
                               {k: m for k, v in self.nonfinite_inputs.items() if (m := v[rows]).any()})


def slice_name(key: SliceKey) -> str:
    """``overall`` or ``feature=value``."""
    return "overall" if key == OVERALL else f"{key[0]}={key[1]}"


def slice_batch(batch: PredictionBatch, slicing_feature_keys: Sequence[str]) -> Iterator[tuple[SliceKey, PredictionBatch]]:
    """The whole batch under ``OVERALL``, then one sub-batch per value of each slicing feature.

    Examples without a value for a slicing feature are in no slice of that feature (TFMA does the same).
    """
    yield OVERALL, batch
    for feature in slicing_feature_keys:
        values = batch.slice_values[feature]
        present = np.flatnonzero(np.not_equal(values, None))  # elementwise in C, no per-example Python
        names, codes = np.unique(values[present], return_inverse=True)
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
        for i, value in enumerate(names):
            yield (feature, value), batch.take(present[order[bounds[i]:bounds[i + 1]]])


@dataclass
class RowCounts:
    """What happened to the examples, the same for every task. An example counts in exactly one of: scored
    (``num_examples``), a NaN/inf input (``nonfinite_input_examples``; per feature in ``nonfinite_inputs``), a
    NaN/inf prediction from either model (``nonfinite``), no usable label (``missing``)."""

    num_examples: int = 0
    missing: int = 0
    nonfinite: int = 0
    nonfinite_input_examples: int = 0
    nonfinite_inputs: dict[str, int] = field(default_factory=dict)

    def count(self, batch: PredictionBatch,
              is_label: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Adds the batch's rows to the counts; returns (the rows to score, the rows left out only because their
        label, present, is not one ``is_label`` accepts)."""
        bad_input = np.zeros(len(batch), dtype=bool)
        for name, rows in batch.nonfinite_inputs.items():
            bad_input |= rows
            self.nonfinite_inputs[name] = self.nonfinite_inputs.get(name, 0) + int(rows.sum())
        finite = np.isfinite(batch.float_predictions).all(axis=1) & np.isfinite(batch.quant_predictions).all(axis=1)
        nonfinite = ~finite & ~bad_input
        predicted = finite & ~bad_input
        usable = predicted & is_label(batch.labels)
        self.nonfinite_input_examples += int(bad_input.sum())
        self.nonfinite += int(nonfinite.sum())
        self.missing += int(len(batch) - usable.sum() - bad_input.sum() - nonfinite.sum())
        self.num_examples += int(usable.sum())
        return usable, predicted & ~np.isnan(batch.labels) & ~usable

    def merge(self, other: RowCounts) -> None:
        for name in ("num_examples", "missing", "nonfinite", "nonfinite_input_examples"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name, count in other.nonfinite_inputs.items():
            self.nonfinite_inputs[name] = self.nonfinite_inputs.get(name, 0) + count

    def output(self) -> dict[str, Any]:
        return {"num_examples": self.num_examples, "missing": self.missing, "nonfinite": self.nonfinite,
                "nonfinite_input_examples": self.nonfinite_input_examples,
                "nonfinite_inputs": dict(sorted(self.nonfinite_inputs.items()))}


def _is_class_index(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Labels that are an integer in [0, num_classes); a fractional one (0.9) is no class, not class 0."""
    with np.errstate(invalid="ignore"):
        return (labels == np.floor(labels)) & (labels >= 0) & (labels < num_classes)


@dataclass
class ClassificationAccumulator(RowCounts):
    """Counts for accuracy, per-class recall, top-1 agreement and (binary) histogram AUC of both models."""

    # Labels that are not class indices (they are in ``missing`` too).
    invalid_labels: int = 0
    float_correct: int = 0
    quant_correct: int = 0
    agree: int = 0
    # [num_classes]; None until the first batch tells the number of classes.
    support: np.ndarray | None = None
    float_hits: np.ndarray | None = None
    quant_hits: np.ndarray | None = None
    # [2 models, 2 (negative, positive), AUC_BUCKETS]; binary models only.
    auc_histogram: np.ndarray | None = None
    # The paired 2x2 table's off-diagonal (the confidence bound on accuracy reads it with the two sums above).
    float_only_correct: int = 0
    quant_only_correct: int = 0
    # [num_classes, num_classes]: label x float class, label x quantized class, float class x quantized class.
    float_confusion: np.ndarray | None = None
    quant_confusion: np.ndarray | None = None
    disagreement: np.ndarray | None = None
    # (label, float score of class 1, quantized score of class 1) of binary models, for the AUC's bootstrap bound.
    sample: BoundedSample | None = None


def _add_arrays(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    if a is None or b is None:
        return b if a is None else a
    if a.shape != b.shape:  # classes seen so far differ between workers: pad the shorter one
        size = max(len(a), len(b))
        a, b = np.pad(a, (0, size - len(a))), np.pad(b, (0, size - len(b)))
    return a + b


def _pairs(a: np.ndarray, b: np.ndarray, num_classes: int) -> np.ndarray:
    """The [num_classes, num_classes] counts of (a, b) pairs."""
    return np.bincount(a * num_classes + b, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _merge_samples(a: BoundedSample | None, b: BoundedSample | None) -> BoundedSample | None:
    if a is None or b is None:
        return b if a is None else a
    a.merge(b)
    return a


def _bounds(lower: float, upper: float, method: str, **extra: Any) -> dict[str, Any]:
    return {"lower": lower, "upper": upper, "method": method, **extra}


def _relative(bounds: tuple[float, float], float_value: float, relative: bool) -> tuple[float, float]:
    if not relative:
        return bounds
    if not float_value:
        return float("nan"), float("nan")
    return bounds[0] / abs(float_value), bounds[1] / abs(float_value)


def _sample_bounds(sample: BoundedSample, n: int, metric: str, float_value: float, quant_value: float,
                   confidence: float, relative: bool) -> dict[str, Any]:
    delta = float_value - quant_value if metric == "auc" else quant_value - float_value
    if relative:
        delta = delta / abs(float_value) if float_value else float("nan")
    lower, upper = bootstrap_bounds(sample.rows, n, metric, confidence, relative, full_delta=delta)
    return _bounds(lower, upper, "paired_bootstrap", sample=len(sample.rows))


class ClassificationMetricsCombineFn(beam.CombineFn):
    """``PredictionBatch`` es -> accuracy, per-class recall, AUC (binary), top-1 agreement of both models, the
    confusion and disagreement matrices, and paired confidence bounds on each metric's degradation (at
    ``confidence``, ``relative`` or absolute, see ``confidence.py``)."""

    def __init__(self, confidence: float = 0.95, relative: bool = False) -> None:
        super().__init__()
        self._confidence = confidence
        self._relative = relative

    def create_accumulator(self) -> ClassificationAccumulator:
        return ClassificationAccumulator()

    def add_input(self, acc: ClassificationAccumulator, batch: PredictionBatch) -> ClassificationAccumulator:
        num_classes = max(2, batch.float_predictions.shape[1])
        # A label that is not a class index of the model cannot be scored: it counts with the missing ones.
        usable, invalid = acc.count(batch, lambda labels: _is_class_index(labels, num_classes))
        acc.invalid_labels += int(invalid.sum())
        labels = batch.labels[usable].astype(np.int64)
        float_pred, quant_pred = batch.float_predictions[usable], batch.quant_predictions[usable]
        float_cls, quant_cls = top1_classes(float_pred), top1_classes(quant_pred)
        acc.float_correct += int((float_cls == labels).sum())
        acc.quant_correct += int((quant_cls == labels).sum())
        acc.agree += int((float_cls == quant_cls).sum())
        acc.float_only_correct += int(((float_cls == labels) & (quant_cls != labels)).sum())
        acc.quant_only_correct += int(((quant_cls == labels) & (float_cls != labels)).sum())
        acc.float_confusion = _add_arrays(acc.float_confusion, _pairs(labels, float_cls, num_classes))
        acc.quant_confusion = _add_arrays(acc.quant_confusion, _pairs(labels, quant_cls, num_classes))
        acc.disagreement = _add_arrays(acc.disagreement, _pairs(float_cls, quant_cls, num_classes))
        acc.support = _add_arrays(acc.support, np.bincount(labels, minlength=num_classes))
        acc.float_hits = _add_arrays(acc.float_hits, np.bincount(labels[float_cls == labels], minlength=num_classes))
        acc.quant_hits = _add_arrays(acc.quant_hits, np.bincount(labels[quant_cls == labels], minlength=num_classes))
        float_scores, quant_scores = _positive_scores(float_pred), _positive_scores(quant_pred)
        if float_scores is not None:
            histogram = np.zeros((2, 2, AUC_BUCKETS), dtype=np.int64)
            for model, scores in enumerate((float_scores, quant_scores)):
                histogram[model] = score_histogram(scores, labels)
            acc.auc_histogram = _add_arrays(acc.auc_histogram, histogram)
            acc.sample = acc.sample or BoundedSample()
            acc.sample.add(np.stack([labels.astype(np.float64), float_scores.astype(np.float64),
                                     quant_scores.astype(np.float64)], axis=1))
        return acc

    def merge_accumulators(self, accumulators: Iterator[ClassificationAccumulator]) -> ClassificationAccumulator:
        merged = ClassificationAccumulator()
        for acc in accumulators:
            merged.merge(acc)
            for name in ("invalid_labels", "float_correct", "quant_correct", "agree", "float_only_correct",
                         "quant_only_correct"):
                setattr(merged, name, getattr(merged, name) + getattr(acc, name))
            for name in ("support", "float_hits", "quant_hits", "auc_histogram", "float_confusion",
                         "quant_confusion", "disagreement"):
                setattr(merged, name, _add_arrays(getattr(merged, name), getattr(acc, name)))
            merged.sample = _merge_samples(merged.sample, acc.sample)
        return merged

    def extract_output(self, acc: ClassificationAccumulator) -> dict[str, Any]:
        n = acc.num_examples
        result: dict[str, Any] = {**acc.output(), "invalid_labels": acc.invalid_labels,
                                  "agreement": acc.agree / n if n else float("nan"), "agreement_kind": "top1"}
        for model, correct, hits, index in (("float", acc.float_correct, acc.float_hits, 0),
                                            ("quantized", acc.quant_correct, acc.quant_hits, 1)):
            values: dict[str, Any] = {"accuracy": correct / n if n else float("nan")}
            if acc.support is not None:
                values["recall"] = {str(c): (float(hits[c] / s) if s else float("nan"))
                                    for c, s in enumerate(acc.support)}
            if acc.auc_histogram is not None:
                values["auc"] = histogram_auc(acc.auc_histogram[index, 0], acc.auc_histogram[index, 1])
            result[model] = values
        both = acc.float_correct - acc.float_only_correct
        neither = n - both - acc.float_only_correct - acc.quant_only_correct
        accuracy_bounds = paired_accuracy_bounds(both, acc.float_only_correct, acc.quant_only_correct, neither,
                                                 self._confidence)
        bounds = {"accuracy": _bounds(*_relative(accuracy_bounds, result["float"]["accuracy"], self._relative),
                                      "newcombe_paired_score")}
        if acc.sample is not None:
            bounds["auc"] = _sample_bounds(acc.sample, n, "auc", result["float"]["auc"], result["quantized"]["auc"],
                                           self._confidence, self._relative)
        result["bounds"] = bounds
        result["paired"] = {"both_correct": both, "float_only_correct": acc.float_only_correct,
                            "quantized_only_correct": acc.quant_only_correct, "both_wrong": neither}
        if acc.float_confusion is not None:
            result["confusion"] = {"float": acc.float_confusion.tolist(), "quantized": acc.quant_confusion.tolist(),
                                   "disagreement": acc.disagreement.tolist()}
        return result


@dataclass
class RegressionAccumulator(RowCounts):
    """Sums for MSE, MAE and the mean relative error between the two models."""

    float_squared: float = 0.0
    quant_squared: float = 0.0
    float_absolute: float = 0.0
    quant_absolute: float = 0.0
    relative_error: float = 0.0
    sample: BoundedSample = field(default_factory=BoundedSample)


class RegressionMetricsCombineFn(beam.CombineFn):
    """``PredictionBatch`` es (one output column) -> MSE and MAE of both models, mean relative error between them,
    and paired bootstrap bounds on the degradation of MSE and MAE (see ``confidence.py``)."""

    def __init__(self, confidence: float = 0.95, relative: bool = False) -> None:
        super().__init__()
        self._confidence = confidence
        self._relative = relative

    def create_accumulator(self) -> RegressionAccumulator:
        return RegressionAccumulator()

    def add_input(self, acc: RegressionAccumulator, batch: PredictionBatch) -> RegressionAccumulator:
        if batch.float_predictions.shape[1] != 1:
            raise ValueError(f"QuantizationEvaluator: a regression metric needs one prediction per example, the "
                             f"model gives {batch.float_predictions.shape[1]}; use metric='accuracy' or 'auc'")
        usable, _ = acc.count(batch, np.isfinite)
        labels = batch.labels[usable]
        float_pred = batch.float_predictions[usable, 0].astype(np.float64)
        quant_pred = batch.quant_predictions[usable, 0].astype(np.float64)
        acc.float_squared += float(((float_pred - labels) ** 2).sum())
        acc.quant_squared += float(((quant_pred - labels) ** 2).sum())
        acc.float_absolute += float(np.abs(float_pred - labels).sum())
        acc.quant_absolute += float(np.abs(quant_pred - labels).sum())
        acc.relative_error += float((np.abs(quant_pred - float_pred)
                                     / np.maximum(np.abs(float_pred), RELATIVE_ERROR_FLOOR)).sum())
        acc.sample.add(np.stack([labels, float_pred, quant_pred], axis=1))
        return acc

    def merge_accumulators(self, accumulators: Iterator[RegressionAccumulator]) -> RegressionAccumulator:
        merged = RegressionAccumulator()
        sums = [name for name in RegressionAccumulator.__dataclass_fields__
                if name not in RowCounts.__dataclass_fields__ and name != "sample"]
        for acc in accumulators:
            merged.merge(acc)
            for name in sums:
                setattr(merged, name, getattr(merged, name) + getattr(acc, name))
            merged.sample.merge(acc.sample)
        return merged

    def extract_output(self, acc: RegressionAccumulator) -> dict[str, Any]:
        n = acc.num_examples

        def mean(total: float) -> float:
            return total / n if n else float("nan")

        result = {**acc.output(),
                  "agreement": mean(acc.relative_error), "agreement_kind": "mean_relative_error",
                  "float": {"mse": mean(acc.float_squared), "mae": mean(acc.float_absolute)},
                  "quantized": {"mse": mean(acc.quant_squared), "mae": mean(acc.quant_absolute)}}
        result["bounds"] = {metric: _sample_bounds(acc.sample, n, metric, result["float"][metric],
                                                   result["quantized"][metric], self._confidence, self._relative)
                            for metric in ("mse", "mae")}
        return result


COMBINE_FNS: Mapping[str, type[beam.CombineFn]] = {
    CLASSIFICATION: ClassificationMetricsCombineFn,
    REGRESSION: RegressionMetricsCombineFn,
}


def _slice_candidate_batch(row: tuple[int, PredictionBatch], slicing_feature_keys: Sequence[str]
                           ) -> Iterator[tuple[tuple[int, SliceKey], PredictionBatch]]:
    candidate, batch = row
    for key, part in slice_batch(batch, slicing_feature_keys):
        yield (candidate, key), part


class ComputeSliceMetrics(beam.PTransform):
    """``PCollection[(candidate index, PredictionBatch)]`` -> ``PCollection[((candidate, SliceKey), metrics)]``,
    overall and per slice, for each candidate."""

    def __init__(self, task: str, slicing_feature_keys: Sequence[str] = (), confidence: float = 0.95,
                 relative: bool = False) -> None:
        super().__init__()
        self._task = task
        self._slicing_feature_keys = tuple(slicing_feature_keys)
        self._confidence = confidence
        self._relative = relative

    def expand(self, batches: beam.PCollection) -> beam.PCollection:
        return (
            batches
            | "Slice" >> beam.FlatMap(_slice_candidate_batch, self._slicing_feature_keys)
            | "CombinePerSlice" >> beam.CombinePerKey(COMBINE_FNS[self._task](self._confidence, self._relative))
        )
