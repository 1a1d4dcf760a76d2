"""The diabetes pipeline, one real local run (session-scoped): plain int8 over the raw features misses the relative
MAE gate, the Quantizer's accuracy-aware search finds a candidate within it on the search sample, and the
QuantizationEvaluator blesses and the pusher pushes exactly that model; the penguin DAG stays without a search."""

from __future__ import annotations

import json
import os

import pytest

from quantgate.components.representative_dataset_gen.storage import read_examples
from quantgate.components.shared import properties
from quantgate.pipelines import lineage
from quantgate.pipelines.diabetes import create_diabetes_pipeline
from quantgate.pipelines.diabetes_data import CSV_NAME, write_diabetes_csv
from quantgate.pipelines.kinds import pipeline_kind
from quantgate.pipelines.local_runner import LocalRunConfig, LocalRunPaths, run_local
from quantgate.pipelines.pipeline import create_pipeline

KIND = pipeline_kind("diabetes")


@pytest.fixture(scope="session")
def diabetes_run(tmp_path_factory) -> dict:
    paths = LocalRunPaths(home=str(tmp_path_factory.mktemp("diabetes")), pipeline_name=KIND.pipeline_name)
    run_local(LocalRunConfig(paths=paths, pipeline="diabetes"))
    store = lineage.open_sqlite_store(paths.metadata_path)

    def output(component_id: str, key: str):
        execution = lineage.latest_complete_execution(store, KIND.pipeline_name, component_id)
        assert execution is not None, f"no COMPLETE execution of {component_id}"
        (artifact,) = lineage.output_artifacts(store, execution.id)[key]
        return artifact

    return {"paths": paths, "store": store, "output": output}


def test_the_search_model_is_blessed_and_pushed(diabetes_run) -> None:
    output = diabetes_run["output"]
    quantized = output("Quantizer", "quantized_model")
    with open(os.path.join(quantized.uri, properties.QUANTIZATION_REPORT_FILENAME)) as f:
        report = json.load(f)
    section = report["search"]
    candidates = section["candidates"]
    # Plain int8 over the raw inputs misses 2 % relative MAE; a later rung of the ladder passes.
    assert candidates[0]["step"] == "requested" and candidates[0]["config"]["mode"] == "int8"
    assert not candidates[0]["passed"] and candidates[0]["delta"] > 0.02
    chosen = next(c for c in candidates if c["trial"] == section["chosen_trial"])
    assert chosen["passed"] and chosen["delta"] <= 0.02 and chosen["trial"] > 1
    assert not any(c["passed"] for c in candidates if c["trial"] < chosen["trial"])
    assert "cheapest remedy" in section["why"]
    for c in candidates:
        assert c["size_bytes"] > 0 and c["conversion_seconds"] > 0 and c["metric_value"] > 0
    assert report["mode"] == chosen["config"]["mode"] and report["io_dtype"] == chosen["config"]["io_dtype"]
    props = quantized.custom_properties
    assert props[properties.CANDIDATES_TRIED].int_value == len(candidates)
    assert json.loads(props[properties.CHOSEN_CONFIG].string_value) == chosen["config"]
    # The property comes back rounded to 6 decimal places (0.00042552... as 0.000426), not to 6 significant digits
    assert props[properties.SEARCH_DELTA].double_value == pytest.approx(chosen["delta"], abs=5e-7)
    assert props[properties.FLOAT_OP_COUNT].int_value == chosen["float_op_count"]
    # The gate judged the chosen bytes on the eval split and the pusher pushed them.
    blessing = output("QuantizationEvaluator", "blessing")
    assert blessing.custom_properties[properties.BLESSED].int_value == 1
    assert blessing.custom_properties[properties.EVALUATED_SHA256].string_value == report["sha256"]
    pushed = output("QuantizedModelPusher", "pushed_model")
    assert pushed.custom_properties[properties.PUSHED].int_value == 1
    with open(os.path.join(pushed.custom_properties[properties.PUSHED_DESTINATION].string_value,
                           properties.TFLITE_FILENAME), "rb") as f:
        pushed_bytes = f.read()
    with open(os.path.join(quantized.uri, properties.SERVING_DIR, properties.TFLITE_FILENAME), "rb") as f:
        assert f.read() == pushed_bytes


def test_the_search_sample_is_disjoint_from_the_calibration_sample(diabetes_run) -> None:
    output = diabetes_run["output"]
    calibration = set(read_examples(output("RepresentativeDatasetGen", "representative_dataset").uri))
    search = set(read_examples(output("RepresentativeDatasetGen", properties.SEARCH_DATASET_KEY).uri))
    assert len(search) == 60 and not calibration & search


def test_the_search_judges_on_eval_rows_and_the_gate_on_the_others(diabetes_run) -> None:
    output = diabetes_run["output"]
    search_dataset = output("RepresentativeDatasetGen", properties.SEARCH_DATASET_KEY)
    assert search_dataset.custom_properties[properties.SPLIT].string_value == "eval"
    quantized = output("Quantizer", "quantized_model")
    summary = json.loads(quantized.custom_properties[properties.SEARCH_SUMMARY].string_value)
    assert (summary["split"], summary["dataset_uri"], summary["metric"]) == ("eval", search_dataset.uri, "mae")
    evaluation = output("QuantizationEvaluator", "evaluation")
    with open(os.path.join(evaluation.uri, properties.METRICS_FILENAME)) as f:
        metrics = json.load(f)
    holdout = metrics["search_holdout"]
    assert (holdout["uri"], holdout["split"], holdout["excluded_examples"]) == (search_dataset.uri, "eval", 60)
    # Every eval example is in exactly one of the two: the search's sample or the gate's.
    source = search_dataset.custom_properties[properties.SOURCE_NUM_EXAMPLES].int_value
    assert metrics["overall"]["num_examples"] + holdout["excluded_examples"] == source
    assert evaluation.custom_properties[properties.SEARCH_EXCLUDED_EXAMPLES].int_value == 60
    # The float model's MAE on unseen rows: the search's and the gate's are of one population now.
    print(f"float mae: search sample {summary['float_metric_value']:.2f}, gate "
          f"{metrics['overall']['float']['mae']:.2f} on {metrics['overall']['num_examples']} examples")


def test_the_search_is_off_unless_asked(tmp_path) -> None:
    penguin = {c.id: c for c in create_pipeline("p", str(tmp_path / "root"), str(tmp_path / "data")).components}
    assert penguin["Quantizer"].exec_properties["accuracy_search"] is None
    assert properties.SEARCH_DATASET_KEY not in penguin["Quantizer"].inputs
    diabetes = {c.id: c for c in create_diabetes_pipeline("d", str(tmp_path / "r"), str(tmp_path / "d")).components}
    assert json.loads(diabetes["Quantizer"].exec_properties["accuracy_search"])["metric"] == "mae"


def test_the_diabetes_csv_is_written_only_when_changed(tmp_path) -> None:
    path = write_diabetes_csv(str(tmp_path))
    assert os.path.basename(path) == CSV_NAME
    mtime = os.stat(path).st_mtime_ns
    with open(path) as f:
        header, *rows = f.read().splitlines()
    assert header.split(",")[0] == "progression" and len(header.split(",")) == 11 and len(rows) == 442
    write_diabetes_csv(str(tmp_path))
    assert os.stat(path).st_mtime_ns == mtime
