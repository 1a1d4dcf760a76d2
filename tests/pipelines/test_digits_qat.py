"""One small run of the digits-qat pipeline (session-scoped): the float CNN, its QAT fine-tune, post-training int8
and QAT int8 all-integer, and the float / PTQ / QAT comparison in one QuantizationEvaluator's metrics.json and
report."""

from __future__ import annotations

import json
import os

import pytest
from ml_metadata.proto import metadata_store_pb2

from quantgate.components.shared import properties
from quantgate.components.shared.fake_quant import fake_quant_ops
from quantgate.pipelines import lineage
from quantgate.pipelines.digits_qat import PTQ_QUANTIZER_ID, QAT_QUANTIZER_ID, QAT_TRAINER_ID
from quantgate.pipelines.local_runner import LocalRunConfig, LocalRunPaths, run_local
from quantgate.pipelines.models.digits.digits_trainer import DENSE_SIGNATURE

# Small: ~1,200 training digits, 150 float steps of 32 (~4 epochs) and 120 QAT steps (~3 epochs; 60 were measured
# to leave the QAT model 0.04 below the float one: its ranges start wide).
DIGITS_KWARGS = {"train_steps": 150, "qat_train_steps": 120, "eval_steps": 5, "gate.max_delta": 0.02}


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    paths = LocalRunPaths(home=str(tmp_path_factory.mktemp("digits")), pipeline_name="digits-qat-test")
    run_local(LocalRunConfig(paths=paths, pipeline="digits-qat", pipeline_kwargs=DIGITS_KWARGS))
    store = lineage.open_sqlite_store(paths.metadata_path)

    def outputs(component_id: str) -> dict[str, list[metadata_store_pb2.Artifact]]:
        execution = lineage.latest_complete_execution(store, paths.pipeline_name, component_id)
        assert execution is not None, f"no COMPLETE execution of {component_id}"
        return lineage.output_artifacts(store, execution.id)

    (evaluation,) = outputs("QuantizationEvaluator")["evaluation"]
    with open(os.path.join(evaluation.uri, properties.METRICS_FILENAME)) as f:
        metrics = json.load(f)
    with open(os.path.join(evaluation.uri, properties.EVALUATION_REPORT_FILENAME)) as f:
        report = f.read()
    return {"outputs": outputs, "metrics": metrics, "report": report}


def _quantized(digits_run: dict, component_id: str) -> tuple[metadata_store_pb2.Artifact, dict]:
    (model,) = digits_run["outputs"](component_id)["quantized_model"]
    with open(os.path.join(model.uri, properties.QUANTIZATION_REPORT_FILENAME)) as f:
        return model, json.load(f)


def test_the_qat_trainer_exports_fake_quant_ops_and_the_float_trainer_none(digits_run) -> None:
    (float_model,) = digits_run["outputs"]("Trainer")["model"]
    (qat_model,) = digits_run["outputs"](QAT_TRAINER_ID)["model"]
    assert fake_quant_ops(os.path.join(float_model.uri, "Format-Serving"), DENSE_SIGNATURE) == {}
    assert fake_quant_ops(os.path.join(qat_model.uri, "Format-Serving"), DENSE_SIGNATURE)


@pytest.mark.parametrize(("component_id", "mode", "qat"), [(PTQ_QUANTIZER_ID, "int8", 0), (QAT_QUANTIZER_ID, "qat", 1)])
def test_both_models_are_all_int8_with_int8_io(digits_run, component_id, mode, qat) -> None:
    model, report = _quantized(digits_run, component_id)
    assert model.custom_properties[properties.QUANTIZATION_MODE].string_value == mode
    assert model.custom_properties[properties.QAT].int_value == qat
    assert report["ops"]["float_op_count"] == 0 and "int8" in report["ops"]["by_dtype"]
    assert set(report["ops"]["by_dtype"]) <= {"int8", "int32"}  # int32: the batch-size arithmetic of Reshape
    assert report["inputs"]["pixels"]["dtype"] == "int8"


def test_metrics_json_compares_float_ptq_and_qat_in_one_pass(digits_run) -> None:
    metrics = digits_run["metrics"]
    by_mode = {}
    for candidate in metrics["candidates"]:
        model, _ = _quantized(digits_run, PTQ_QUANTIZER_ID if candidate["name"].startswith("int8") else QAT_QUANTIZER_ID)
        assert candidate["id"] == model.id
        by_mode[candidate["name"].split()[0]] = candidate
    assert sorted(by_mode) == ["int8", "qat"]
    float_accuracies = {candidate["overall"]["float"]["accuracy"] for candidate in by_mode.values()}
    assert len(float_accuracies) == 1  # the float model scored once, against both
    (float_accuracy,) = float_accuracies
    assert float_accuracy >= 0.8
    for candidate in by_mode.values():
        accuracy = candidate["overall"]["quantized"]["accuracy"]
        # the gate: each int8 model within quantization_max_delta of the float model
        assert float_accuracy - accuracy <= DIGITS_KWARGS["gate.max_delta"], (candidate["name"], accuracy)
    assert metrics["verdict"]["blessed"] is True


def test_the_report_shows_the_three_models(digits_run) -> None:
    report = digits_run["report"]
    assert "float" in report.lower()
    for candidate in digits_run["metrics"]["candidates"]:
        assert candidate["name"] in report
