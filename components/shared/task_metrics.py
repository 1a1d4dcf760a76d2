"""The gated metrics as pure numpy functions, and the degradation that gates them: what the QuantizationEvaluator
gates on (per slice, in Beam combiners) and what the Quantizer's accuracy-aware search scores its candidates with,
so both speak of the same metric, direction and delta.

Deltas are *degradations*: positive when the quantized model is worse, whatever the metric's direction. For a
higher-is-better metric (accuracy, AUC) it is ``float - quantized``; for a lower-is-better one (MSE, MAE) it is
``quantized - float``. ``delta_type='relative'`` divides it by ``|float|``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

CLASSIFICATION = "classification"
REGRESSION = "regression"
# Binary AUC from score histograms (as TFMA does): 10k buckets bound the error well below any sane gate.
AUC_BUCKETS = 10_000


@dataclass(frozen=True)
class MetricInfo:
    """How a gated metric behaves: its task and whether a larger value is better."""

    task: str
    higher_is_better: bool


METRICS: Mapping[str, MetricInfo] = {
    "accuracy": MetricInfo(CLASSIFICATION, higher_is_better=True),
    "auc": MetricInfo(CLASSIFICATION, higher_is_better=True),
    "mse": MetricInfo(REGRESSION, higher_is_better=False),
    "mae": MetricInfo(REGRESSION, higher_is_better=False),
}
DELTA_TYPES = ("absolute", "relative")


def degradation(float_value: float, quant_value: float, info: MetricInfo, delta_type: str) -> float | None:
    """How much worse the quantized value is (``None`` when a relative delta has no float value to divide by)."""
    delta = float_value - quant_value if info.higher_is_better else quant_value - float_value
    if delta_type == "absolute":
        return delta
    if float_value == 0.0:
        return None
    return delta / abs(float_value)


def top1_classes(predictions: np.ndarray) -> np.ndarray:
    """Top-1 class per row; a single column is a sigmoid probability of class 1."""
    if predictions.shape[1] == 1:
        return (predictions[:, 0] > 0.5).astype(np.int64)
    return np.argmax(predictions, axis=1)


def positive_scores(predictions: np.ndarray) -> np.ndarray | None:
    """The score of class 1 for binary models, ``None`` for multi-class ones."""
    if predictions.shape[1] == 1:
        return predictions[:, 0]
    if predictions.shape[1] == 2:
        return predictions[:, 1]
    return None


def auc_buckets(scores: np.ndarray) -> np.ndarray:
    """The histogram bucket of each score in [0, 1]."""
    return np.clip((scores * AUC_BUCKETS).astype(np.int64), 0, AUC_BUCKETS - 1)


def score_histogram(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``[2 (negative, positive), AUC_BUCKETS]`` counts of the class-1 scores of examples labelled 0 and 1."""
    buckets = auc_buckets(scores)
    return np.stack([np.bincount(buckets[labels == cls], minlength=AUC_BUCKETS) for cls in (0, 1)])


def histogram_auc(negatives: np.ndarray, positives: np.ndarray) -> float:
    """ROC AUC from per-bucket counts (or weights) of negatives and positives (ties inside a bucket count one half)."""
    return float(histogram_aucs(negatives[np.newaxis], positives[np.newaxis])[0])


def histogram_aucs(negatives: np.ndarray, positives: np.ndarray) -> np.ndarray:
    """``histogram_auc`` of each row of ``[n, buckets]`` negatives and positives (NaN for a row without both)."""
    # In float64: counts and pair counts stay exact up to 2**53 (int64 products would wrap past ~3e9 per class).
    negatives, positives = negatives.astype(np.float64), positives.astype(np.float64)
    num_neg, num_pos = negatives.sum(axis=1), positives.sum(axis=1)
    # Pairs ranked right = all pairs - negatives at or above each positive's bucket + half the ties; with forward
    # cumulative sums and row dot products only.
    at_or_below = np.cumsum(positives, axis=1)
    pairs = (num_neg * num_pos - np.einsum("ij,ij->i", negatives, at_or_below)
             + 0.5 * np.einsum("ij,ij->i", negatives, positives))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((num_neg == 0) | (num_pos == 0), np.nan, pairs / (num_neg * num_pos))


def metric_value(metric: str, predictions: np.ndarray, labels: np.ndarray) -> float:
    """``metric`` of ``[n, k]`` predictions against ``[n]`` labels (class indices for classification), as the
    QuantizationEvaluator computes it on its overall slice; NaN when it is undefined (AUC of a multi-class model or
    of one class only)."""
    if metric == "accuracy":
        return float(np.mean(top1_classes(predictions) == labels))
    if metric == "auc":
        scores = positive_scores(predictions)
        return float("nan") if scores is None else histogram_auc(*score_histogram(scores, labels))
    errors = predictions[:, 0].astype(np.float64) - labels
    if metric == "mse":
        return float(np.mean(errors ** 2))
    if metric == "mae":
        return float(np.mean(np.abs(errors)))
    raise ValueError(f"unknown metric {metric!r}; use one of {sorted(METRICS)}")
