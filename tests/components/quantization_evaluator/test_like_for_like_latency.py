"""Like-for-like latency: the Quantizer keeps the float32 TFLite model of the converted function in its artifact, and
the QuantizationEvaluator times it beside the quantized model (same interpreter, same threads), so metrics.json, the
report and the end-of-run summary quote the int8 kernel against the float32 TFLite kernel, and still against the float
SavedModel's call. Real conversions and a real evaluator run on the golden penguin artifacts (tests/components)."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from quantgate.components.quantization_evaluator.inference import (
    LATENCY_MIN_CALLS,
    float_tflite_reference_path,
    measure_latency,
)
from quantgate.components.quantization_evaluator.metrics_json import (
    LIKE_FOR_LIKE,
    SAVED_MODEL,
    latency_comparison,
)
from quantgate.components.quantizer import float_reference
from quantgate.components.shared import properties
from quantgate.components.shared.model_runners import SavedModelRunner, TFLiteRunner
from quantgate.components.shared.signature_inputs import examples_to_inputs
from quantgate.pipelines.lineage import format_summary


def _read_json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def test_the_quantizer_writes_the_float32_tflite_of_the_same_function(penguin_quantized) -> None:
    path = os.path.join(penguin_quantized.quantized_model.uri, properties.FLOAT_TFLITE_FILENAME)
    assert float_tflite_reference_path(penguin_quantized.tflite_path) == path
    with open(path, "rb") as f:
        written = f.read()
    # The same conversion, redone here: the unoptimized float32 TFLite of the signature the Quantizer converted.
    assert written == float_reference.float_tflite(penguin_quantized.saved_model_dir, penguin_quantized.signature_name)
    report = _read_json(os.path.join(penguin_quantized.quantized_model.uri, properties.QUANTIZATION_REPORT_FILENAME))
    assert report["sizes"]["float_tflite_bytes"] == len(written)
    assert report["sizes"]["float_tflite_file"] == properties.FLOAT_TFLITE_FILENAME
    # Not in the serving folder: the stock Pusher and TFMA read that one, and the reference is not what is served.
    assert sorted(os.listdir(os.path.dirname(penguin_quantized.tflite_path))) == ["model.tflite", "tflite"]
    # Float in, float out, no quantized tensor: what it is timed as.
    runner = TFLiteRunner(path)
    assert all(d["dtype"].__name__ == "float32" for d in runner.input_details.values())


def test_measure_latency_times_the_reference_beside_a_tflite_model_only(penguin_quantized, tmp_path) -> None:
    inputs = examples_to_inputs(penguin_quantized.eval_records[:4], penguin_quantized.specs, source="eval")
    quantized = measure_latency(TFLiteRunner(penguin_quantized.tflite_path), inputs)
    reference = quantized.float_tflite
    assert reference is not None and reference.float_tflite is None
    assert reference.calls >= LATENCY_MIN_CALLS and 0 < reference.p50_ms <= reference.p95_ms
    assert 0 < reference.kernel_p50_ms <= reference.kernel_p95_ms
    saved_model = measure_latency(SavedModelRunner(penguin_quantized.saved_model_dir, penguin_quantized.signature_name),
                                  inputs)
    assert saved_model.float_tflite is None
    # A model from elsewhere (no reference beside it): timed alone, nothing invented.
    alone = tmp_path / "elsewhere" / properties.SERVING_DIR
    alone.mkdir(parents=True)
    shutil.copy(penguin_quantized.tflite_path, alone / properties.TFLITE_FILENAME)
    assert measure_latency(TFLiteRunner(str(alone / properties.TFLITE_FILENAME)), inputs).float_tflite is None


def test_latency_comparison_is_kernel_against_kernel_when_both_have_one() -> None:
    quantized = {"p50_ms": 0.03, "kernel_p50_ms": 0.01}
    kernel = latency_comparison({"p50_ms": 0.05, "kernel_p50_ms": 0.04}, quantized, "float32 TFLite")
    assert kernel["measure"] == "kernel" and kernel["baseline_p50_ms"] == 0.04 and kernel["quantized_p50_ms"] == 0.01
    assert kernel["speedup"] == pytest.approx(4.0) and kernel["ratio"] == pytest.approx(0.25)
    end_to_end = latency_comparison({"p50_ms": 0.06, "kernel_p50_ms": None}, quantized, "x")
    assert end_to_end["measure"] == "end_to_end" and end_to_end["speedup"] == pytest.approx(2.0)
    assert latency_comparison(None, quantized, "x") is None


def test_metrics_json_and_the_report_carry_both_latency_comparisons(penguin_blessed) -> None:
    metrics = _read_json(os.path.join(penguin_blessed.evaluation.uri, properties.METRICS_FILENAME))
    latency = metrics["latency_ms"]
    assert set(latency) >= {"float", "quantized", "float_tflite", "comparisons"}
    assert 0 < latency["float_tflite"]["kernel_p50_ms"] <= latency["float_tflite"]["kernel_p95_ms"]
    assert "float_tflite" not in latency["quantized"]  # the reference is its own entry, not nested
    like, saved = latency["comparisons"][LIKE_FOR_LIKE], latency["comparisons"][SAVED_MODEL]
    assert like["measure"] == saved["measure"] == "kernel"
    assert like["baseline_p50_ms"] == latency["float_tflite"]["kernel_p50_ms"]
    assert saved["baseline_p50_ms"] == latency["float"]["kernel_p50_ms"]
    for comparison in (like, saved):
        assert comparison["quantized_p50_ms"] == latency["quantized"]["kernel_p50_ms"]
        assert comparison["speedup"] == pytest.approx(comparison["baseline_p50_ms"] / comparison["quantized_p50_ms"])
        assert comparison["ratio"] == pytest.approx(1 / comparison["speedup"])
    assert "same interpreter" in like["baseline"] and "SavedModel" in saved["baseline"]
    with open(os.path.join(penguin_blessed.evaluation.uri, properties.EVALUATION_REPORT_FILENAME)) as f:
        page = f.read()
    assert "vs float32 TFLite of the same function</b> (same interpreter, same threads, kernel p50)" in page
    assert "vs the float SavedModel call (kernel p50" in page


def _summary(**overrides: object) -> dict:
    summary = {"run_id": "r1", "metric": "accuracy", "quantization_mode": "int8", "float_metric": 0.975,
               "quantized_metric": 0.977, "delta": -0.0016, "delta_upper": 0.0031, "confidence": 0.95,
               "delta_bound": "point", "threshold": 0.02, "float_size_bytes": 1826525,
               "quantized_size_bytes": 159192, "float_tflite_size_bytes": 609464,
               "latency_comparisons": {
                   LIKE_FOR_LIKE: {"measure": "kernel", "baseline_p50_ms": 0.0245, "quantized_p50_ms": 0.0077},
                   SAVED_MODEL: {"measure": "kernel", "baseline_p50_ms": 0.469, "quantized_p50_ms": 0.0077}},
               "candidates": [], "verdict": "blessed", "pushed": True, "pushed_destination": "/srv/1",
               "reason": "pushed", "report_path": None, "unfinished": []}
    return {**summary, **overrides}


def test_the_summary_quotes_size_latency_and_the_delta_bound_like_for_like() -> None:
    rows = {line.split(" | ")[0].strip(): line.split(" | ", 1)[1] for line in format_summary(_summary()).splitlines()
            if " | " in line}
    assert rows["int8 vs float32 TFLite size"] == "159,192 / 609,464 bytes: 3.83x smaller"
    assert rows["kernel latency int8 vs float32 TFLite"] == (
        "0.0077 / 0.0245 ms p50: 3.18x faster (same interpreter, same threads)")
    assert rows["kernel latency int8 vs float SavedModel"] == "0.0077 / 0.4690 ms p50: 60.91x faster"
    assert rows["delta 95% upper bound"] == "0.0031 (the gate compares the point delta)"
    assert list(rows).index("delta") < list(rows).index("delta 95% upper bound") < list(rows).index("threshold")


def test_the_summary_leaves_out_what_an_older_run_did_not_record() -> None:
    table = format_summary(_summary(float_tflite_size_bytes=None, latency_comparisons=None, delta_upper=None))
    assert "float32 TFLite" not in table and "upper bound" not in table and "SavedModel" not in table
