"""Paired confidence bounds on the degradation (float metric vs quantized metric on the same examples). Pure numpy.

Two methods, both paired (the two models are scored on the same examples, so their errors are correlated and a
bound from two independent intervals would be far too wide):

- accuracy: Newcombe's hybrid score interval for a difference of paired proportions (Newcombe 1998, "Improved
  confidence intervals for the difference between binomial proportions based on paired data", method 10), from the
  2x2 table of (float right?, quantized right?) counts. Counts merge exactly across Beam workers (no sampling), and
  unlike an exact test conditioned on the disagreements it stays honest when there are none: 0 flips on 5 examples
  is not a proof of no degradation (the upper bound is then ~0.35 at 95 %).
- AUC, MSE, MAE: a seeded paired bootstrap (the same resampled examples for both models) on a bounded, seeded
  sample of the slice's examples (``BoundedSample``: the same examples whatever the number of workers). When the
  sample holds fewer examples than the slice, the bootstrap spread is scaled by sqrt(sample / population), the
  standard-error scaling of a mean-like statistic.

A bound is one-sided at ``confidence``: the degradation is at most ``upper`` (and at least ``lower``) with that
confidence; the two together are a two-sided interval at ``2 * confidence - 1``.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

# Binary AUC from score histograms (as TFMA does): 10k buckets bound the error well below any sane gate.
AUC_BUCKETS = 10_000
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
# Examples kept per slice for the bootstrap: beyond this the bounds are far tighter than any gate anyway.
SAMPLE_SIZE = 10_000
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def histogram_auc(negatives: np.ndarray, positives: np.ndarray) -> float:
    """ROC AUC from per-bucket counts (or weights) of negatives and positives (ties inside a bucket count one half)."""
    num_neg, num_pos = negatives.sum(), positives.sum()
    if num_neg == 0 or num_pos == 0:
        return float("nan")
    positives_above = np.cumsum(positives[::-1])[::-1] - positives  # positives in strictly higher buckets
    return float((negatives * (positives_above + 0.5 * positives)).sum() / (num_neg * num_pos))


def auc_buckets(scores: np.ndarray) -> np.ndarray:
    """The histogram bucket of each score in [0, 1]."""
    return np.clip((scores * AUC_BUCKETS).astype(np.int64), 0, AUC_BUCKETS - 1)


def _wilson(successes: int, n: int, z: float) -> tuple[float, float]:
    p = successes / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n), (centre + spread) / (1 + z * z / n)


def paired_accuracy_bounds(both: int, float_only: int, quant_only: int, neither: int,
                           confidence: float) -> tuple[float, float]:
    """One-sided (lower, upper) bounds at ``confidence`` on accuracy degradation ``float - quantized``.

    ``float_only``: examples the float model gets right and the quantized one wrong; ``quant_only`` the reverse.
    Newcombe's method 10: Wilson intervals of both accuracies, combined with the phi correlation of the 2x2 table.
    """
    n = both + float_only + quant_only + neither
    if n == 0:
        return math.nan, math.nan
    z = NormalDist().inv_cdf(confidence)
    p1, p2 = (both + float_only) / n, (both + quant_only) / n
    l1, u1 = _wilson(both + float_only, n, z)
    l2, u2 = _wilson(both + quant_only, n, z)
    denominator = (both + float_only) * (quant_only + neither) * (both + quant_only) * (float_only + neither)
    phi = (both * neither - float_only * quant_only) / math.sqrt(denominator) if denominator else 0.0
    delta = p1 - p2
    below = (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2
    above = (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2
    return max(-1.0, delta - math.sqrt(max(below, 0.0))), min(1.0, delta + math.sqrt(max(above, 0.0)))


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer on uint64 arrays (wraps modulo 2**64, as intended)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return (x ^ (x >> np.uint64(31))) & _MASK64


def row_priorities(rows: np.ndarray, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """A seeded hash of each float64 row's bytes: keeping the smallest gives the same sample on any split of work."""
    bits = np.ascontiguousarray(rows, dtype=np.float64).view(np.uint64)
    with np.errstate(over="ignore"):
        h = _mix(np.full(len(rows), np.uint64(seed) ^ np.uint64(0x9E3779B97F4A7C15)))
        for column in range(bits.shape[1]):
            h = _mix(h ^ bits[:, column])
    return h


class BoundedSample:
    """At most ``size`` rows (label, float prediction, quantized prediction), the ones with the smallest seeded
    hash: a uniform sample that does not depend on batch order or on how Beam splits the work."""

    def __init__(self, size: int = SAMPLE_SIZE) -> None:
        self.size = size
        self.rows = np.empty((0, 3), dtype=np.float64)
        self.priorities = np.empty(0, dtype=np.uint64)

    def add(self, rows: np.ndarray, priorities: np.ndarray | None = None) -> None:
        if not len(rows):
            return
        priorities = row_priorities(rows) if priorities is None else priorities
        if len(self.rows) >= self.size:  # full: only rows hashing at or below the largest kept one can enter
            keep = priorities <= self.priorities.max()
            rows, priorities = rows[keep], priorities[keep]
        self.rows = np.concatenate([self.rows, rows])
        self.priorities = np.concatenate([self.priorities, priorities])
        if len(self.rows) > self.size:
            # Ties are broken by the rows' own content (lexsort), so the kept set is order-independent.
            order = np.lexsort((*self.rows.T[::-1], self.priorities))[: self.size]
            self.rows, self.priorities = self.rows[order], self.priorities[order]

    def merge(self, other: BoundedSample) -> None:
        self.add(other.rows, other.priorities)


def _metric(metric: str, labels: np.ndarray, predictions: np.ndarray, weights: np.ndarray) -> float:
    if metric == "mse":
        return float(np.dot(weights, (predictions - labels) ** 2) / weights.sum())
    if metric == "mae":
        return float(np.dot(weights, np.abs(predictions - labels)) / weights.sum())
    buckets = auc_buckets(predictions)
    positive = labels == 1
    return histogram_auc(np.bincount(buckets[~positive], weights[~positive], AUC_BUCKETS),
                         np.bincount(buckets[positive], weights[positive], AUC_BUCKETS))


def _degradation(metric: str, float_value: float, quant_value: float, relative: bool) -> float:
    delta = float_value - quant_value if metric == "auc" else quant_value - float_value
    if not relative:
        return delta
    return delta / abs(float_value) if float_value else math.nan


def bootstrap_bounds(rows: np.ndarray, population: int, metric: str, confidence: float, relative: bool = False,
                     full_delta: float | None = None, resamples: int = BOOTSTRAP_RESAMPLES,
                     seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """One-sided (lower, upper) bounds at ``confidence`` on the degradation of ``metric`` (``auc``, ``mse``,
    ``mae``) from ``rows`` (label, float prediction, quantized prediction), a sample of ``population`` examples
    whose degradation is ``full_delta`` (default: the sample's own).

    Paired percentile bootstrap, seeded; NaN when the sample cannot define the metric (AUC on one class)."""
    k = len(rows)
    if k == 0 or population < k:
        return math.nan, math.nan
    labels, float_pred, quant_pred = rows[:, 0], rows[:, 1], rows[:, 2]
    ones = np.ones(k)
    point = _degradation(metric, _metric(metric, labels, float_pred, ones), _metric(metric, labels, quant_pred, ones),
                         relative)
    if not math.isfinite(point):
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    deltas = np.empty(resamples)
    for i in range(resamples):
        weights = np.bincount(rng.integers(0, k, k), minlength=k).astype(np.float64)
        deltas[i] = _degradation(metric, _metric(metric, labels, float_pred, weights),
                                 _metric(metric, labels, quant_pred, weights), relative)
    deltas = deltas[np.isfinite(deltas)]
    if len(deltas) < resamples // 2:  # most resamples undefined (e.g. a handful of positives): no honest bound
        return math.nan, math.nan
    scale = math.sqrt(k / population)
    centre = point if full_delta is None else full_delta
    low, high = np.quantile(deltas, [1 - confidence, confidence])
    return centre + scale * (float(low) - point), centre + scale * (float(high) - point)
