"""Fixtures for QuantizationEvaluator's tests. The golden penguin artifacts (``penguin_quantized``) and the helper that
runs the real executor on them (``run_evaluator``) are in ../conftest.py, shared with the pushers' tests; here, the
synthetic metrics of the report tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest


def synthetic_report_metrics(blessed: bool) -> dict:
    """A metrics.json dict of one int8 candidate of a 3-class classifier, sliced by island, with every section."""
    def entry(float_acc: float, quant_acc: float | None, n: int) -> dict:
        delta = None if quant_acc is None else float_acc - quant_acc
        bounds = {"delta": delta, "lower": None if delta is None else delta - 0.02,
                  "upper": None if delta is None else delta + 0.03, "method": "newcombe_paired_score"}
        return {"num_examples": n, "float": {"accuracy": float_acc, "recall": {"0": 1.0, "1": 0.9, "2": 0.95}},
                "quantized": {"accuracy": quant_acc, "recall": {"0": 1.0, "1": 0.85, "2": 0.95}},
                "delta": delta, "delta_upper": bounds["upper"], "deltas": {"accuracy": bounds}, "agreement": 0.97,
                "confusion": {"float": [[40, 0, 0], [1, 30, 2], [0, 1, 26]],
                              "quantized": [[40, 0, 0], [2, 29, 2], [0, 1, 26]],
                              "disagreement": [[41, 1, 0], [0, 30, 0], [0, 0, 28]]}}

    return {
        "metric": "accuracy", "task": "classification", "split": "eval", "label_key": "species",
        "overall": entry(0.99, 0.98 if blessed else 0.5, 100),
        "slices": [{"feature": "island", "value": "Biscoe", **entry(1.0, 0.99, 50)},
                   {"feature": "island", "value": "<Dream>", **entry(0.97, None, 40)}],
        "skipped_slices": [{"feature": "island", "value": "Torgersen", "num_examples": 10}],
        "models": {"float": {"uri": "/m/float"},
                   "quantized": {"uri": "/m/quant", "id": 7, "quantization_mode": "int8", "evaluated_sha256": "ab12",
                                 "quantization_report": QUANTIZATION_REPORT}},
        "run": {"pipeline_name": "penguin", "run_id": "2026-12-01T20:00:00"},
        "latency_host": {"cpu": "Test CPU @ 2 GHz", "logical_cpus": 2, "usable_cpus": 2, "tflite_threads": None,
                         "note": "measured on the evaluating host, not the target device"},
        "sizes": {"float_bytes": None, "quantized_bytes": 6312, "float_tflite_bytes": 6316},
        "latency_ms": {"float": {"p50_ms": 1.2, "p95_ms": 3.0, "calls": 300},
                       "quantized": {"p50_ms": 0.2, "p95_ms": 0.3, "calls": 300}},
        "thresholds": {"metric": "accuracy", "max_delta": 0.01, "delta_type": "absolute", "min_slice_size": 30,
                       "max_slice_delta": 0.05, "min_agreement": None, "max_model_bytes": None,
                       "max_latency_ms": None, "extra_metrics": [], "delta_bound": "point", "confidence": 0.95,
                       "min_examples": 30},
        "verdict": {"blessed": blessed, "delta": 0.01 if blessed else 0.49, "threshold": 0.01, "delta_upper": 0.04,
                    "reason": "blessed: every threshold passed" if blessed else "not blessed: delta 0.49 > 0.01",
                    "reasons": [] if blessed else ["delta 0.49 > 0.01"],
                    "warnings": ["one flipped prediction moves the absolute accuracy delta by 0.0101"]},
    }


QUANTIZATION_REPORT = {
    "mode": "int8", "engine": "tflite_converter", "signature_name": "serving_features", "io_dtype": "int8",
    "representative_dataset": {"num_examples": 200, "uri": "/rep/4"}, "denylisted_ops": [],
    "allow_float_fallback": False, "sha256": "ab12",
    "sizes": {"float_tflite_bytes": 6316, "ratio_to_float_tflite": 0.9994, "tflite_bytes": 6312},
    "ops": {"by_dtype": {"int8": 13}, "ops": {"FULLY_CONNECTED": {"int8": 3}, "SOFTMAX": {"int8": 1}}},
    "input_steps": {"latitude": {"coarse": True, "step": 0.165, "std": 0.05, "step_over_std": 3.3,
                                 "distinct_levels": 3},
                    "bill_depth_mm": {"coarse": False, "step": 0.08}},
    "warnings": ["input latitude is coarse: normalize it before the model input"],
}


@pytest.fixture(scope="session")
def report_metrics() -> Callable[[bool], dict]:
    """``report_metrics(blessed)``: a fresh synthetic metrics.json dict for report tests (no pipeline)."""
    return synthetic_report_metrics
