"""One run of the penguin-candidates pipeline (session-scoped): int8, float16 and dynamic_range Quantizers of the
same float model, scored in one QuantizationEvaluator pass; the candidate ``selection`` picks is blessed, and that
one (not the first) is the model the pusher ships and the lineage names."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from ml_metadata.proto import metadata_store_pb2

from components.shared import properties
from pipelines import lineage
from pipelines.kinds import pipeline_kind
from pipelines.local_runner import LocalRunConfig, LocalRunPaths, run_local

KIND = pipeline_kind("penguin-candidates")
PUSHER_ID = "QuantizedModelPusher"
QUANTIZER_IDS = {"int8": "Quantizer", "float16": "Quantizer_float16", "dynamic_range": "Quantizer_dynamic_range"}


@pytest.fixture(scope="session")
def candidates_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    paths = LocalRunPaths(home=str(tmp_path_factory.mktemp("candidates")), pipeline_name="penguin-candidates-test")
    run_local(LocalRunConfig(paths=paths, pipeline=KIND.name, pipeline_kwargs={"train_steps": 200, "eval_steps": 10}))
    store = lineage.open_sqlite_store(paths.metadata_path)

    def outputs(component_id: str) -> dict[str, list[metadata_store_pb2.Artifact]]:
        execution = lineage.latest_complete_execution(store, paths.pipeline_name, component_id)
        assert execution is not None, f"no COMPLETE execution of {component_id}"
        return lineage.output_artifacts(store, execution.id)

    (evaluation,) = outputs("QuantizationEvaluator")["evaluation"]
    with open(os.path.join(evaluation.uri, properties.METRICS_FILENAME)) as f:
        metrics = json.load(f)
    return {"paths": paths, "store": store, "outputs": outputs, "metrics": metrics}


def _quantized_models(candidates_run: dict) -> dict[str, metadata_store_pb2.Artifact]:
    return {mode: candidates_run["outputs"](component_id)["quantized_model"][0]
            for mode, component_id in QUANTIZER_IDS.items()}


def _file_sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_each_quantizer_converts_its_own_mode(candidates_run) -> None:
    for mode, model in _quantized_models(candidates_run).items():
        assert model.custom_properties[properties.QUANTIZATION_MODE].string_value == mode


def test_the_evaluator_scores_all_three_against_one_float_score(candidates_run) -> None:
    candidates = candidates_run["metrics"]["candidates"]
    models = _quantized_models(candidates_run)
    assert sorted(c["id"] for c in candidates) == sorted(m.id for m in models.values())
    assert len({json.dumps(c["overall"]["float"], sort_keys=True) for c in candidates}) == 1


def test_the_smallest_passing_candidate_is_blessed_and_pushed(candidates_run) -> None:
    candidates = candidates_run["metrics"]["candidates"]
    passing = [c for c in candidates if c["verdict"]["blessed"]]
    assert passing, [c["verdict"]["reason"] for c in candidates]
    chosen = min(passing, key=lambda c: c["sizes"]["quantized_bytes"])
    (blessing,) = candidates_run["outputs"]("QuantizationEvaluator")["blessing"]
    assert blessing.custom_properties[properties.BLESSED].int_value == 1
    assert blessing.custom_properties[properties.CURRENT_MODEL_ID].int_value == chosen["id"]

    (pushed,) = candidates_run["outputs"](PUSHER_ID)["pushed_model"]
    assert pushed.custom_properties[properties.PUSHED].int_value == 1
    destination = pushed.custom_properties[properties.PUSHED_DESTINATION].string_value
    with open(os.path.join(destination, "manifest.json")) as f:
        manifest = json.load(f)
    assert manifest["mlmd"]["quantized_model"]["id"] == chosen["id"]
    assert manifest["quantization_mode"] == chosen["quantization_mode"]
    assert _file_sha256(os.path.join(destination, "model.tflite")) == chosen["evaluated_sha256"]


def test_the_lineage_of_the_push_names_the_chosen_candidate(candidates_run) -> None:
    (blessing,) = candidates_run["outputs"]("QuantizationEvaluator")["blessing"]
    (pushed,) = candidates_run["outputs"](PUSHER_ID)["pushed_model"]
    chain = {c["role"]: c["artifact"] for c in lineage.pushed_chain(candidates_run["store"], pushed.id)["chain"]}
    assert chain["quantized model"]["id"] == blessing.custom_properties[properties.CURRENT_MODEL_ID].int_value
