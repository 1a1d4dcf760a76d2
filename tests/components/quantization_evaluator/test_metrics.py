"""Metric combiners on small in-memory Beam pipelines, checked against per-example loops and scikit-learn."""

from __future__ import annotations

import apache_beam as beam
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from quantgate.components.quantization_evaluator.gate import CLASSIFICATION, REGRESSION
from quantgate.components.quantization_evaluator.metrics import (
    OVERALL,
    ClassificationMetricsCombineFn,
    ComputeSliceMetrics,
    PredictionBatch,
    histogram_auc,
    slice_batch,
    slice_name,
)


def _batches(labels: np.ndarray, float_pred: np.ndarray, quant_pred: np.ndarray, islands: np.ndarray,
             size: int = 7) -> list[PredictionBatch]:
    return [PredictionBatch(labels[i:i + size], float_pred[i:i + size], quant_pred[i:i + size],
                            {"island": islands[i:i + size]}) for i in range(0, len(labels), size)]


# The in-process DirectRunner pickles functions by reference: a module-level dict collects the output.
_RESULTS: dict = {}


def _collect(row: tuple) -> None:
    (candidate, key), values = row
    assert candidate == 0
    _RESULTS[key] = values


def _run(batches: list[PredictionBatch], task: str, slicing: tuple[str, ...] = ()) -> dict:
    _RESULTS.clear()
    with beam.Pipeline(runner="DirectRunner") as pipeline:
        _ = pipeline | beam.Create([(0, b) for b in batches], reshuffle=False) | ComputeSliceMetrics(task, slicing) | beam.Map(_collect)
    return dict(_RESULTS)


@pytest.fixture(scope="module")
def three_classes() -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    n = 50
    labels = rng.integers(0, 3, n).astype(np.float64)
    float_pred = rng.dirichlet(np.ones(3), n).astype(np.float32)
    quant_pred = np.clip(float_pred + rng.normal(0, 0.2, float_pred.shape), 0, 1).astype(np.float32)
    islands = np.array([["Biscoe", "Dream", None][i % 3] for i in range(n)], dtype=object)
    return labels, float_pred, quant_pred, islands


def test_classification_overall_and_slices_match_a_per_example_loop(three_classes) -> None:
    labels, float_pred, quant_pred, islands = three_classes
    results = _run(_batches(*three_classes), CLASSIFICATION, ("island",))
    # Examples without an island are in the overall slice only.
    assert set(results) == {OVERALL, ("island", "Biscoe"), ("island", "Dream")}
    for key, rows in ((OVERALL, np.ones(len(labels), bool)), (("island", "Dream"), islands == "Dream")):
        got = results[key]
        lab, fp, qp = labels[rows].astype(int), float_pred[rows], quant_pred[rows]
        assert got["num_examples"] == rows.sum()
        assert got["float"]["accuracy"] == pytest.approx(np.mean(fp.argmax(1) == lab))
        assert got["quantized"]["accuracy"] == pytest.approx(np.mean(qp.argmax(1) == lab))
        assert got["agreement"] == pytest.approx(np.mean(fp.argmax(1) == qp.argmax(1)))
        for cls in range(3):
            assert got["quantized"]["recall"][str(cls)] == pytest.approx(np.mean(qp[lab == cls].argmax(1) == cls))
        assert "auc" not in got["float"]  # multi-class: no binary AUC
    assert results[OVERALL]["agreement"] < 1.0  # the noise flipped some predictions: the check can fail


def test_missing_labels_and_nonfinite_predictions_are_counted_not_scored(three_classes) -> None:
    labels, float_pred, quant_pred, islands = (a.copy() for a in three_classes)
    labels[[0, 1]] = np.nan
    labels[2] = 7  # not a class of a 3-class model
    quant_pred[3, 1] = np.nan
    float_pred[4, 0] = np.inf
    got = _run(_batches(labels, float_pred, quant_pred, islands), CLASSIFICATION)[OVERALL]
    assert (got["missing"], got["nonfinite"], got["num_examples"]) == (3, 2, 45)
    assert got["invalid_labels"] == 1
    assert np.isfinite(got["quantized"]["accuracy"])


def test_fractional_labels_are_not_truncated_to_classes(three_classes) -> None:
    labels, float_pred, quant_pred, islands = (a.copy() for a in three_classes)
    # Each fractional label sits just under the class both models predict: truncated, it would score as correct.
    rows = np.arange(6)
    labels[rows] = float_pred[rows].argmax(1) + 0.9
    labels[6], labels[7] = -1.0, 2.5
    got = _run(_batches(labels, float_pred, quant_pred, islands), CLASSIFICATION)[OVERALL]
    assert (got["missing"], got["invalid_labels"], got["num_examples"]) == (8, 8, 42)
    lab, fp = three_classes[0][8:].astype(int), float_pred[8:]
    assert got["float"]["accuracy"] == pytest.approx(np.mean(fp.argmax(1) == lab))


def test_nonfinite_inputs_are_counted_per_feature_and_not_scored(three_classes) -> None:
    labels, float_pred, quant_pred, islands = three_classes
    bill = np.zeros(len(labels), dtype=bool)
    bill[[0, 1, 3]] = True  # islands Biscoe, Dream, Biscoe
    mass = np.zeros(len(labels), dtype=bool)
    mass[[3, 4]] = True  # Biscoe, Dream
    batches = [PredictionBatch(b.labels, b.float_predictions, b.quant_predictions, b.slice_values,
                               {name: mask[i:i + 7] for name, mask in (("bill_length_mm", bill), ("body_mass_g", mass))
                                if mask[i:i + 7].any()})
               for i, b in zip(range(0, len(labels), 7), _batches(*three_classes), strict=True)]
    results = _run(batches, CLASSIFICATION, ("island",))
    got = results[OVERALL]
    assert got["nonfinite_inputs"] == {"bill_length_mm": 3, "body_mass_g": 2}
    assert (got["nonfinite_input_examples"], got["num_examples"], got["missing"], got["nonfinite"]) == (4, 46, 0, 0)
    kept = ~(bill | mass)
    assert got["float"]["accuracy"] == pytest.approx(np.mean(float_pred[kept].argmax(1) == labels[kept]))
    assert got["quantized"]["accuracy"] == pytest.approx(np.mean(quant_pred[kept].argmax(1) == labels[kept]))
    assert results[("island", "Biscoe")]["nonfinite_inputs"] == {"bill_length_mm": 2, "body_mass_g": 1}
    assert results[("island", "Dream")]["nonfinite_inputs"] == {"bill_length_mm": 1, "body_mass_g": 1}
    assert results[("island", "Dream")]["nonfinite_input_examples"] == 2


def test_regression_counts_nonfinite_inputs_too() -> None:
    labels = np.arange(4.0)
    pred = labels[:, None].astype(np.float32)
    batch = PredictionBatch(labels, pred, pred, {}, {"x": np.array([False, True, False, False])})
    got = _run([batch], REGRESSION)[OVERALL]
    assert (got["num_examples"], got["nonfinite_input_examples"], got["nonfinite_inputs"]) == (3, 1, {"x": 1})


def test_binary_auc_matches_sklearn() -> None:
    rng = np.random.default_rng(1)
    n = 400
    labels = rng.integers(0, 2, n).astype(np.float64)
    score = np.clip(labels * 0.3 + rng.normal(0.35, 0.25, n), 0, 1)
    float_pred = np.stack([1 - score, score], axis=1).astype(np.float32)
    quant_pred = np.round(float_pred * 16) / 16  # coarse, like a quantized output
    got = _run(_batches(labels, float_pred, quant_pred, np.full(n, None, dtype=object), size=64),
               CLASSIFICATION)[OVERALL]
    assert got["float"]["auc"] == pytest.approx(roc_auc_score(labels, float_pred[:, 1]), abs=1e-3)
    assert got["quantized"]["auc"] == pytest.approx(roc_auc_score(labels, quant_pred[:, 1]), abs=1e-3)
    assert got["float"]["auc"] != pytest.approx(got["quantized"]["auc"], abs=1e-4)


def test_histogram_auc_edge_cases() -> None:
    assert histogram_auc(np.array([1, 0]), np.array([0, 1])) == 1.0
    assert histogram_auc(np.array([0, 1]), np.array([1, 0])) == 0.0
    assert histogram_auc(np.array([2, 0]), np.array([2, 0])) == 0.5  # all tied
    assert np.isnan(histogram_auc(np.array([3, 1]), np.array([0, 0])))


def test_regression_metrics_and_relative_error() -> None:
    rng = np.random.default_rng(2)
    n = 30
    labels = rng.normal(10, 3, n)
    float_pred = (labels + rng.normal(0, 1, n))[:, None].astype(np.float32)
    quant_pred = (float_pred * 1.05).astype(np.float32)
    got = _run(_batches(labels, float_pred, quant_pred, np.full(n, None, dtype=object)), REGRESSION)[OVERALL]
    f, q = float_pred[:, 0].astype(np.float64), quant_pred[:, 0].astype(np.float64)
    assert got["float"]["mse"] == pytest.approx(np.mean((f - labels) ** 2))
    assert got["quantized"]["mae"] == pytest.approx(np.mean(np.abs(q - labels)))
    assert got["agreement"] == pytest.approx(0.05, rel=1e-4)
    assert got["agreement_kind"] == "mean_relative_error"


def test_regression_refuses_multi_column_predictions(three_classes) -> None:
    with pytest.raises(Exception, match="regression metric needs one prediction per example"):
        _run(_batches(*three_classes), REGRESSION)


def test_merge_pads_accumulators_that_saw_fewer_classes() -> None:
    fn = ClassificationMetricsCombineFn()
    # A sigmoid model: one column, two classes.
    a = fn.add_input(fn.create_accumulator(), PredictionBatch(np.array([0.0, 1.0]), np.array([[0.2], [0.9]]),
                                                              np.array([[0.6], [0.9]])))
    merged = fn.merge_accumulators([fn.create_accumulator(), a])
    out = fn.extract_output(merged)
    assert out["float"]["accuracy"] == 1.0 and out["quantized"]["accuracy"] == 0.5 and out["agreement"] == 0.5
    assert out["float"]["auc"] == 1.0


def test_slice_batch_and_names() -> None:
    batch = PredictionBatch(np.arange(4.0), np.zeros((4, 2)), np.zeros((4, 2)),
                            {"island": np.array(["a", None, "b", "a"], dtype=object)})
    parts = {key: len(part) for key, part in slice_batch(batch, ["island"])}
    assert parts == {OVERALL: 4, ("island", "a"): 2, ("island", "b"): 1}
    assert [slice_name(k) for k in parts] == ["overall", "island=a", "island=b"]
