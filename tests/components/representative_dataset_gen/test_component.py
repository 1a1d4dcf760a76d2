"""The component: parameters checked at construction, Beam executor spec, and its run in the demo pipeline."""

from __future__ import annotations

import pytest
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec

from quantgate.components import RepresentativeDatasetGen
from quantgate.components.representative_dataset_gen import storage
from quantgate.components.representative_dataset_gen.executor import Executor
from quantgate.components.types import RepresentativeDataset
from quantgate.pipelines.pipeline import create_pipeline

COMPONENT_ID = "RepresentativeDatasetGen"


@pytest.fixture(scope="module")
def examples_channel() -> tfx.dsl.Channel:
    return tfx.components.CsvExampleGen(input_base="/nonexistent").outputs["examples"]


def test_defaults_and_output_type(examples_channel) -> None:
    component = RepresentativeDatasetGen(examples=examples_channel)
    assert component.exec_properties == {"split": "train", "num_examples": 300, "strategy": "uniform",
                                         "label_key": None, "seed": 0, "allow_eval_split": 0,
                                         "num_search_examples": 0, "search_split": "eval"}
    assert component.outputs["representative_dataset"].type is RepresentativeDataset
    assert "search_dataset" not in component.outputs
    assert isinstance(component.executor_spec, executor_spec.BeamExecutorSpec)
    assert component.executor_spec.executor_class is Executor


def test_num_search_examples_adds_the_search_dataset_output(examples_channel) -> None:
    component = RepresentativeDatasetGen(examples=examples_channel, num_search_examples=100)
    assert component.outputs["search_dataset"].type is RepresentativeDataset
    assert component.exec_properties["num_search_examples"] == 100


def test_allow_eval_split_is_stored_as_an_int(examples_channel) -> None:
    component = RepresentativeDatasetGen(examples=examples_channel, split="eval", allow_eval_split=True)
    assert component.exec_properties["allow_eval_split"] == 1 and component.exec_properties["split"] == "eval"


def test_component_beam_args_reach_the_executor_spec(examples_channel) -> None:
    component = RepresentativeDatasetGen(examples=examples_channel).with_beam_pipeline_args(["--direct_num_workers=2"])
    assert "--direct_num_workers=2" in component.executor_spec.beam_pipeline_args


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_examples": 0}, "num_examples must be an integer >= 1"),
        ({"strategy": "reservoir"}, "strategy must be one of uniform, stratified"),
        ({"strategy": "stratified"}, "needs label_key"),
        ({"num_search_examples": -5}, "num_search_examples must be an integer >= 0"),
    ],
)
def test_bad_parameters_fail_when_the_pipeline_is_built(examples_channel, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RepresentativeDatasetGen(examples=examples_channel, **kwargs)


def test_create_pipeline_feeds_it_the_examples_and_schema(tmp_path) -> None:
    # It needs no model: TFX's topological order may run it before the Trainer finishes, which saves time.
    pipeline = create_pipeline("p", str(tmp_path), str(tmp_path), calibration_num_examples=17, calibration_seed=4)
    components = {c.id: c for c in pipeline.components}
    component = components[COMPONENT_ID]
    assert component.inputs["examples"].producer_component_id == "CsvExampleGen"
    assert component.inputs["schema"].producer_component_id == "SchemaGen"
    assert component.exec_properties["num_examples"] == 17 and component.exec_properties["seed"] == 4
    assert component.exec_properties["strategy"] == "stratified" and component.exec_properties["label_key"] == "species"
    assert component.exec_properties["split"] == "train"


def test_demo_run_publishes_the_sample_in_mlmd(demo_run) -> None:
    execution = demo_run.execution(COMPONENT_ID)
    assert execution.last_known_state == metadata_store_pb2.Execution.COMPLETE
    artifact = demo_run.output(COMPONENT_ID, "representative_dataset")
    (artifact_type,) = demo_run.store.get_artifact_types_by_id([artifact.type_id])
    assert artifact_type.name == RepresentativeDataset.TYPE_NAME
    assert artifact.state == metadata_store_pb2.Artifact.LIVE

    manifest = storage.read_manifest(artifact.uri)
    examples = demo_run.output("CsvExampleGen", "examples")
    custom = artifact.custom_properties
    assert custom["num_examples"].int_value == manifest["num_examples"] == len(storage.read_examples(artifact.uri))
    assert manifest["num_examples"] == 200  # create_pipeline's calibration_num_examples, below the split's 231
    assert custom["strategy"].string_value == "stratified"
    assert custom["seed"].int_value == 0 and custom["split"].string_value == "train"
    assert custom["sha256"].string_value == manifest["sha256"]
    assert custom["source_examples_id"].int_value == manifest["source_examples_id"] == examples.id
    assert sum(manifest["class_counts"].values()) == manifest["num_examples"]

    inputs = {
        event.path.steps[0].key: event.artifact_id
        for event in demo_run.store.get_events_by_execution_ids([execution.id])
        if event.type == metadata_store_pb2.Event.INPUT
    }
    assert inputs == {"examples": examples.id, "schema": demo_run.output("SchemaGen", "schema").id}
