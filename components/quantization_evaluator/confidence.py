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
from collections.abc import Callable, Iterator
from statistics import NormalDist

import numpy as np

from quantgate.components.shared.task_metrics import auc_buckets, histogram_aucs, metric_value

BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
# Examples kept per slice for the bootstrap: beyond this the bounds are far tighter than any gate anyway.
SAMPLE_SIZE = 10_000
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)
# Resampled indices drawn at once (int64, 400 kB: kept in cache, measured fastest), whatever the sample size.
_DRAWS_PER_CHUNK = 50_000


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
    hash: a uniform sample that does not depend on batch order or on how Beam splits the work.

    Rows are buffered and cut back to ``size`` only when the buffer passes twice that (one sort per ``size`` rows
    added, not one per batch); ``rows`` is always the cut, in (hash, content) order, so it is the same array
    whatever the order the rows came in."""

    def __init__(self, size: int = SAMPLE_SIZE) -> None:
        self.size = size
        self._chunks: list[tuple[np.ndarray, np.ndarray]] = []
        self._buffered = 0
        self._cut = True
        # Once ``size`` rows are kept, a row hashing above the largest kept hash can never enter.
        self._cutoff: np.uint64 | None = None

    def add(self, rows: np.ndarray, priorities: np.ndarray | None = None) -> None:
        """Offers ``rows`` (kept as given, not copied: the caller must not change them afterwards)."""
        if not len(rows):
            return
        priorities = row_priorities(rows) if priorities is None else priorities
        if self._cutoff is not None:
            keep = priorities <= self._cutoff
            rows, priorities = rows[keep], priorities[keep]
            if not len(rows):
                return
        self._chunks.append((rows, priorities))
        self._buffered += len(rows)
        self._cut = False
        if self._buffered > 2 * self.size:
            self._cut_back()

    def _cut_back(self) -> None:
        if self._cut:
            return
        rows = np.concatenate([r for r, _ in self._chunks])  # not cut: something was added since the last cut
        priorities = np.concatenate([p for _, p in self._chunks])
        # Ties are broken by the rows' own content (lexsort), so the kept set is order-independent.
        order = np.lexsort((*rows.T[::-1], priorities))[: self.size]
        rows, priorities = rows[order], priorities[order]
        if len(rows) >= self.size:
            self._cutoff = priorities[-1]
        self._chunks, self._buffered, self._cut = [(rows, priorities)], len(rows), True

    @property
    def rows(self) -> np.ndarray:
        self._cut_back()
        return self._chunks[0][0] if self._chunks else np.empty((0, 3))

    @property
    def priorities(self) -> np.ndarray:
        self._cut_back()
        return self._chunks[0][1] if self._chunks else np.empty(0, dtype=np.uint64)

    def merge(self, other: BoundedSample) -> None:
        self.add(other.rows, other.priorities)


def _resampled(metric: str, labels: np.ndarray, predictions: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A function of ``draws`` (``[resamples, k]`` indices into the k examples): ``metric`` on each resample."""
    if metric in ("mse", "mae"):
        errors = predictions - labels
        per_example = errors ** 2 if metric == "mse" else np.abs(errors)
        return lambda draws: per_example[draws].mean(axis=1)
    # Histograms over the occupied buckets only: the AUC is the same (empty buckets add nothing) and the work per
    # resample is O(k), not O(AUC_BUCKETS).
    _, dense = np.unique(auc_buckets(predictions), return_inverse=True)
    occupied = int(dense.max()) + 1
    keys = np.where(labels == 1, occupied + dense, dense)  # negatives' buckets first, then positives'

    def aucs(draws: np.ndarray) -> np.ndarray:
        rows = len(draws)
        offsets = (np.arange(rows) * 2 * occupied)[:, np.newaxis]
        counts = np.bincount((keys[draws] + offsets).ravel(), minlength=rows * 2 * occupied)
        counts = counts.reshape(rows, 2, occupied)
        return histogram_aucs(counts[:, 0], counts[:, 1])

    return aucs


def _degradation(metric: str, float_value: np.ndarray | float, quant_value: np.ndarray | float,
                 relative: bool) -> np.ndarray:
    delta = np.subtract(float_value, quant_value) if metric == "auc" else np.subtract(quant_value, float_value)
    if not relative:
        return delta
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.not_equal(float_value, 0), delta / np.abs(float_value), np.nan)


def _draws(rng: np.random.Generator, k: int, resamples: int) -> Iterator[np.ndarray]:
    """Resampled indices, ``[chunk, k]`` at a time (memory bounded); the same draws as one resample per call."""
    chunk = max(1, _DRAWS_PER_CHUNK // k)
    for start in range(0, resamples, chunk):
        yield rng.integers(0, k, (min(chunk, resamples - start), k))


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
    point = float(_degradation(metric, metric_value(metric, float_pred[:, np.newaxis], labels),
                               metric_value(metric, quant_pred[:, np.newaxis], labels), relative))
    if not math.isfinite(point):
        return math.nan, math.nan
    float_metric, quant_metric = _resampled(metric, labels, float_pred), _resampled(metric, labels, quant_pred)
    rng = np.random.default_rng(seed)
    deltas = np.concatenate([_degradation(metric, float_metric(draws), quant_metric(draws), relative)
                             for draws in _draws(rng, k, resamples)])
    deltas = deltas[np.isfinite(deltas)]
    if len(deltas) < resamples // 2:  # most resamples undefined (e.g. a handful of positives): no honest bound
        return math.nan, math.nan
    scale = math.sqrt(k / population)
    centre = point if full_delta is None else full_delta
    low, high = np.quantile(deltas, [1 - confidence, confidence])
    return centre + scale * (float(low) - point), centre + scale * (float(high) - point)
