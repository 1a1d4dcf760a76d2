"""The gated metrics as pure numpy functions, and the degradation that gates them: what the QuantizationEvaluator
gates on (per slice, in Beam combiners) and what the Quantizer's accuracy-aware search scores its candidates with,
so both speak of the same metric, direction and delta.

Deltas are *degradations*: positive when the quantized model is worse, whatever the metric's direction. For a
higher-is-better metric (accuracy, AUC) it is ``float - quantized``; for a lower-is-better one (MSE, MAE) it is
``quantized - float``. ``delta_type='relative'`` divides it by ``|float|``.

A classifier may export logits instead of probabilities (``output_kind``): ``to_probabilities`` turns them into
what these metrics expect, for the evaluator's gate and the search's scores alike.
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
# What a classifier's single output holds. Accuracy thresholds a single column at 0.5 and AUC buckets scores in
# [0, 1], so logits are turned into probabilities (sigmoid for one column, softmax for several) for both models
# before any metric; 'probabilities' scores the output as it is. Defined here because the QuantizationEvaluator and
# the Quantizer's search both read it, and must mean the same transform by the same name.
PROBABILITIES, LOGITS = "probabilities", "logits"
OUTPUT_KINDS = (PROBABILITIES, LOGITS)


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


def to_probabilities(scores: np.ndarray, output_kind: str, *, owner: str = "QuantizationEvaluator") -> np.ndarray:
    """A classifier's ``[n, k]`` scores as probabilities: unchanged for ``'probabilities'``; for ``'logits'`` the
    sigmoid of a single column or the softmax of several, computed in float64 and returned as float32 like every
    prediction.

    Numerically stable: the sigmoid only ever takes ``exp`` of ``-|x|`` and the softmax subtracts each row's max,
    so a logit of +-1e4 gives 0 / 1, not an overflow. A row holding a NaN or an inf stays NaN in every column:
    ``sigmoid(inf)`` is a finite 1.0, and the gate must still count a non-finite logit as a non-finite prediction
    (``nonfinite``), as it does for a non-finite probability.

    ``owner`` prefixes the error of an unknown ``output_kind`` (callers validate it first, so it means a bug); its
    default keeps the evaluator's callers, which pass two arguments, raising the message they always raised.
    """
    if output_kind == PROBABILITIES:
        return scores
    if output_kind != LOGITS:
        raise ValueError(f"{owner}: unknown output_kind {output_kind!r}; use {PROBABILITIES!r} or {LOGITS!r}")
    logits = scores.astype(np.float64)
    finite = np.isfinite(logits).all(axis=1)
    safe = np.where(finite[:, None], logits, 0.0)  # no warning from exp / max on the rows set to NaN below
    if safe.shape[1] == 1:
        small = np.exp(-np.abs(safe))  # in (0, 1]: never overflows
        probabilities = np.where(safe >= 0, 1.0 / (1.0 + small), small / (1.0 + small))
    else:
        shifted = np.exp(safe - safe.max(axis=1, keepdims=True))
        probabilities = shifted / shifted.sum(axis=1, keepdims=True)
    probabilities[~finite] = np.nan
    return probabilities.astype(np.float32)
