"""The demo pipeline's candidates (one run per session, see conftest.demo_run): int8, float16 and dynamic_range
Quantizers of the same float model, scored in one QuantizationEvaluator pass; the candidate ``selection`` picks is
blessed, and that one is the model the pusher ships and the lineage names."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from ml_metadata.proto import metadata_store_pb2

from quantgate.components.shared import properties
from quantgate.pipelines import lineage
from tests.conftest import DemoRun

PUSHER_ID = "QuantizedModelPusher"
QUANTIZER_IDS = {"int8": "Quantizer", "float16": "Quantizer_float16", "dynamic_range": "Quantizer_dynamic_range"}


@pytest.fixture(scope="module")
def metrics(demo_run: DemoRun) -> dict:
    with open(os.path.join(demo_run.output("QuantizationEvaluator", "evaluation").uri,
                           properties.METRICS_FILENAME)) as f:
        return json.load(f)


def _quantized_models(demo_run: DemoRun) -> dict[str, metadata_store_pb2.Artifact]:
    return {mode: demo_run.output(component_id, "quantized_model") for mode, component_id in QUANTIZER_IDS.items()}


def _file_sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_each_quantizer_converts_its_own_mode(demo_run) -> None:
    for mode, model in _quantized_models(demo_run).items():
        assert model.custom_properties[properties.QUANTIZATION_MODE].string_value == mode


def test_the_evaluator_scores_all_three_against_one_float_score(demo_run, metrics) -> None:
    candidates = metrics["candidates"]
    models = _quantized_models(demo_run)
    assert sorted(c["id"] for c in candidates) == sorted(m.id for m in models.values())
    assert len({json.dumps(c["overall"]["float"], sort_keys=True) for c in candidates}) == 1


def test_the_smallest_passing_candidate_is_blessed_and_pushed(demo_run, metrics) -> None:
    candidates = metrics["candidates"]
    passing = [c for c in candidates if c["verdict"]["blessed"]]
    assert passing, [c["verdict"]["reason"] for c in candidates]
    chosen = min(passing, key=lambda c: c["sizes"]["quantized_bytes"])
    blessing = demo_run.output("QuantizationEvaluator", "blessing")
    assert blessing.custom_properties[properties.BLESSED].int_value == 1
    assert blessing.custom_properties[properties.CURRENT_MODEL_ID].int_value == chosen["id"]

    pushed = demo_run.output(PUSHER_ID, "pushed_model")
    assert pushed.custom_properties[properties.PUSHED].int_value == 1
    destination = pushed.custom_properties[properties.PUSHED_DESTINATION].string_value
    with open(os.path.join(destination, "manifest.json")) as f:
        manifest = json.load(f)
    assert manifest["mlmd"]["quantized_model"]["id"] == chosen["id"]
    assert manifest["quantization_mode"] == chosen["quantization_mode"]
    assert _file_sha256(os.path.join(destination, "model.tflite")) == chosen["evaluated_sha256"]


def test_the_lineage_of_the_push_names_the_chosen_candidate(demo_run) -> None:
    blessing = demo_run.output("QuantizationEvaluator", "blessing")
    pushed = demo_run.output(PUSHER_ID, "pushed_model")
    chain = {c["role"]: c["artifact"] for c in lineage.pushed_chain(demo_run.store, pushed.id)["chain"]}
    assert chain["quantized model"]["id"] == blessing.custom_properties[properties.CURRENT_MODEL_ID].int_value
