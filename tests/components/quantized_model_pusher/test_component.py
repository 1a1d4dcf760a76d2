"""QuantizedModelPusher: the component's spec, and what it did in the demo run (conftest.demo_run)."""

from __future__ import annotations

import json
import os

import pytest
import tensorflow as tf
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx import types
from tfx import v1 as tfx
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.proto import pusher_pb2
from tfx.types import channel_utils, component_spec, standard_artifacts

from quantgate.components import QuantizedModelPusher
from quantgate.components.shared.digests import bytes_sha256
from quantgate.pipelines.lineage import questions

DESTINATION = pusher_pb2.PushDestination(filesystem=pusher_pb2.PushDestination.Filesystem(base_directory="/srv"))


def test_spec_inputs_and_output() -> None:
    pusher = QuantizedModelPusher(model=types.Channel(type=standard_artifacts.Model),
                                  model_blessing=types.Channel(type=standard_artifacts.ModelBlessing),
                                  push_destination=DESTINATION)
    assert pusher.outputs["pushed_model"].type is standard_artifacts.PushedModel
    assert {"model", "model_blessing"} <= set(pusher.inputs)
    assert not ({"float_blessing", "float_model", "representative_dataset", "evaluation",
                 "transform_graph"} & set(pusher.inputs))
    with_graph = QuantizedModelPusher(model=types.Channel(type=standard_artifacts.Model),
                                      model_blessing=types.Channel(type=standard_artifacts.ModelBlessing),
                                      transform_graph=types.Channel(type=standard_artifacts.TransformGraph),
                                      push_destination=DESTINATION)
    assert with_graph.inputs["transform_graph"].type is standard_artifacts.TransformGraph


def test_more_candidates_than_the_evaluator_scores_are_refused() -> None:
    with pytest.raises(ValueError, match="model takes 1 to 6 channels, got 7"):
        QuantizedModelPusher(model=[types.Channel(type=standard_artifacts.Model)] * 7,
                             model_blessing=types.Channel(type=standard_artifacts.ModelBlessing),
                             push_destination=DESTINATION)


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
    assert sorted(os.listdir(destination)) == ["labels.txt", "manifest.json", "model.tflite"]
    with open(os.path.join(destination, "labels.txt")) as f:
        assert f.read() == "0\n1\n2\n"  # species is an int label with no vocabulary or domain: the indices

    quantized = demo_run.output("Quantizer", "quantized_model")
    with open(os.path.join(destination, "model.tflite"), "rb") as f:
        sha256 = bytes_sha256(f.read())
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
    # The int8 model's inputs, as an app must quantize them: one [batch, 1] int8 tensor per penguin feature.
    inputs = manifest["io"]["inputs"]
    assert [i["name"] for i in inputs] == sorted(["bill_length_mm", "bill_depth_mm", "flipper_length_mm",
                                                  "body_mass_g"])
    assert all(i["dtype"] == "int8" and i["shape"] == [None, 1] and i["scale"] > 0 for i in inputs)
    assert all(i["feature"] == i["name"] and i["feature_source"] == "tf.Example feature" for i in inputs)
    (output,) = manifest["io"]["outputs"]
    assert (output["dtype"], output["feature"], output["labels_file"]) == ("int8", "species", "labels.txt")
    assert manifest["labels"]["num_classes"] == 3 and manifest["labels"]["source"].startswith("indices")
    assert manifest["float_tflite_size_bytes"] == quantized.custom_properties["float_tflite_size_bytes"].int_value



class _Identity(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
    def identity(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"y": x + 0.0}

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
    def shifted(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"y": x + 1.0}


@pytest.mark.pipeline  # a LocalDagRunner run
def test_truncated_imported_model_fails_the_pusher_execution_and_pushes_nothing(tmp_path) -> None:
    """Importer(model) + Importer(blessed blessing) -> QuantizedModelPusher on LocalDagRunner: an imported model
    has no sha256 property, so only the pusher's own load check stands between a truncated file and the push."""
    module = _Identity()
    tflite = tf.lite.TFLiteConverter.from_concrete_functions([module.identity.get_concrete_function()],
                                                             module).convert()
    model_uri, blessing_uri, base = (str(tmp_path / name) for name in ("imported_model", "blessing", "serving"))
    os.makedirs(os.path.join(model_uri, "Format-Serving"))
    with open(os.path.join(model_uri, "Format-Serving", "model.tflite"), "wb") as f:
        f.write(tflite[: len(tflite) // 2])
    os.makedirs(blessing_uri)
    model = tfx.dsl.Importer(source_uri=model_uri, artifact_type=standard_artifacts.Model).with_id("model")
    blessing = tfx.dsl.Importer(source_uri=blessing_uri, artifact_type=standard_artifacts.ModelBlessing,
                                custom_properties={"blessed": 1}).with_id("blessing")
    pusher = QuantizedModelPusher(model=model.outputs["result"], model_blessing=blessing.outputs["result"],
                                  push_destination=pusher_pb2.PushDestination(
                                      filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=base)))
    metadata_path = str(tmp_path / "metadata.sqlite")

    with pytest.raises(ValueError, match=r"input 'model' \(artifact \d+, .*imported_model\): .* is not a loadable"):
        tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
            pipeline_name="imported-push", pipeline_root=str(tmp_path / "pipeline_root"),
            components=[model, blessing, pusher],
            metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path)))

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    store = metadata_store.MetadataStore(config)
    type_names = {t.id: t.name for t in store.get_execution_types()}
    (execution,) = [e for e in store.get_executions() if type_names[e.type_id].endswith(".QuantizedModelPusher")]
    assert execution.last_known_state == metadata_store_pb2.Execution.FAILED
    assert not os.path.exists(base)
    assert not [a for a in store.get_artifacts_by_type("PushedModel") if "pushed" in a.custom_properties]


class _BlessOneExecutor(base_executor.BaseExecutor):
    """A stand-in for the QuantizationEvaluator's selection: blesses the ``chosen`` model by id and bytes."""

    def Do(self, input_dict: dict, output_dict: dict, exec_properties: dict) -> None:
        (chosen,), (blessing,) = input_dict["chosen"], output_dict["blessing"]
        with open(os.path.join(chosen.uri, "Format-Serving", "model.tflite"), "rb") as f:
            blessing.set_string_custom_property("evaluated_sha256", bytes_sha256(f.read()))
        blessing.set_int_custom_property("blessed", 1)
        blessing.set_int_custom_property("current_model_id", chosen.id)


class _BlessOneSpec(component_spec.ComponentSpec):
    PARAMETERS: dict = {}
    INPUTS = {"chosen": component_spec.ChannelParameter(type=standard_artifacts.Model)}
    OUTPUTS = {"blessing": component_spec.ChannelParameter(type=standard_artifacts.ModelBlessing)}


class _BlessOne(base_component.BaseComponent):
    SPEC_CLASS = _BlessOneSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(_BlessOneExecutor)

    def __init__(self, chosen: types.BaseChannel) -> None:
        super().__init__(spec=_BlessOneSpec(chosen=chosen,
                                            blessing=types.Channel(type=standard_artifacts.ModelBlessing)))


@pytest.mark.pipeline  # a LocalDagRunner run
@pytest.mark.parametrize("wiring", ["union", "list"])
def test_candidates_push_the_one_the_blessing_names(tmp_path, wiring: str) -> None:
    """Two imported candidates on LocalDagRunner, in one channel (channel_utils.union) or one input key each
    (``model=[...]``: model, model_1, what Kubeflow v2 compiles): the second is pushed."""
    module = _Identity()
    identity = tf.lite.TFLiteConverter.from_concrete_functions([module.identity.get_concrete_function()],
                                                               module).convert()
    shifted = tf.lite.TFLiteConverter.from_concrete_functions([module.shifted.get_concrete_function()],
                                                              module).convert()
    candidates = {}
    for name, data in (("first", identity), ("second", shifted)):
        uri = str(tmp_path / name)
        os.makedirs(os.path.join(uri, "Format-Serving"))
        with open(os.path.join(uri, "Format-Serving", "model.tflite"), "wb") as f:
            f.write(data)
        candidates[name] = tfx.dsl.Importer(source_uri=uri, artifact_type=standard_artifacts.Model, reimport=True,
                                            custom_properties={"sha256": bytes_sha256(data)}).with_id(name)
    blessing = _BlessOne(chosen=candidates["second"].outputs["result"]).with_id("bless")
    base = str(tmp_path / "serving")
    pusher = QuantizedModelPusher(
        model=(channel_utils.union if wiring == "union" else list)([c.outputs["result"] for c in candidates.values()]),
        model_blessing=blessing.outputs["blessing"],
        push_destination=pusher_pb2.PushDestination(filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=base)))
    metadata_path = str(tmp_path / "metadata.sqlite")
    tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
        pipeline_name=f"candidates-push-{wiring}", pipeline_root=str(tmp_path / "pipeline_root"),
        components=[*candidates.values(), blessing, pusher],
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path)))

    (version,) = os.listdir(base)
    with open(os.path.join(base, version, "manifest.json")) as f:
        manifest = json.load(f)
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    store = metadata_store.MetadataStore(config)
    models = {a.uri: a.id for a in store.get_artifacts_by_type("Model")}
    assert len(models) == 2  # both candidates reached the pusher's channel
    assert manifest["mlmd"]["quantized_model"] == {"id": models[str(tmp_path / "second")], "uri": str(tmp_path / "second")}
    with open(os.path.join(base, version, "model.tflite"), "rb") as f:
        assert f.read() == shifted
    # The lineage CLI follows the pushed candidate, not the channel's first artifact.
    chain = {link["role"]: link for link in questions.pushed_chain(store)["chain"]}
    assert chain["quantized model"]["artifact"]["id"] == models[str(tmp_path / "second")]
