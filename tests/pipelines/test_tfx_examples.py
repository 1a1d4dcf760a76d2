"""TFX's own example pipelines (IMDB BiLSTM, Chicago taxi wide & deep), their Transform and Trainer code taken
unchanged from the tfx wheel, through quantgate with ``signature_name`` unset: one real local run of each per
session, many facts checked on its outputs and in MLMD."""

from __future__ import annotations

import glob
import json
import os

import pytest

from quantgate.components.shared import properties
from quantgate.pipelines.kinds import pipeline_kind

from .conftest import local_run

# Few steps: the facts checked are what quantgate does with the model as exported, not how good it is.
TRAIN_STEPS = {"tfx-imdb": 40, "tfx-taxi": 60}


def _run(name: str, tmp_path_factory) -> dict:
    run = local_run(tmp_path_factory, name, train_steps=TRAIN_STEPS[name])
    paths, output, execution = run.paths, run.output, run.execution

    quantized = output("Quantizer", "quantized_model")
    with open(os.path.join(quantized.uri, properties.QUANTIZATION_REPORT_FILENAME)) as f:
        report = json.load(f)
    evaluation = output("QuantizationEvaluator", "evaluation")
    with open(os.path.join(evaluation.uri, properties.METRICS_FILENAME)) as f:
        metrics = json.load(f)
    return {"paths": paths, "output": output, "execution": execution, "quantized": quantized, "report": report,
            "metrics": metrics, "blessing": output("QuantizationEvaluator", "blessing"),
            "pushed": output("QuantizedModelPusher", "pushed_model")}


@pytest.fixture(scope="session")
def imdb_run(tmp_path_factory) -> dict:
    return _run("tfx-imdb", tmp_path_factory)


@pytest.fixture(scope="session")
def taxi_run(tmp_path_factory) -> dict:
    return _run("tfx-taxi", tmp_path_factory)


@pytest.fixture(params=["imdb", "taxi"])
def example_run(request) -> dict:
    return request.getfixturevalue(f"{request.param}_run")


def test_the_trainer_and_transform_are_the_tfx_examples_own(example_run) -> None:
    kind = pipeline_kind(example_run["paths"].pipeline_name.removesuffix("-quantgate"))
    trainer = example_run["execution"]("Trainer")
    transform = example_run["execution"]("Transform")
    assert trainer.custom_properties["run_fn"].string_value == kind.trainer_run_fn
    assert transform.custom_properties["preprocessing_fn"].string_value == kind.transform_preprocessing_fn
    assert kind.trainer_run_fn.startswith("tfx.examples.")


def test_the_model_has_no_dense_signature_and_its_keras_call_is_converted(example_run) -> None:
    report, quantized = example_run["report"], example_run["quantized"]
    assert (report["signature_name"], report["signature_source"]) == ("__call__", "derived")
    assert quantized.custom_properties[properties.SIGNATURE_SOURCE].string_value == "derived"
    assert report["transform_graph"]["uri"]  # calibrated through the example's own Transform
    assert report["ops"]["float_op_count"] == 0 and set(report["ops"]["by_dtype"]) <= {"int8", "int32", "int64", "bool"}
    assert report["sizes"]["tflite_bytes"] < report["sizes"]["float_tflite_bytes"]


def test_the_imdb_bilstm_is_int8_with_batch_one(imdb_run) -> None:
    report = imdb_run["report"]
    assert report["fixed_batch_size"] == 1
    assert report["ops"]["ops"]["UNIDIRECTIONAL_SEQUENCE_LSTM"] == {"int8": 2}
    assert report["inputs"]["text_xf_input"]["shape"] == [1, 400]
    assert report["sizes"]["tflite_bytes"] * 3 < report["sizes"]["float_tflite_bytes"]


def test_the_imdb_logit_is_scored_as_a_probability(imdb_run) -> None:
    metrics = imdb_run["metrics"]
    assert metrics["models"]["float"]["output_kind"] == "logits"
    overall = metrics["overall"]
    assert 0.0 <= overall["float"]["auc"] <= 1.0 and 0.0 <= overall["quantized"]["auc"] <= 1.0


def test_the_taxi_one_hots_are_builtins(taxi_run) -> None:
    ops = taxi_run["report"]["ops"]["ops"]
    assert "ONE_HOT" in ops and not any("Bincount" in op or "FLEX" in op.upper() for op in ops)
    assert taxi_run["report"]["fixed_batch_size"] is None


def test_the_derived_function_agrees_with_the_models_serving_signature(example_run) -> None:
    serving = example_run["metrics"]["serving_signature_agreement"]
    assert serving["signature"] == "serving_default" and serving["num_examples"] > 0
    assert serving["agreement"] == 1.0 and serving["max_abs_diff"] < 1e-4


def test_the_gate_judges_the_eval_split_and_the_push_follows_it(example_run) -> None:
    metrics, blessing, pushed = example_run["metrics"], example_run["blessing"], example_run["pushed"]
    assert metrics["split"] == "eval" and metrics["overall"]["num_examples"] > 0
    blessed = blessing.custom_properties[properties.BLESSED].int_value
    assert blessed == int(metrics["verdict"]["blessed"]) and metrics["verdict"]["reason"]
    print(f"{example_run['paths'].pipeline_name}: {metrics['verdict']['reason']}; float "
          f"{metrics['overall']['float'].get(metrics['metric'])}, int8 {metrics['overall']['quantized'].get(metrics['metric'])}"
          f" on {metrics['overall']['num_examples']} examples; {example_run['report']['sizes']}")
    if not blessed:
        assert pushed.custom_properties[properties.PUSHED].int_value == 0
        return
    destination = pushed.custom_properties[properties.PUSHED_DESTINATION].string_value
    assert pushed.custom_properties[properties.PUSHED].int_value == 1
    assert os.path.isfile(os.path.join(destination, properties.TFLITE_FILENAME))
    assert glob.glob(os.path.join(destination, properties.VOCABULARY_DIRNAME, "*"))  # the transform's vocabularies
