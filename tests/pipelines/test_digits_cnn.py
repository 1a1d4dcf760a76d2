"""The default demo, ``digits-cnn``: one small real run (module-scoped) of the CNN over scikit-learn's digits, where
int8 pays: the model is several times smaller than the float32 TFLite of the same function, within the accuracy
gate, blessed and pushed, and the summary quotes the like-for-like size and latency."""

from __future__ import annotations

import json
import os

import pytest

from quantgate.components.quantizer import float_reference
from quantgate.components.shared import properties
from quantgate.pipelines import kinds, lineage
from quantgate.pipelines.digits_cnn import DIGITS_CNN_GATE
from quantgate.pipelines.models.digits_cnn.digits_cnn_trainer import DENSE_SIGNATURE

from ..conftest import DemoRun
from .conftest import local_run

pytestmark = pytest.mark.pipeline  # runs a pipeline (tests/conftest.py's tiers)

# Small: 150 steps of 32 (~4 epochs of the ~1,200 training digits) reach ~0.97 accuracy on the ~600 eval digits.
RUN_KWARGS = {"train_steps": 150, "eval_steps": 5}
MIN_SIZE_GAIN = 3.5  # float32 TFLite bytes over int8 bytes


@pytest.fixture(scope="module")
def digits_cnn_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    return local_run(tmp_path_factory, "digits-cnn", **RUN_KWARGS)


def _json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def test_digits_cnn_is_the_default_pipeline() -> None:
    assert kinds.DEFAULT_PIPELINE == "digits-cnn" and "penguin" in kinds.PIPELINES


def test_int8_is_several_times_smaller_than_the_float32_tflite_and_blessed(digits_cnn_run) -> None:
    quantized = digits_cnn_run.output("Quantizer", "quantized_model")
    report = _json(os.path.join(quantized.uri, properties.QUANTIZATION_REPORT_FILENAME))
    sizes = report["sizes"]
    assert sizes["float_tflite_bytes"] / sizes["tflite_bytes"] >= MIN_SIZE_GAIN
    assert sizes["ratio_to_float_tflite"] <= 1 / MIN_SIZE_GAIN
    assert report["ops"]["float_op_count"] == 0 and report["io_dtype"] == "int8"
    # The float32 TFLite reference in the artifact is the conversion of the function the Quantizer converted.
    trainer_model = digits_cnn_run.output("Trainer", "model")
    with open(os.path.join(quantized.uri, properties.FLOAT_TFLITE_FILENAME), "rb") as f:
        assert f.read() == float_reference.float_tflite(os.path.join(trainer_model.uri, properties.SERVING_DIR),
                                                        DENSE_SIGNATURE)
    blessing = digits_cnn_run.output("QuantizationEvaluator", "blessing")
    assert blessing.custom_properties[properties.BLESSED].int_value == 1
    assert digits_cnn_run.output("QuantizedModelPusher", "pushed_model").custom_properties[properties.PUSHED].int_value == 1


def test_metrics_json_gates_accuracy_and_quotes_both_latency_comparisons(digits_cnn_run) -> None:
    evaluation = digits_cnn_run.output("QuantizationEvaluator", "evaluation")
    metrics = _json(os.path.join(evaluation.uri, properties.METRICS_FILENAME))
    overall, verdict = metrics["overall"], metrics["verdict"]
    assert overall["num_examples"] >= 500 and overall["float"]["accuracy"] >= 0.9
    assert metrics["thresholds"]["max_delta"] == DIGITS_CNN_GATE.max_delta == 0.02
    assert verdict["blessed"] and verdict["delta"] <= 0.02 and verdict["delta_upper"] >= verdict["delta"]
    comparisons = metrics["latency_ms"]["comparisons"]
    for key in ("float_tflite", "float_saved_model"):
        assert comparisons[key]["measure"] == "kernel" and comparisons[key]["speedup"] > 0
    assert metrics["sizes"]["float_tflite_bytes"] / metrics["sizes"]["quantized_bytes"] >= MIN_SIZE_GAIN


def test_the_run_summary_has_the_like_for_like_rows(digits_cnn_run) -> None:
    summary = lineage.run_summary(digits_cnn_run.store, digits_cnn_run.paths.pipeline_name, "QuantizedModelPusher")
    assert summary["pushed"] and summary["verdict"] == "blessed"
    assert summary["float_tflite_size_bytes"] / summary["quantized_size_bytes"] >= MIN_SIZE_GAIN
    assert summary["delta_upper"] is not None and summary["confidence"] == 0.95
    table = lineage.format_summary(summary)
    for label in ("int8 vs float32 TFLite size", "kernel latency int8 vs float32 TFLite",
                  "kernel latency int8 vs float SavedModel", "delta 95% upper bound"):
        assert f"\n{label} " in table, table
    assert "x smaller" in table.split("\nint8 vs float32 TFLite size")[1].splitlines()[0]
