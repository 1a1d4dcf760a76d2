"""QuantizedModelPusher: the component's spec, and what it did in the demo run (conftest.demo_run)."""

from __future__ import annotations

import json
import os

import pytest
from ml_metadata.proto import metadata_store_pb2
from tfx import types
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts

from components import QuantizedModelPusher
from components.pusher import publish

DESTINATION = pusher_pb2.PushDestination(filesystem=pusher_pb2.PushDestination.Filesystem(base_directory="/srv"))


def test_spec_inputs_and_output() -> None:
    pusher = QuantizedModelPusher(model=types.Channel(type=standard_artifacts.Model),
                                  model_blessing=types.Channel(type=standard_artifacts.ModelBlessing),
                                  push_destination=DESTINATION)
    assert pusher.outputs["pushed_model"].type is standard_artifacts.PushedModel
    assert {"model", "model_blessing"} <= set(pusher.inputs)
    assert not ({"float_blessing", "float_model", "representative_dataset", "evaluation"} & set(pusher.inputs))


def test_wrong_channel_type_is_refused_when_the_pipeline_is_built() -> None:
    with pytest.raises(TypeError, match="model_blessing"):
        QuantizedModelPusher(model=types.Channel(type=standard_artifacts.Model),
                             model_blessing=types.Channel(type=standard_artifacts.Examples),
                             push_destination=DESTINATION)


def test_demo_run_pushed_the_quantized_model_with_its_provenance(demo_run) -> None:
    execution = demo_run.execution("QuantizedModelPusher")
    assert execution.last_known_state == metadata_store_pb2.Execution.COMPLETE
    pushed = demo_run.output("QuantizedModelPusher", "pushed_model")
    assert pushed.custom_properties["pushed"].int_value == 1
    destination = pushed.custom_properties["pushed_destination"].string_value
    version = pushed.custom_properties["pushed_version"].string_value
    assert destination == os.path.join(demo_run.paths.serving_model_dir, version)
    assert os.listdir(demo_run.paths.serving_model_dir) == [version]  # no staging folder left
    assert sorted(os.listdir(destination)) == ["manifest.json", "model.tflite"]

    quantized = demo_run.output("Quantizer", "quantized_model")
    with open(os.path.join(destination, "model.tflite"), "rb") as f:
        sha256 = publish.sha256_of(f.read())
    assert sha256 == quantized.custom_properties["sha256"].string_value == pushed.custom_properties[
        "sha256"].string_value
    with open(os.path.join(destination, "manifest.json")) as f:
        manifest = json.load(f)
    blessing = demo_run.output("QuantizationEvaluator", "blessing")
    evaluation = demo_run.output("QuantizationEvaluator", "evaluation")
    ids = {role: ref["id"] for role, ref in manifest["mlmd"].items() if isinstance(ref, dict)}
    assert ids == {
        "quantized_model": quantized.id,
        "blessing": blessing.id,
        "float_blessing": demo_run.output("Evaluator", "blessing").id,
        "float_model": demo_run.output("Trainer", "model").id,
        "representative_dataset": demo_run.output("RepresentativeDatasetGen", "representative_dataset").id,
        "evaluation": evaluation.id,
    }
    metric = blessing.custom_properties["metric"].string_value
    assert manifest["metric"] == pytest.approx({
        "name": metric,
        "float": evaluation.custom_properties[f"float_{metric}"].double_value,
        "quantized": evaluation.custom_properties[f"quantized_{metric}"].double_value,
        "delta": blessing.custom_properties["delta"].double_value,
        "threshold": blessing.custom_properties["threshold"].double_value,
    })
    assert manifest["sha256"] == sha256 and manifest["quantization_mode"] == "int8"
    assert manifest["size_bytes"] == quantized.custom_properties["size_bytes"].int_value
