"""The paired confidence bounds on the degradation: pure functions, checked against known values and by simulation."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from quantgate.components.quantization_evaluator import confidence
from quantgate.components.quantization_evaluator.confidence import (
    BoundedSample,
    bootstrap_bounds,
    paired_accuracy_bounds,
    row_priorities,
)
from quantgate.components.shared.task_metrics import auc_buckets


def test_newcombe_closed_form_and_symmetry() -> None:
    """All n examples right for both models: the upper bound is 1 - the Wilson lower bound of n/n, n / (n + z^2)."""
    z = NormalDist().inv_cdf(0.95)
    for n in (5, 102, 1000):
        lower, upper = paired_accuracy_bounds(n, 0, 0, 0, 0.95)
        assert upper == pytest.approx(1 - n / (n + z * z)) and lower == pytest.approx(-upper)
    # Swapping the models mirrors the interval; more flips against the quantized model move it up.
    lower, upper = paired_accuracy_bounds(80, 12, 3, 5, 0.95)
    assert paired_accuracy_bounds(80, 3, 12, 5, 0.95) == pytest.approx((-upper, -lower))
    assert lower < 0.09 < upper and paired_accuracy_bounds(80, 14, 1, 5, 0.95)[1] > upper


def test_no_flips_on_a_tiny_split_is_no_proof() -> None:
    lower, upper = paired_accuracy_bounds(5, 0, 0, 0, 0.95)
    assert upper > 0.3 and lower < 0  # 5 agreeing examples: the degradation could still be large
    big_lower, big_upper = paired_accuracy_bounds(10_000, 0, 0, 0, 0.95)
    assert 0 < big_upper < 0.001


def test_accuracy_bound_covers_the_true_degradation_at_its_level() -> None:
    """Simulated: the float model right w.p. 0.9; the quantized one wrong on 3 % of those, right on 10 % of the rest."""
    rng = np.random.default_rng(1)
    covered, trials, n = 0, 400, 200
    true_delta = 0.9 * 0.03 - 0.1 * 0.1  # P(float right, quant wrong) - P(float wrong, quant right)
    for _ in range(trials):
        float_right = rng.random(n) < 0.9
        quant_right = np.where(float_right, rng.random(n) >= 0.03, rng.random(n) < 0.1)
        both = int((float_right & quant_right).sum())
        f_only = int((float_right & ~quant_right).sum())
        q_only = int((~float_right & quant_right).sum())
        _, upper = paired_accuracy_bounds(both, f_only, q_only, n - both - f_only - q_only, 0.95)
        covered += upper >= true_delta
    assert 0.92 <= covered / trials <= 0.995


def test_bootstrap_bound_is_seeded_paired_and_scaled() -> None:
    rng = np.random.default_rng(0)
    labels = rng.normal(size=400)
    float_pred = labels + rng.normal(scale=0.5, size=400)
    quant_pred = float_pred + rng.normal(scale=0.05, size=400)
    rows = np.stack([labels, float_pred, quant_pred], axis=1)
    lower, upper = bootstrap_bounds(rows, 400, "mse", 0.95)
    assert bootstrap_bounds(rows, 400, "mse", 0.95) == (lower, upper)  # seeded
    point = np.mean((quant_pred - labels) ** 2) - np.mean((float_pred - labels) ** 2)
    assert lower < point < upper
    # Paired: the spread is that of the per-example difference, far below that of the float model's MSE alone.
    unpaired = 2 * 1.645 * np.std((float_pred - labels) ** 2) / math.sqrt(400)
    assert upper - lower < 0.2 * unpaired
    # The same sample standing for 100x more examples: a 10x narrower interval around the given point.
    lower_big, upper_big = bootstrap_bounds(rows, 40_000, "mse", 0.95, full_delta=point)
    assert (upper_big - lower_big) == pytest.approx((upper - lower) / 10, rel=1e-6)


def _pairwise_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """AUC by comparing every positive with every negative on the evaluator's score buckets (ties count half)."""
    buckets = auc_buckets(scores)
    positives, negatives = buckets[labels == 1], buckets[labels != 1]
    above = positives[:, np.newaxis] > negatives[np.newaxis, :]
    tied = positives[:, np.newaxis] == negatives[np.newaxis, :]
    return float(above.mean() + 0.5 * tied.mean())


def _metric_by_definition(metric: str, labels: np.ndarray, scores: np.ndarray) -> float:
    if metric == "auc":
        return _pairwise_auc(labels, scores)
    errors = scores - labels
    return float(np.mean(errors ** 2 if metric == "mse" else np.abs(errors)))


def _bootstrap_one_resample_at_a_time(rows: np.ndarray, metric: str, resamples: int) -> np.ndarray:
    """The textbook paired bootstrap, as a reference: one resample of the examples at a time, each metric computed
    from its definition (no code shared with the evaluator's histograms)."""
    rng = np.random.default_rng(0)
    deltas = []
    for _ in range(resamples):
        drawn = rows[rng.integers(0, len(rows), len(rows))]
        f, q = (_metric_by_definition(metric, drawn[:, 0], drawn[:, column]) for column in (1, 2))
        deltas.append(f - q if metric == "auc" else q - f)
    return np.array(deltas)


@pytest.mark.parametrize("metric", ["auc", "mse", "mae"])
def test_vectorised_bootstrap_is_the_textbook_one(metric: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The chunked, histogram-based resampling gives the bounds of one-resample-at-a-time (any chunk size)."""
    rng = np.random.default_rng(3)
    labels = (rng.random(700) < 0.4).astype(np.float64)
    float_pred = np.clip(0.3 * labels + 0.7 * rng.random(700), 0, 1)
    rows = np.stack([labels, float_pred, np.clip(float_pred + rng.normal(0, 0.03, 700), 0, 1)], axis=1)
    deltas = _bootstrap_one_resample_at_a_time(rows, metric, 300)
    expected = tuple(np.quantile(deltas, [0.05, 0.95]))
    for chunk in (700, 7000, 10**6):  # one resample per chunk, ten, all
        monkeypatch.setattr(confidence, "_DRAWS_PER_CHUNK", chunk)
        assert bootstrap_bounds(rows, len(rows), metric, 0.95, resamples=300) == pytest.approx(expected, rel=1e-9)


def test_bootstrap_auc_undefined_on_one_class() -> None:
    rows = np.array([[1.0, 0.9, 0.8]] * 50)
    assert all(math.isnan(v) for v in bootstrap_bounds(rows, 50, "auc", 0.95))


def test_bounded_sample_is_the_same_whatever_the_split_of_work() -> None:
    rows = np.random.default_rng(2).normal(size=(5000, 3))
    whole = BoundedSample(size=700)
    whole.add(rows)
    parts = [BoundedSample(size=700) for _ in range(3)]
    for i, chunk in enumerate(np.array_split(rows[::-1], 7)):
        parts[i % 3].add(chunk)
    parts[0].merge(parts[2])
    parts[1].merge(parts[0])
    one_by_one = BoundedSample(size=700)  # cut back many times on the way
    for row in rows:
        one_by_one.add(row[np.newaxis])
    assert len(whole.rows) == 700
    # The same rows in the same order (the bootstrap's draws index into them), whatever the order they came in.
    assert np.array_equal(whole.rows, parts[1].rows) and np.array_equal(whole.rows, one_by_one.rows)
    expected = rows[np.argsort(row_priorities(rows), kind="stable")[:700]]
    assert sorted(map(tuple, whole.rows)) == sorted(map(tuple, expected))
